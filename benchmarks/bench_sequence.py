"""nn.LSTM / nn.GRU forward + backward beside torch.nn.LSTM / GRU in the same run, the
memory a long sequence holds, and the training speed of apps.train_lm's language model.

    python benchmarks/bench_sequence.py [--steps 40 --batch 64 --size 256 --layers 2 --repeat 5]

After one warm-up each, the frameworks alternate for ``--repeat`` rounds and the best round of
each counts (a loaded machine slows single rounds, not the best one); torch is pinned to the
thread count OpenMP uses.  Prints ms per step and the ratio torch_time / needle_time (1.0 = as
fast as PyTorch).  Memory: the bytes the CPU backend's buffer pool had to allocate for one
forward + backward (every buffer held at once) at T = --steps and T = --long-steps.
Language model: tokens/s of one training step (Embedding → LSTM → Linear, Adam) at
apps.train_lm's default sizes, needle and torch.
"""

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import needle as ndl  # noqa: E402


def best_times(steps, repeat):
    """The best of ``repeat`` alternating rounds of each step (after one warm-up call)."""
    for step in steps:
        step()
    best = [float("inf")] * len(steps)
    for _ in range(repeat):
        for k, step in enumerate(steps):
            start = time.perf_counter()
            step()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def needle_step(kind, args, device):
    cls = {"lstm": ndl.nn.LSTM, "gru": ndl.nn.GRU}[kind]
    model = cls(args.size, args.size, num_layers=args.layers, device=device)
    x = ndl.Tensor(np.random.randn(args.steps, args.batch, args.size), device=device,
                   requires_grad=False)  # fmt: skip

    def step():
        out, _ = model(x)
        out.sum().backward()
        out.numpy()

    return step


def torch_step(kind, args):
    import torch

    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    model = cls(args.size, args.size, num_layers=args.layers)
    x = torch.randn(args.steps, args.batch, args.size)

    def step():
        out, _ = model(x)
        out.sum().backward()

    return step


def pool_bytes(kind, args, steps, device):
    """Bytes the CPU backend's pool allocated for one forward + backward at ``steps`` steps."""
    mod = device.mod
    if not hasattr(mod, "pool_stats"):
        return None
    long_args = argparse.Namespace(**dict(vars(args), steps=steps))
    step = needle_step(kind, long_args, device)
    mod.pool_clear()
    before = mod.pool_stats()["fresh_bytes"]
    step()
    return mod.pool_stats()["fresh_bytes"] - before


LM = {"vocab": 6002, "embedding": 64, "hidden": 128, "seq_len": 20, "batch": 32}


def needle_lm_step(device):
    sys.path.insert(0, ROOT)
    from apps.models import LanguageModel

    model = LanguageModel(LM["embedding"], LM["vocab"], LM["hidden"], 1, "lstm", LM["seq_len"],
                          device=device)  # fmt: skip
    opt = ndl.optim.Adam(model.parameters(), lr=0.003)
    x = ndl.Tensor(np.random.randint(0, LM["vocab"], (LM["seq_len"], LM["batch"])),
                   device=device, requires_grad=False)  # fmt: skip
    y = ndl.Tensor(np.random.randint(0, LM["vocab"], (LM["seq_len"] * LM["batch"],)),
                   device=device, requires_grad=False)  # fmt: skip
    loss_fn = ndl.nn.SoftmaxLoss()

    def step():
        opt.reset_grad()
        logits, _ = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        opt.step()
        loss.numpy()

    return step


def torch_lm_step():
    import torch

    emb = torch.nn.Embedding(LM["vocab"], LM["embedding"])
    lstm = torch.nn.LSTM(LM["embedding"], LM["hidden"])
    linear = torch.nn.Linear(LM["hidden"], LM["vocab"])
    params = [*emb.parameters(), *lstm.parameters(), *linear.parameters()]
    opt = torch.optim.Adam(params, lr=0.003)
    x = torch.randint(0, LM["vocab"], (LM["seq_len"], LM["batch"]))
    y = torch.randint(0, LM["vocab"], (LM["seq_len"] * LM["batch"],))

    def step():
        opt.zero_grad()
        out, _ = lstm(emb(x))
        loss = torch.nn.functional.cross_entropy(linear(out.reshape(-1, LM["hidden"])), y)
        loss.backward()
        opt.step()

    return step


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--long-steps", type=int, default=400, help="T of the memory line")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    device = ndl.cpu() if ndl.cpu().enabled() else ndl.cpu_numpy()
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    except ImportError:
        torch = None
    print(f"T={args.steps} B={args.batch} input=hidden={args.size} layers={args.layers}, "
          f"forward+backward, device {device}, best of {args.repeat}")  # fmt: skip
    for kind in ("lstm", "gru"):
        steps = [needle_step(kind, args, device)] + ([torch_step(kind, args)] if torch else [])
        times = best_times(steps, args.repeat)
        line = f"{kind}: needle {1e3 * times[0]:8.1f} ms"
        if torch is not None:
            line += f" | torch {1e3 * times[1]:8.1f} ms | ratio torch/needle "
            line += f"{times[1] / times[0]:.2f}"
        print(line, flush=True)
    for steps in (args.steps, args.long_steps):
        held = pool_bytes("lstm", args, steps, device)
        if held is not None:
            print(f"lstm memory, forward+backward at T={steps}: {held / 2**20:,.0f} MiB",
                  flush=True)  # fmt: skip
    tokens = LM["seq_len"] * LM["batch"]
    steps = [needle_lm_step(device)] + ([torch_lm_step()] if torch else [])
    times = best_times(steps, args.repeat)
    line = (f"language model (LSTM, vocab {LM['vocab']}, embedding {LM['embedding']}, hidden "
            f"{LM['hidden']}, T={LM['seq_len']} B={LM['batch']}) training: needle "
            f"{tokens / times[0]:,.0f} tokens/s")  # fmt: skip
    if torch is not None:
        line += f" | torch {tokens / times[1]:,.0f} tokens/s | ratio {times[1] / times[0]:.2f}"
    print(line, flush=True)


if __name__ == "__main__":
    main()
