#!/usr/bin/env bash
# Commons vs PyTorch (CPU) vs TensorFlow/Keras (CPU) on the seed example — the Keras MNIST
# MLP (Flatten, Dense 128 ReLU, Dropout 0.2, Dense 10 softmax; Adam 1e-3; batch 32) — on the
# same MNIST IDX files with 2 threads; then LSTM training steps/s vs torch nn.LSTM with the
# shapes of the `lstm-sentiment` recipe.
#
# Usage: benches/mnist_mlp_vs_pytorch_keras.sh [EPOCHS]   (default 10)
# Env:   BENCH_VENV (default ~/.cache/commons-bench/venv), THREADS (default 2),
#        COMMONS_BIN (a built `commons` binary; default: cargo build --release -p commons)
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-10}
THREADS=${THREADS:-2}
VENV=${BENCH_VENV:-$HOME/.cache/commons-bench/venv}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch, tensorflow' 2>/dev/null; then
    echo "installing torch and tensorflow-cpu from PyPI into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch tensorflow-cpu numpy
fi

if [ -n "${COMMONS_BIN:-}" ]; then
    COMMONS=$COMMONS_BIN
else
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
    cargo build --release -q -p commons
    COMMONS="$CARGO_TARGET_DIR/release/commons"
fi
MNIST=$("$COMMONS" data fetch mnist | tail -1)
SENTIMENT=$("$COMMONS" data fetch uci-sentiment | tail -1)

export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS TF_NUM_INTRAOP_THREADS=$THREADS TF_NUM_INTEROP_THREADS=1 RAYON_NUM_THREADS=$THREADS
"$VENV/bin/python" benches/mnist_mlp_bench.py \
    --commons "$COMMONS" --mnist "$MNIST" --sentiment "$SENTIMENT" --epochs "$EPOCHS" --threads "$THREADS"
