#!/usr/bin/env bash
# Heap profile of one LFS multipart upload: `commons serve` under heaptrack while huggingface_hub
# 0.36.2 uploads SIZE_MIB of random bytes; prints the peak heap (live allocations) next to the
# peak RSS, which tells allocator retention from real use. Usage: benches/hub_heap.sh [SIZE_MIB]
# [path/to/commons]  (needs Debian's heaptrack; build the binary first: cargo build -p commons)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
size_mib=${1:-512}
bin=${2:-$root/target/debug/commons}
command -v heaptrack >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq heaptrack >/dev/null; }
venv=$root/target/py/huggingface-hub-0.36.2
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q huggingface_hub==0.36.2 && touch "$venv/.installed"; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
port=18461
"$bin" user create bench --data-dir "$work/d" >/dev/null
token=$("$bin" token create bench --data-dir "$work/d" 2>/dev/null | tail -1)
head -c $((size_mib << 20)) /dev/zero | openssl enc -aes-128-ctr -nosalt -pass pass:heap 2>/dev/null > "$work/blob.bin"
RUST_LOG=warn heaptrack -o "$work/heap" "$bin" serve --data-dir "$work/d" --listen 127.0.0.1:$port > "$work/serve.log" 2>&1 &
for _ in $(seq 300); do curl -sf http://127.0.0.1:$port/health >/dev/null && break; sleep 0.2; done
HF_ENDPOINT=http://127.0.0.1:$port HF_TOKEN=$token HF_HUB_DISABLE_XET=1 HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 \
  "$venv/bin/python" - "$work/blob.bin" <<'PY'
import sys
from huggingface_hub import HfApi
api = HfApi(); api.create_repo("bench/big")
api.upload_file(path_or_fileobj=sys.argv[1], path_in_repo="blob.bin", repo_id="bench/big")
PY
# The server itself, not the heaptrack wrapper that started it (same command line).
pid=
for p in $(pgrep -f -- "--listen 127.0.0.1:$port"); do [ "$(cat /proc/$p/comm 2>/dev/null)" = commons ] && pid=$p; done
[ -n "$pid" ] || { echo "server not found" >&2; exit 1; }
kill -INT "$pid"; for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
sleep 2
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F); $size_mib MiB LFS upload"
heaptrack_print -f "$work"/heap*.zst --print-peaks 0 --print-allocators 0 --print-temporary 0 --print-leaks 0 2>/dev/null | grep -E "peak heap|peak RSS"
