#!/usr/bin/env bash
# One-thread matrix products of the fused layers' shapes: the engine's kernel (AVX-512 where the
# CPU has it) and the gemm crate it replaced (the `matmul` bench), then PyTorch's torch.mm
# (oneDNN/MKL) on the same shapes. One JSON line per shape and kernel.
#
# Usage: benches/matmul_vs_pytorch.sh
# Env:   BENCH_VENV (default ~/.cache/commons-bench/venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${BENCH_VENV:-$HOME/.cache/commons-bench/venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    echo "installing torch from PyPI into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch numpy
fi
RAYON_NUM_THREADS=1 cargo bench -q --profile dev -p commons-engine --bench matmul
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE "$VENV/bin/python" benches/matmul_bench.py
