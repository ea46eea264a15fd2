#!/usr/bin/env bash
# ONNX inference: Commons (tract) vs onnxruntime (PyPI) on the same exported models, and the
# native engine beside them. Each scores the 10,000 MNIST test images in batches of 256 on one
# thread; "seconds" is the best of three whole runs (the model read, compiled and run, and the
# images read), as `commons eval` does it.
#
# Usage: benches/onnx_vs_onnxruntime.sh
# Env:   BENCH_VENV (default ~/.cache/commons-bench/venv), COMMONS_BIN (a built `commons`;
#        default: cargo build -p commons, the dev profile, dependencies at opt-level 3)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${BENCH_VENV:-$HOME/.cache/commons-bench/venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import onnxruntime, numpy' 2>/dev/null; then
    echo "installing onnxruntime from PyPI into $VENV" >&2
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q onnxruntime numpy
fi
if [ -n "${COMMONS_BIN:-}" ]; then
    COMMONS=$COMMONS_BIN
else
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
    cargo build -q -p commons
    COMMONS="$CARGO_TARGET_DIR/debug/commons"
fi
MNIST=$("$COMMONS" data fetch mnist | tail -1)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1

best_of_three() {
    local best=""
    for _ in 1 2 3; do
        local start end
        start=$(date +%s.%N)
        "$@" > "$WORK/last.json"
        end=$(date +%s.%N)
        best=$(python3 -c "import sys; a=float(sys.argv[1]); b=sys.argv[2]; print(a if not b else min(a, float(b)))" "$(echo "$end - $start" | bc)" "$best")
    done
    echo "$best"
}

printf '%-10s %-22s %10s %10s\n' model runtime seconds accuracy
for recipe in keras-mnist-mlp mnist-cnn; do
    "$COMMONS" train "$recipe" --data "$MNIST" --out "$WORK/$recipe" --set training.epochs=1 --set training.threads=1 > /dev/null
    "$COMMONS" export-onnx "$WORK/$recipe" --out "$WORK/$recipe-onnx" > /dev/null
    for dir in "$recipe" "$recipe-onnx"; do
        seconds=$(best_of_three "$COMMONS" eval "$WORK/$dir" --data "$MNIST")
        accuracy=$(python3 -c "import json; print(json.load(open('$WORK/last.json'))['accuracy'])")
        runtime="commons (burn)"; [ "$dir" = "$recipe" ] || runtime="commons (tract)"
        printf '%-10s %-22s %10.3f %10s\n' "${recipe%%-*}" "$runtime" "$seconds" "$accuracy"
    done
    "$VENV/bin/python" - "$WORK/$recipe-onnx/model.onnx" "$MNIST" "${recipe%%-*}" <<'PY'
import os, sys, time
import numpy as np, onnxruntime as ort
model, mnist, name = sys.argv[1:]
def idx(file):
    data = open(os.path.join(mnist, file), 'rb').read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], 'big') for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)
best = None
for _ in range(3):
    start = time.perf_counter()
    options = ort.SessionOptions(); options.intra_op_num_threads = 1; options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    x = idx("t10k-images-idx3-ubyte").astype(np.float32) / 255.0
    y = idx("t10k-labels-idx1-ubyte")
    shape = [d if isinstance(d, int) else -1 for d in session.get_inputs()[0].shape]
    x = x.reshape([len(x)] + shape[1:])
    right = 0
    for i in range(0, len(x), 256):
        right += int((session.run(None, {session.get_inputs()[0].name: x[i:i + 256]})[0].argmax(1) == y[i:i + 256]).sum())
    seconds = time.perf_counter() - start
    best = seconds if best is None else min(best, seconds)
print(f"{name:<10} {'onnxruntime ' + ort.__version__:<22} {best:10.3f} {right / len(x):10}")
PY
done
