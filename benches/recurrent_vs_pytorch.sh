#!/usr/bin/env bash
# Recurrent training steps/s, Commons (fused LSTM/GRU on burn's CPU backend) vs PyTorch
# (`nn.LSTM` / `nn.GRU`), the `lstm-sentiment` network's shapes, 1 and 2 threads, each run in its
# own process, in turns: Commons then PyTorch for each kind and thread count, ROUNDS times.
#
# Usage: benches/recurrent_vs_pytorch.sh [STEPS] [ROUNDS]   (default 300 steps, 2 rounds)
# Env:   BENCH_VENV (default ~/.cache/commons-bench/venv)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-300}
ROUNDS=${2:-2}
VENV=${BENCH_VENV:-$HOME/.cache/commons-bench/venv}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    echo "installing torch from PyPI into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch numpy
fi
cargo bench --profile dev -p commons-engine --bench recurrent --no-run -q 2>/dev/null
# PyTorch's OpenMP threads spin between operations by default, which on a small machine takes
# the cores from everything else; passive waiting is its fair setting here.
export OMP_WAIT_POLICY=PASSIVE
for round in $(seq "$ROUNDS"); do
    for kind in lstm gru; do
        for threads in 1 2; do
            RAYON_NUM_THREADS=$threads cargo bench -q --profile dev -p commons-engine --bench recurrent -- "$kind" "$threads" "$STEPS" | tail -1
            OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads "$VENV/bin/python" benches/recurrent_bench.py "$kind" "$threads" "$STEPS"
        done
    done
done
