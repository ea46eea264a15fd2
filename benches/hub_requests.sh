#!/usr/bin/env bash
# Small-request benchmark: what the HF clients send for every file on every load (a HEAD of
# `/resolve`), the GET of a small file, repo info and paths-info, at 200 concurrent keep-alive
# connections (ApacheBench, which unlike wrk handles HEAD), Commons vs nginx serving the same
# small file from disk. Anonymous requests
# to a public repository, as most downloads are. Usage: benches/hub_requests.sh [path/to/commons]
# [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/commons}
secs=${2:-10}
[ -x "$bin" ] || { echo "build first: cargo build --release -p commons (or pass a binary)" >&2; exit 1; }
for tool in nginx:nginx-light ab:apache2-utils curl:curl; do
  command -v "${tool%%:*}" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}" >/dev/null; }
done

work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; nginx -s stop -c $work/nginx.conf 2>/dev/null; rm -rf "$work"' EXIT
port=18441; nport=18442
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F); binary: $bin"

"$bin" user create bench --data-dir "$work/d" >/dev/null
token=$("$bin" token create bench --data-dir "$work/d" 2>/dev/null | tail -1)
RUST_LOG=warn "$bin" serve --data-dir "$work/d" --listen 127.0.0.1:$port 2>"$work/server.log" &
pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/health >/dev/null && break; sleep 0.1; done

# A public model with a small config.json, committed as a regular (non-LFS) file.
base=http://127.0.0.1:$port
curl -sf -X POST "$base/api/repos/create" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"small","type":"model"}' >/dev/null
printf '{"architectures": ["Bench"], "hidden_size": 64, "num_layers": 2}\n' > "$work/config.json"
content=$(base64 -w0 "$work/config.json")
printf '%s\n%s\n' '{"key":"header","value":{"summary":"config"}}' \
  "{\"key\":\"file\",\"value\":{\"path\":\"config.json\",\"content\":\"$content\",\"encoding\":\"base64\"}}" |
  curl -sf -X POST "$base/api/models/bench/small/commit/main" -H "Authorization: Bearer $token" \
    -H 'content-type: application/x-ndjson' --data-binary @- >/dev/null
curl -sf "$base/bench/small/resolve/main/config.json" | cmp - "$work/config.json"

mkdir -p "$work/www"; cp "$work/config.json" "$work/www/config.json"
cat > "$work/nginx.conf" <<NGX
user root; daemon on; pid $work/nginx.pid; error_log $work/nginx.err; worker_processes 2;
events { worker_connections 4096; }
http { access_log off; sendfile on; server { listen 127.0.0.1:$nport; root $work/www; } }
NGX
nginx -c "$work/nginx.conf"

printf 'paths=config.json&expand=true' > "$work/paths_info.body"
# Requests per second and 99th percentile (ms) of one ab run; a failed or non-2xx answer fails it.
rate() {
  local out; out=$(ab -q -k -c 200 -t "$secs" -n 100000000 "$@" 2>&1)
  if echo "$out" | grep -qE "Non-2xx|^Failed requests: +[1-9]"; then echo "failed answers: $*" >&2; echo "$out" >&2; exit 1; fi
  echo "$out" | awk '/Requests per second/ {r=$4} /^ +99%/ {p=$2} END {printf "%.0f %sms", r, p}'
}
# One table row: Commons' rate and p99, and nginx's for the same kind of request (a GET or a
# HEAD of the small file: the ceiling for any small answer), with their ratio.
row() {
  local label=$1; set -- $2
  printf "| %s | %s | %s | %s | %s | %.2f |\n" "$label" "$1" "$2" "$3" "$4" "$(awk "BEGIN{print $1/$3}")"
}
file=bench/small/resolve/main/config.json
nget=$(rate "http://127.0.0.1:$nport/config.json")
nhead=$(rate -i "http://127.0.0.1:$nport/config.json")
echo "| request (200 connections) | Commons req/s | Commons p99 | nginx req/s | nginx p99 | ratio |"
echo "|---|---:|---:|---:|---:|---:|"
row "GET /resolve of a small file (nginx: GET)" "$(rate "$base/$file") $nget"
row "HEAD /resolve of a small file (nginx: HEAD)" "$(rate -i "$base/$file") $nhead"
row "GET repo info /api/models/{id} (nginx: GET)" "$(rate "$base/api/models/bench/small") $nget"
row "POST paths-info (nginx: GET)" "$(rate -p "$work/paths_info.body" -T application/x-www-form-urlencoded "$base/api/models/bench/small/paths-info/main") $nget"
row "GET /resolve with a token (nginx: GET)" "$(rate -H "Authorization: Bearer $token" "$base/$file") $nget"
echo "server peak RSS: $(( $(grep VmHWM /proc/$pid/status | awk '{print $2}') / 1024 )) MiB"
