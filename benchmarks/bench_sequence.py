"""nn.LSTM / nn.GRU forward + backward beside torch.nn.LSTM / GRU in the same run.

    python benchmarks/bench_sequence.py [--steps 40 --batch 64 --size 256 --layers 2 --repeat 5]

Median of ``--repeat`` timed steps after one warm-up; threads as the libraries choose them
(torch is pinned to the same count as OpenMP's default here).  Prints ms per step and the
ratio torch_time / needle_time (1.0 = as fast as PyTorch).
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import needle as ndl  # noqa: E402


def median_time(step, repeat):
    step()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=40)
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
          f"forward+backward, device {device}")  # fmt: skip
    for kind in ("lstm", "gru"):
        ours = median_time(needle_step(kind, args, device), args.repeat)
        line = f"{kind}: needle {1e3 * ours:8.1f} ms"
        if torch is not None:
            theirs = median_time(torch_step(kind, args), args.repeat)
            line += f" | torch {1e3 * theirs:8.1f} ms | ratio torch/needle {theirs / ours:.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
