"""PyTorch's side of benches/matmul_vs_pytorch.sh: torch.mm on one thread, the shapes of the
engine's `matmul` bench (a transposed left operand as a transposed view, as autograd passes it).
Prints one JSON line per shape: {"kernel", "m", "k", "n", "lhs", "gflops"}."""
import json
import time

import torch

SHAPES = [
    (32, 64, 256, False),
    (32, 256, 64, False),
    (64, 1024, 256, True),
    (1024, 64, 256, False),
    (32, 784, 128, False),
    (784, 32, 128, True),
]

torch.set_num_threads(1)
for m, k, n, transposed in SHAPES:
    a = torch.randn(k, m).t() if transposed else torch.randn(m, k)
    b = torch.randn(k, n)
    for _ in range(10):
        torch.mm(a, b)
    reps = int(40e9 / (2 * m * n * k)) + 10
    started = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    seconds = (time.perf_counter() - started) / reps
    print(json.dumps({"kernel": f"torch {torch.__version__}", "m": m, "k": k, "n": n,
                      "lhs": "transposed" if transposed else "row-major",
                      "gflops": round(2 * m * n * k / seconds / 1e9, 1)}))
