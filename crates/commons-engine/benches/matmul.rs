//! Matrix products of the shapes the fused layers multiply, on one thread: the engine's
//! `kernels::matmul_into` (its AVX-512 kernel where the CPU has it) beside the gemm crate it
//! replaced there (gemm 0.19, what burn's CPU backend runs). `benches/matmul_vs_pytorch.sh` runs
//! it beside PyTorch's `torch.mm` on the same shapes.
//!
//! `cargo bench --profile dev -p commons-engine --bench matmul` prints one JSON line per shape
//! and kernel: `{"kernel", "m", "k", "n", "lhs", "gflops"}`.

use std::time::Instant;

use commons_engine::kernels::matmul::matmul_into_on_gemm;
use commons_engine::kernels::{Matrix, matmul_into};

/// `(m, k, n, lhs stored transposed, what it is)`.
const SHAPES: [(usize, usize, usize, bool, &str); 6] = [
    (32, 64, 256, false, "lstm step: h W_hh"),
    (32, 256, 64, false, "lstm step backward: dG W_hhᵀ"),
    (64, 1024, 256, true, "lstm weight gradient: Hᵀ dG"),
    (1024, 64, 256, false, "lstm input projection"),
    (32, 784, 128, false, "mlp dense 784→128"),
    (784, 32, 128, true, "mlp weight gradient xᵀ dy"),
];

fn main() {
    for (m, k, n, transposed, what) in SHAPES {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.25).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.5).collect();
        let lhs = if transposed { Matrix::row_major(&a[..], k, m).t() } else { Matrix::row_major(&a[..], m, k) };
        let rhs = Matrix::row_major(&b[..], k, n);
        let mut dst = vec![0f32; m * n];
        // About a second of products per kernel.
        let reps = (40e9 / (2 * m * n * k) as f64) as usize + 10;
        for kernel in ["commons", "gemm-0.19"] {
            let mut run = || {
                if kernel == "commons" {
                    matmul_into(&mut dst, n, false, lhs, rhs, false)
                } else {
                    matmul_into_on_gemm(&mut dst, n, false, lhs, rhs)
                }
            };
            run();
            let started = Instant::now();
            for _ in 0..reps {
                run();
            }
            let seconds = started.elapsed().as_secs_f64() / reps as f64;
            let gflops = (2 * m * n * k) as f64 / seconds / 1e9;
            let lhs = if transposed { "transposed" } else { "row-major" };
            println!(r#"{{"kernel":"{kernel}","m":{m},"k":{k},"n":{n},"lhs":"{lhs}","what":"{what}","gflops":{gflops:.1}}}"#);
        }
    }
}
