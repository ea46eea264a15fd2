#!/usr/bin/env bash
# ONNX inference: Commons (tract) vs onnxruntime (PyPI) on the same exported models, with the
# native engine (burn) beside them. Each classifies the 10,000 MNIST test images in batches of
# 256 on one thread; seconds are inference alone (the model loaded and the images in memory
# first), best of three runs. The models are `keras-mnist-mlp` and `mnist-cnn` after one epoch,
# exported with `commons export-onnx`.
#
# Usage: benches/onnx_vs_onnxruntime.sh
# Env:   BENCH_VENV (default ~/.cache/commons-bench/venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${BENCH_VENV:-$HOME/.cache/commons-bench/venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import onnxruntime, numpy' 2>/dev/null; then
    echo "installing onnxruntime from PyPI into $VENV" >&2
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q onnxruntime numpy
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build -q -p commons
COMMONS="$CARGO_TARGET_DIR/debug/commons"
BENCH=$(cargo bench --profile dev -q -p commons-engine --bench onnx --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and m["target"]["name"] == "onnx"][0])')
MNIST=$("$COMMONS" data fetch mnist 2>/dev/null | tail -1)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1

printf '%-16s %18s %18s %18s %12s\n' model "commons burn s" "commons tract s" "onnxruntime s" "tract/ort"
for recipe in keras-mnist-mlp mnist-cnn; do
    "$COMMONS" train "$recipe" --data "$MNIST" --out "$WORK/$recipe" --set training.epochs=1 --set training.threads=1 > /dev/null 2>&1
    "$COMMONS" export-onnx "$WORK/$recipe" --out "$WORK/$recipe-onnx" > /dev/null
    ours=$("$BENCH" "$WORK/$recipe" "$WORK/$recipe-onnx" "$MNIST")
    theirs=$("$VENV/bin/python" - "$WORK/$recipe-onnx/model.onnx" "$MNIST" <<'PY'
import os, sys, time
import numpy as np, onnxruntime as ort
model, mnist = sys.argv[1:]
def idx(file):
    data = open(os.path.join(mnist, file), 'rb').read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], 'big') for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)
options = ort.SessionOptions(); options.intra_op_num_threads = 1; options.inter_op_num_threads = 1
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
shape = [d if isinstance(d, int) else -1 for d in session.get_inputs()[0].shape]
x = (idx("t10k-images-idx3-ubyte").astype(np.float32) / 255.0)
x = x.reshape([len(x)] + shape[1:])
best = None
for _ in range(3):
    start = time.perf_counter()
    classes = np.concatenate([session.run(None, {name: x[i:i + 256]})[0].argmax(1) for i in range(0, len(x), 256)])
    seconds = time.perf_counter() - start
    best = seconds if best is None else min(best, seconds)
print(best, ort.__version__)
PY
)
    python3 - "$recipe" "$ours" "$theirs" <<'PY'
import json, sys
recipe, ours, theirs = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3].split()
ort = float(theirs[0])
print(f"{recipe:<16} {ours['burn_seconds']:18.3f} {ours['tract_seconds']:18.3f} {ort:18.3f} {ours['tract_seconds'] / ort:11.2f}x"
      f"   (onnxruntime {theirs[1]}; burn and tract agree on {ours['same_class']} of {ours['images']})")
PY
done
