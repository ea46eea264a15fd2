#!/usr/bin/env bash
# Hub upload and download throughput through 1 vs 3 `commons serve` processes sharing one
# PostgreSQL database and one S3 bucket, with the bucket's own throughput (curl straight to the
# S3 server, the same files) as the ceiling. Each of CLIENTS clients is huggingface_hub 2.4.0 as
# installed by default (Xet transfers), in a process of its own: it uploads a file of SIZE_MIB
# random MiB to a repository of its own through server (i mod N), then downloads it past the
# cache through server (i+1 mod N). Throughput is all the bytes of a phase over its wall time.
#
# Usage: benches/hub_servers_s3.sh [CLIENTS] [SIZE_MIB] [ROUNDS] [path/to/commons]
# Uses scripts/postgres.sh and scripts/s3.sh (their ports: COMMONS_TEST_PG_PORT,
# COMMONS_TEST_S3_PORT); s3.sh starts an empty bucket, so do not run it beside the tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
clients=${1:-6}
size_mib=${2:-64}
rounds=${3:-2}
bin=${4:-$root/target/release/commons}
[ -x "$bin" ] || { echo "build first: cargo build --release -p commons (or pass a binary)" >&2; exit 1; }
command -v curl >/dev/null || { echo "missing: curl" >&2; exit 1; }
venv=$root/target/py/huggingface-hub-2.4.0
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q huggingface_hub==2.4.0 && touch "$venv/.installed"; }

work=$(mktemp -d)
pg_url=$("$root/scripts/postgres.sh" start)
eval "$("$root/scripts/s3.sh" start)"
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; cp "$work/server.log" /tmp/bench-server.log 2>/dev/null; "$root/scripts/s3.sh" stop; "$root/scripts/postgres.sh" stop; rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
echo "$clients clients, $size_mib MiB each, $rounds rounds; binary: $bin ($(git -C "$root" rev-parse --short HEAD))"

for i in $(seq 0 $((clients - 1))); do
  head -c $((size_mib << 20)) /dev/zero | openssl enc -aes-128-ctr -nosalt -pass "pass:client-$i" 2>/dev/null > "$work/file-$i.bin"
done
bytes=$((clients * (size_mib << 20)))

# mbps T0 T1: the phase's bytes over its wall time, MB/s.
mbps() { awk -v n="$bytes" -v a="$1" -v b="$2" 'BEGIN {printf "%.0f", n / (b - a) / 1e6}'; }

# The bucket alone: every client's file PUT, then GET back, at once (SigV4-signed; the payload
# unsigned, as the hub's S3 client sends it).
s3_round() {
  local prefix="raw-$1" t0 t1 t2 pid put=() get=()
  local sig=(-sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
  t0=$(date +%s.%N)
  for i in $(seq 0 $((clients - 1))); do
    curl "${sig[@]}" -T "$work/file-$i.bin" "$AWS_ENDPOINT_URL/commons/$prefix/$i" -o /dev/null & put+=($!)
  done
  for pid in "${put[@]}"; do wait "$pid" || { echo "a PUT to the bucket failed" >&2; exit 1; }; done
  t1=$(date +%s.%N)
  for i in $(seq 0 $((clients - 1))); do
    curl "${sig[@]}" "$AWS_ENDPOINT_URL/commons/$prefix/$i" -o "$work/back-$i.bin" & get+=($!)
  done
  for pid in "${get[@]}"; do wait "$pid" || { echo "a GET from the bucket failed" >&2; exit 1; }; done
  t2=$(date +%s.%N)
  for i in $(seq 0 $((clients - 1))); do
    cmp -s "$work/file-$i.bin" "$work/back-$i.bin" || { echo "the bucket gave back other bytes" >&2; exit 1; }
    rm "$work/back-$i.bin"
  done
  echo "$(mbps "$t0" "$t1") $(mbps "$t1" "$t2")"
}

# hub_round N ROUND: N servers on a fresh database and bucket prefix; prints upload and
# download MB/s.
hub_round() {
  local n=$1 round=$2 db token t0 t1 t2 pids=() ports=()
  # Code-point collation, as Commons requires (see the README).
  psql -q "$pg_url" -c "CREATE DATABASE bench_${n}_${round}_$$ TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C'"
  db="${pg_url%/*}/bench_${n}_${round}_$$"
  export COMMONS_DATABASE_URL=$db COMMONS_STORE_URL="$COMMONS_TEST_S3/bench-$n-$round"
  "$bin" user create bench --data-dir "$work/d-$n-$round-0" >/dev/null
  token=$("$bin" token create bench --data-dir "$work/d-$n-$round-0" 2>/dev/null | tail -1)
  for s in $(seq 0 $((n - 1))); do
    local port=$((18500 + s))
    RUST_LOG=warn "$bin" serve --no-worker --data-dir "$work/d-$n-$round-$s" --listen "127.0.0.1:$port" 2>>"$work/server.log" &
    pids+=($!)
    ports+=("$port")
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  done
  transfer() { # transfer MODE CLIENT PORT
    HF_ENDPOINT="http://127.0.0.1:$3" HF_TOKEN=$token HF_HOME="$work/hf-$n-$round-$2" HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 \
      "$venv/bin/python" - "$1" "$2" "$work/file-$2.bin" <<'PY'
import os, sys
from huggingface_hub import HfApi, hf_hub_download
mode, client, local = sys.argv[1:4]
api = HfApi()
repo = f"bench/client-{client}"
if mode == "up":
    api.create_repo(repo, exist_ok=True)
    api.upload_file(path_or_fileobj=local, path_in_repo="file.bin", repo_id=repo)
else:
    got = hf_hub_download(repo, "file.bin", force_download=True)
    assert os.path.getsize(got) == os.path.getsize(local)
    os.remove(os.path.realpath(got))
PY
  }
  local up=() down=() pid
  t0=$(date +%s.%N)
  for i in $(seq 0 $((clients - 1))); do transfer up "$i" "${ports[$((i % n))]}" & up+=($!); done
  for pid in "${up[@]}"; do wait "$pid" || { echo "an upload failed" >&2; exit 1; }; done
  t1=$(date +%s.%N)
  for i in $(seq 0 $((clients - 1))); do transfer down "$i" "${ports[$(((i + 1) % n))]}" & down+=($!); done
  for pid in "${down[@]}"; do wait "$pid" || { echo "a download failed" >&2; exit 1; }; done
  t2=$(date +%s.%N)
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  unset COMMONS_DATABASE_URL COMMONS_STORE_URL
  echo "$(mbps "$t0" "$t1") $(mbps "$t1" "$t2")"
}

printf '| round | bucket alone up | bucket alone down | 1 server up | 1 server down | 3 servers up | 3 servers down |\n|---|---:|---:|---:|---:|---:|---:|\n'
for round in $(seq 1 "$rounds"); do
  s3_round "$round" >"$work/result"; read -r s3u s3d <"$work/result"
  hub_round 1 "$round" >"$work/result"; read -r u1 d1 <"$work/result"
  hub_round 3 "$round" >"$work/result"; read -r u3 d3 <"$work/result"
  echo "| $round | $s3u | $s3d | $u1 | $d1 | $u3 | $d3 |"
done
echo "(MB/s; every phase moves $clients × $size_mib MiB)"
