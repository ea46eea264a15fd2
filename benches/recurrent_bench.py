"""PyTorch side of benches/recurrent_vs_pytorch.sh: the network of the `lstm-sentiment` recipe
on `nn.LSTM` or `nn.GRU` (PyTorch's fused CPU kernels), same shapes as Commons' `recurrent`
bench: batch 32, 32 tokens, embedding 64 of 4,493 words, hidden 64 max-pooled over time,
dropout 0.3, dense 2, Adam 3e-3, gradient clipping at 5, seeded random token ids. Prints one
JSON line like the Commons bench."""

import json
import sys
import time

import torch

BATCH, TOKENS, VOCAB = 32, 32, 4493


class Net(torch.nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.embedding = torch.nn.Embedding(VOCAB, 64)
        self.drop = torch.nn.Dropout(0.3)
        layer = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
        self.recurrent = layer(64, 64, batch_first=True)
        self.dense = torch.nn.Linear(64, 2)

    def forward(self, tokens):
        x = self.drop(self.embedding(tokens))
        sequence, _ = self.recurrent(x)
        return self.dense(self.drop(sequence.max(dim=1).values))


def main():
    kind, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(11)
    tokens = torch.randint(2, VOCAB, (steps, BATCH, TOKENS))
    targets = torch.randint(0, 2, (steps, BATCH))
    model = Net(kind)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(tokens[step]), targets[step])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    seconds = time.perf_counter() - started
    print(json.dumps({"framework": f"pytorch {torch.__version__}", "kind": kind, "threads": threads,
                      "steps": steps, "seconds": seconds, "steps_per_second": steps / seconds}))


if __name__ == "__main__":
    main()
