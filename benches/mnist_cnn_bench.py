"""Driver for benches/mnist_cnn_vs_pytorch.sh: the `mnist-cnn` recipe trained by Commons and the
same network trained by PyTorch, each in its own process on the same MNIST IDX files, with the
same threads, batch, optimizer and schedule; prints s/epoch, test accuracy and peak RSS."""

import textwrap

from mnist_mlp_bench import TORCH_MNIST_PRELUDE, bench_args, commons_row, python_row

# The recipe's network (crates/commons-recipe/recipes/mnist-cnn.toml): two conv 3x3 (16, 32
# filters, padding 1, ReLU) / max-pool 2 blocks, dropout 0.25, dense 10; Adam 2e-3 decayed by a
# cosine to 1e-4 over the run; batch 32; 90% of the training images (the recipe keeps 10% for
# validation).
TORCH_CNN = TORCH_MNIST_PRELUDE + textwrap.dedent(
    """
    x = torch.tensor(idx('train-images-idx3-ubyte') / 255.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(idx('train-labels-idx1-ubyte'), dtype=torch.long)
    keep = torch.randperm(len(x))[: len(x) * 9 // 10]
    x, y = x[keep], y[keep]
    xt = torch.tensor(idx('t10k-images-idx3-ubyte') / 255.0, dtype=torch.float32).unsqueeze(1)
    yt = torch.tensor(idx('t10k-labels-idx1-ubyte'), dtype=torch.long)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 10))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps = epochs * math.ceil(len(x) / 32)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=1e-4)
    train_and_report(model, opt, x, y, xt, yt, sched.step)
    """
)


def main():
    args, work, out_file = bench_args(1, 1)
    rows = [
        commons_row(args.commons, "mnist-cnn", args.mnist, work, out_file, args.epochs, args.threads),
        python_row("PyTorch", TORCH_CNN, work, out_file, args.mnist, args.epochs, args.threads),
    ]

    print(f"\nmnist-cnn, batch 32, {args.epochs} epoch(s), {args.threads} thread(s)")
    print(f"{'framework':<22}{'s/epoch':>10}{'test acc':>10}{'peak RSS MiB':>14}{'s/epoch ÷ PyTorch':>20}")
    torch_spe = rows[-1][1]
    for name, spe, acc, rss in rows:
        print(f"{name:<22}{spe:>10.2f}{acc:>10.4f}{rss:>14.0f}{spe / torch_spe:>19.2f}x")


if __name__ == "__main__":
    main()
