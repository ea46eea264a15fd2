#!/usr/bin/env bash
# Hub transfer benchmark: upload and download of one large file over loopback, Commons vs nginx
# serving the same bytes from disk (the ceiling), with 1 and 16 parallel clients, and the
# server's peak RSS; then the same size through Xet (huggingface_hub 2.4.0 with hf_xet: upload,
# download, and a re-upload the hub deduplicates). Usage: benches/hub_transfer.sh [SIZE_MIB]
# [path/to/commons]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
size_mib=${1:-1024}
bin=${2:-$root/target/release/commons}
[ -x "$bin" ] || { echo "build first: cargo build --release -p commons (or pass a binary)" >&2; exit 1; }
command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }
command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }
venv=$root/target/py/huggingface-hub-0.36.2
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q huggingface_hub==0.36.2 && touch "$venv/.installed"; }

work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; nginx -s stop -c $work/nginx.conf 2>/dev/null; rm -rf "$work"' EXIT
port=18431; nport=18432
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
echo "file: $size_mib MiB of random bytes; binary: $bin"
# Pseudorandom bytes at memory speed (AES-CTR keystream); /dev/urandom is slow on small VMs.
if command -v openssl >/dev/null; then
  head -c $((size_mib << 20)) /dev/zero | openssl enc -aes-128-ctr -nosalt -pass pass:commons-bench 2>/dev/null > "$work/blob.bin"
else
  head -c $((size_mib << 20)) /dev/urandom > "$work/blob.bin"
fi

"$bin" user create bench --data-dir "$work/d" >/dev/null
token=$("$bin" token create bench --data-dir "$work/d" 2>/dev/null | tail -1)
RUST_LOG=warn "$bin" serve --data-dir "$work/d" --listen 127.0.0.1:$port 2>"$work/server.log" &
pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/health >/dev/null && break; sleep 0.1; done
# peak VAR: the server's peak RSS (MiB) since the last call, into VAR: VmHWM, then reset (clear_refs 5); with the
# RSS the phase started from (what the allocator kept from earlier phases) in parentheses.
start_rss=0
peak() {
  local kib now; kib=$(grep VmHWM /proc/$pid/status | awk '{print $2}'); echo 5 > /proc/$pid/clear_refs
  now=$(grep VmRSS /proc/$pid/status | awk '{print $2}')
  printf -v "$1" '%s' "$((kib / 1024)) (from $start_rss)"; start_rss=$((now / 1024))
}
peak _; start_rss=$(( $(grep VmRSS /proc/$pid/status | awk '{print $2}') / 1024 ))

export HF_ENDPOINT=http://127.0.0.1:$port HF_TOKEN=$token HF_HUB_DISABLE_XET=1 HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1
"$venv/bin/python" - "$work/blob.bin" <<'PY'
import sys, time
from huggingface_hub import HfApi
api = HfApi(); api.create_repo("bench/big")
t = time.time(); api.upload_file(path_or_fileobj=sys.argv[1], path_in_repo="blob.bin", repo_id="bench/big")
dt = time.time() - t
import os; n = os.path.getsize(sys.argv[1])
print(f"upload (huggingface_hub, multipart, incl. client sha256): {n/dt/1e6:.0f} MB/s ({dt:.1f} s)")
PY
peak rss_upload

url=http://127.0.0.1:$port/bench/big/resolve/main/blob.bin
cat > "$work/nginx.conf" <<NGX
user root; daemon on; pid $work/nginx.pid; error_log $work/nginx.err; worker_processes 2;
events { worker_connections 1024; }
http { access_log off; sendfile on; server { listen 127.0.0.1:$nport; root $work; } }
NGX
nginx -c "$work/nginx.conf"
nurl=http://127.0.0.1:$nport/blob.bin

one() {
  local out; out=$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total}' -H "Authorization: Bearer $token" "$1")
  set -- $out
  [ "$1" = 200 ] && [ "$2" = $((size_mib << 20)) ] || { echo "download failed: $out" >&2; exit 1; }
  echo "$2 $3"
}
# One client: the median of five downloads (a single one of 1 GiB lasts half a second, and
# either server's figure moves by a third between runs), Commons and nginx taken in turns.
single() { for _ in 1 2 3 4 5; do one "$1"; done | awk '{print $1/$2/1e6}' | sort -n | sed -n 3p | xargs printf '%.0f'; }
parallel() {
  local t0 t1; t0=$(date +%s.%N)
  for _ in $(seq 16); do one "$1" > /dev/null & done; wait
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk -v n=$((16 * (size_mib << 20))) '{printf "%.0f", n/($2-$1)/1e6}'
}
c1=$(single "$url"); n1=$(single "$nurl")
c1b=$(single "$url"); n1b=$(single "$nurl")
c1=$(( (c1 + c1b) / 2 )); n1=$(( (n1 + n1b) / 2 ))
c16=$(parallel "$url"); n16=$(parallel "$nurl")
peak rss_all
echo "download 1 client:   commons $c1 MB/s, nginx $n1 MB/s, ratio $(awk "BEGIN{printf \"%.2f\", $c1/$n1}")"
echo "download 16 clients: commons $c16 MB/s, nginx $n16 MB/s, ratio $(awk "BEGIN{printf \"%.2f\", $c16/$n16}")"
echo "server peak RSS: LFS upload $rss_upload MiB, 17 curl downloads $rss_all MiB"
du -sb "$work/d/objects" | awk -v n=$((size_mib << 20)) '{printf "store: %.1f MiB for a %.1f MiB file\n", $1/1048576, n/1048576}'

# Xet: the default install of huggingface_hub, on another file of the same size (so nothing is
# deduplicated against the LFS upload), then the first file again (everything is).
xvenv=$root/target/py/huggingface-hub-2.4.0
[ -x "$xvenv/bin/python" ] || { python3 -m venv "$xvenv" && "$xvenv/bin/pip" install -q huggingface_hub==2.4.0 && touch "$xvenv/.installed"; }
head -c $((size_mib << 20)) /dev/zero | openssl enc -aes-128-ctr -nosalt -pass pass:commons-xet 2>/dev/null > "$work/xet.bin"
# xet up|down FILE PATH_IN_REPO LABEL: one timed transfer with the default install (Xet on).
xet() {
  HF_HUB_DISABLE_XET= HF_HOME=$work/hf "$xvenv/bin/python" - "$@" <<'PY'
import os, sys, time
os.environ.pop("HF_HUB_DISABLE_XET", None)
from huggingface_hub import HfApi, hf_hub_download
mode, local, path, label = sys.argv[1:5]
api = HfApi(); api.create_repo("bench/xet", exist_ok=True)
n = os.path.getsize(local)
t = time.time()
if mode == "up":
    api.upload_file(path_or_fileobj=local, path_in_repo=path, repo_id="bench/xet")
else:
    assert os.path.getsize(hf_hub_download("bench/xet", path)) == n
dt = time.time() - t
print(f"{label}: {n/dt/1e6:.0f} MB/s ({dt:.1f} s)")
PY
}
xet up "$work/xet.bin" xet.bin "upload (huggingface_hub 2.4.0 + hf_xet, incl. server read-back of the sha256)"
peak rss_xet_up
xet down "$work/xet.bin" xet.bin "download (hf_xet, reconstruction + xorb ranges, into the HF cache)"
peak rss_xet_down
xet up "$work/blob.bin" again.bin "re-upload of the LFS file through Xet (global dedup)"
peak rss_xet_again
echo "server peak RSS: Xet upload $rss_xet_up MiB, Xet download $rss_xet_down MiB, Xet re-upload $rss_xet_again MiB"
du -sb "$work/d/objects" | awk -v n=$((size_mib << 20)) '{printf "store: %.1f MiB for two %.1f MiB files\n", $1/1048576, n/1048576}'
