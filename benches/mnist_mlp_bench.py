"""Driver for benches/mnist_mlp_vs_pytorch_keras.sh: runs each framework in its own process
(so peak RSS is per framework, from wait4) and prints one comparable table."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

# What every PyTorch MNIST script starts with: its arguments (MNIST dir, epochs, threads), the
# seed, and a reader of the IDX files.
TORCH_MNIST_PRELUDE = textwrap.dedent(
    """
    import json, math, os, sys, time
    import numpy as np, torch
    mnist, epochs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads); torch.manual_seed(42)
    def idx(name):
        data = open(os.path.join(mnist, name), 'rb').read()
        dims = data[3]
        shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], 'big') for i in range(dims)]
        return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)
    def train_and_report(model, opt, x, y, xt, yt, after_step=lambda: None):
        # Batches of 32 in a fresh order each epoch; prints seconds per epoch and test accuracy.
        loss_fn = torch.nn.CrossEntropyLoss()
        times = []
        for epoch in range(epochs):
            start = time.perf_counter(); model.train()
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 32):
                b = perm[i:i + 32]
                opt.zero_grad(); loss = loss_fn(model(x[b]), y[b]); loss.backward(); opt.step(); after_step()
            times.append(time.perf_counter() - start)
        model.eval()
        with torch.no_grad():
            right = sum((model(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum().item() for i in range(0, len(xt), 1000))
        print(json.dumps({"seconds_per_epoch": sum(times) / len(times), "test_accuracy": right / len(xt)}))
    """
)

TORCH_MLP = TORCH_MNIST_PRELUDE + textwrap.dedent(
    """
    x = torch.tensor(idx('train-images-idx3-ubyte') / 255.0, dtype=torch.float32)
    y = torch.tensor(idx('train-labels-idx1-ubyte'), dtype=torch.long)
    xt = torch.tensor(idx('t10k-images-idx3-ubyte') / 255.0, dtype=torch.float32)
    yt = torch.tensor(idx('t10k-labels-idx1-ubyte'), dtype=torch.long)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                torch.nn.Dropout(0.2), torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    train_and_report(model, opt, x, y, xt, yt)
    """
)

KERAS_MLP = textwrap.dedent(
    """
    import json, sys, time, os
    import numpy as np
    mnist, epochs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.random.set_seed(42)
    def idx(name):
        data = open(os.path.join(mnist, name), 'rb').read()
        dims = data[3]
        shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], 'big') for i in range(dims)]
        return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)
    x, y = idx('train-images-idx3-ubyte') / 255.0, idx('train-labels-idx1-ubyte')
    xt, yt = idx('t10k-images-idx3-ubyte') / 255.0, idx('t10k-labels-idx1-ubyte')
    model = tf.keras.models.Sequential([
        tf.keras.layers.Flatten(input_shape=(28, 28)),
        tf.keras.layers.Dense(128, activation='relu'),
        tf.keras.layers.Dropout(0.2),
        tf.keras.layers.Dense(10, activation='softmax')])
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    class Timer(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None): self.start = time.perf_counter()
        def on_epoch_end(self, epoch, logs=None): times.append(time.perf_counter() - self.start)
    times = []
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[Timer()])
    _, acc = model.evaluate(xt, yt, verbose=0)
    print(json.dumps({"seconds_per_epoch": sum(times) / len(times), "test_accuracy": float(acc)}))
    """
)

TORCH_LSTM = textwrap.dedent(
    """
    import json, sys, time
    import torch
    vocab, steps, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads); torch.manual_seed(0)
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(vocab, 64); self.drop = torch.nn.Dropout(0.3)
            self.lstm = torch.nn.LSTM(64, 64, batch_first=True); self.out = torch.nn.Linear(64, 2)
        def forward(self, x):
            h, _ = self.lstm(self.drop(self.emb(x)))
            return self.out(self.drop(h.max(1).values))
    net = Net(); opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x = torch.randint(0, vocab, (steps, 32, 32)); y = torch.randint(0, 2, (steps, 32))
    for i in range(5):
        opt.zero_grad(); torch.nn.functional.cross_entropy(net(x[i]), y[i]).backward(); opt.step()
    start = time.perf_counter()
    for i in range(steps):
        opt.zero_grad(); loss = torch.nn.functional.cross_entropy(net(x[i]), y[i]); loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0); opt.step()
    print(json.dumps({"steps_per_second": steps / (time.perf_counter() - start)}))
    """
)


def run_measured(cmd, out_file):
    """Runs `cmd` with its stdout in `out_file` (stderr beside it); returns stdout, wall seconds and
    peak RSS in MiB (from wait4, so the child's alone)."""
    import time
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        err_fd = os.open(out_file + ".err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(err_fd, 2)
        os.execvp(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    out = open(out_file).read()
    if status != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed:\n{open(out_file + '.err').read()[-3000:]}")
    return out, wall, usage.ru_maxrss / 1024.0


def commons_row(commons, recipe, data, work, out_file, epochs, threads):
    """Trains `recipe` with Commons; its row: name, s/epoch, test accuracy, peak RSS MiB."""
    model_dir = os.path.join(work, f"commons-{recipe}")
    _, _, rss = run_measured([commons, "train", recipe, "--data", data, "--out", model_dir,
                              "--set", f"training.epochs={epochs}", "--set", f"training.threads={threads}"], out_file)
    metrics = json.load(open(os.path.join(model_dir, "metrics.json")))
    return ("Commons (burn-flex)", metrics["seconds_per_epoch"], metrics["test"]["accuracy"], rss)


def python_row(name, source, work, out_file, *argv):
    """Runs a script printing {"seconds_per_epoch", "test_accuracy"} last; its row as above."""
    # Not named after the framework: a `tensorflow.py` would import itself instead of TensorFlow.
    script = os.path.join(work, "bench_" + name.split("/")[0].lower() + ".py")
    open(script, "w").write(source)
    out, _, rss = run_measured([sys.executable, script, *map(str, argv)], out_file)
    r = json.loads(out.strip().splitlines()[-1])
    return (name, r["seconds_per_epoch"], r["test_accuracy"], rss)


def bench_args(epochs, threads, *data):
    """The drivers' arguments (`--commons`, `--mnist`, `data`…, `--epochs`, `--threads`), a
    fresh work directory, and the file each run's stdout goes to."""
    ap = argparse.ArgumentParser()
    for name in ("commons", "mnist", *data):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--threads", type=int, default=threads)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="commons-bench-")
    return args, work, os.path.join(work, "stdout")


def main():
    args, work, out_file = bench_args(10, 2, "sentiment")
    rows = []

    rows.append(commons_row(args.commons, "keras-mnist-mlp", args.mnist, work, out_file, args.epochs, args.threads))
    rows.append(python_row("PyTorch", TORCH_MLP, work, out_file, args.mnist, args.epochs, args.threads))
    rows.append(python_row("TensorFlow/Keras", KERAS_MLP, work, out_file, args.mnist, args.epochs, args.threads))

    print(f"\nKeras MNIST MLP, batch 32, {args.epochs} epochs, {args.threads} threads")
    print(f"{'framework':<22}{'s/epoch':>10}{'test acc':>10}{'peak RSS MiB':>14}{'s/epoch vs Commons':>20}")
    base = rows[0][1]
    for name, spe, acc, rss in rows:
        print(f"{name:<22}{spe:>10.2f}{acc:>10.4f}{rss:>14.0f}{spe / base:>19.2f}x")

    lstm_dir = os.path.join(work, "commons-lstm")
    _, wall, rss = run_measured([args.commons, "train", "lstm-sentiment", "--data", args.sentiment, "--out", lstm_dir,
                                 "--set", "training.epochs=3", "--set", f"training.threads={args.threads}"], out_file)
    metrics = json.load(open(os.path.join(lstm_dir, "metrics.json")))
    config = json.load(open(os.path.join(lstm_dir, "config.json")))
    vocab = len(config["vocabulary"]["tokens"])
    commons_steps = metrics["train_samples_per_second"] / 32.0
    script = os.path.join(work, "torch_lstm.py"); open(script, "w").write(TORCH_LSTM)
    out, _, torch_rss = run_measured([sys.executable, script, str(vocab), "200", str(args.threads)], out_file)
    torch_steps = json.loads(out.strip().splitlines()[-1])["steps_per_second"]
    print(f"\nLSTM training steps/s (batch 32, 32 steps, embedding 64, hidden 64, vocab {vocab}, max-pool, Adam, clip 5)")
    print(f"{'Commons (burn-flex)':<22}{commons_steps:>10.1f} steps/s  peak RSS {rss:.0f} MiB  (test acc {metrics['test']['accuracy']:.4f} after 3 epochs)")
    print(f"{'PyTorch nn.LSTM':<22}{torch_steps:>10.1f} steps/s  peak RSS {torch_rss:.0f} MiB  ratio Commons/PyTorch {commons_steps / torch_steps:.2f}")


if __name__ == "__main__":
    main()
