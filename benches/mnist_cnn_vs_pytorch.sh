#!/usr/bin/env bash
# Commons vs PyTorch (CPU) on the `mnist-cnn` recipe's network, same MNIST IDX files, same
# threads (1 by default, as the suite trains), batch 32, Adam 2e-3 with a cosine decay.
#
# Usage: benches/mnist_cnn_vs_pytorch.sh [EPOCHS]   (default 1)
# Env:   BENCH_VENV (default ~/.cache/commons-bench/venv), THREADS (default 1),
#        COMMONS_BIN (a built `commons` binary; default: cargo build -p commons, the dev
#        profile, whose burn kernels are built at opt-level 3)
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${1:-1}
THREADS=${THREADS:-1}
VENV=${BENCH_VENV:-$HOME/.cache/commons-bench/venv}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch, numpy' 2>/dev/null; then
    echo "installing torch from PyPI into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch numpy
fi

if [ -n "${COMMONS_BIN:-}" ]; then
    COMMONS=$COMMONS_BIN
else
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
    cargo build -q -p commons
    COMMONS="$CARGO_TARGET_DIR/debug/commons"
fi
MNIST=$("$COMMONS" data fetch mnist | tail -1)

# PyTorch's OpenMP threads spin between operations by default, which on a small machine takes
# the cores from everything else; passive waiting is its fair setting here.
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS OMP_WAIT_POLICY=PASSIVE RAYON_NUM_THREADS=$THREADS
"$VENV/bin/python" benches/mnist_cnn_bench.py --commons "$COMMONS" --mnist "$MNIST" --epochs "$EPOCHS" --threads "$THREADS"
