#!/usr/bin/env bash
# Dedup ratio of successive training checkpoints: trains keras-mnist-mlp for 1, 2 and 3 epochs
# (same seed), commits each model directory as a new revision of one model repo through the
# hub, and reports how many bytes each revision added to the store.
# Usage: benches/checkpoint_dedup.sh [path/to/commons]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/commons}
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
data=$("$bin" data fetch mnist | tail -1)
"$bin" user create bench --data-dir "$work/d" >/dev/null
export HF_TOKEN=$("$bin" token create bench --data-dir "$work/d" 2>/dev/null | tail -1)
port=18441
RUST_LOG=warn "$bin" serve --data-dir "$work/d" --listen 127.0.0.1:$port 2>/dev/null &
for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/health >/dev/null && break; sleep 0.1; done
export HF_ENDPOINT=http://127.0.0.1:$port HF_HOME=$work/hf
"$bin" repo create bench/mlp >/dev/null
echo "date: $(date -u +%F), $(nproc) cores"
prev=$(du -sb "$work/d/objects" | cut -f1)
for epochs in 1 2 3; do
  "$bin" train keras-mnist-mlp --data "$data" --out "$work/run$epochs" --set training.epochs=$epochs >/dev/null 2>&1
  "$bin" upload bench/mlp "$work/run$epochs/model.safetensors" >/dev/null 2>&1
  now=$(du -sb "$work/d/objects" | cut -f1)
  size=$(stat -c %s "$work/run$epochs/model.safetensors")
  echo "checkpoint after $epochs epoch(s): model.safetensors $size bytes, store grew $((now - prev)) bytes ($(awk "BEGIN{printf \"%.1f\", 100*($now-$prev)/$size}")% of the file)"
  prev=$now
done
