"""Framework overhead: microseconds per small op, next to NumPy doing the same arithmetic.

    python benchmarks/bench_overhead.py [--device cpu|cpu_numpy] [--size 8] [--repeat 7]

For 8x8 operands the arithmetic is a few nanoseconds, so the needle figures are almost all
Python: Tensor creation, op dispatch, the NDArray wrapper and the backend call.  Columns:

    numpy      the same arithmetic on NumPy arrays (for backward: the arithmetic of the
               gradients, e.g. g @ b.T and a.T @ g for matmul)
    ndarray    the NDArray operation alone (no Tensor, no graph)
    no_grad    the needle op on Tensors inside ``needle.no_grad()``
    forward    the needle op recording the graph (inputs require grad)
    fwd+bwd    forward, then ``backward(out_grad)`` (create_graph=False)

Times are the median of ``--repeat`` runs of a loop sized to take ~20 ms; with ``--rounds``
the whole table is measured that many times and each cell keeps its best round (on a shared
machine the least-disturbed round is the closest to the real cost).  Thread counts are pinned
to 1 and glibc's malloc thresholds set high (the script re-executes itself with them).
"""

import argparse
import os
import sys
import timeit

_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
}
if any(os.environ.get(k) != v for k, v in _ENV.items()):
    os.environ.update(_ENV)
    os.execv(sys.executable, [sys.executable] + sys.argv)

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import needle as ndl  # noqa: E402


def per_call_us(fn, repeat):
    """Median microseconds per call of ``fn``."""
    number, elapsed = 1, 0.0
    while elapsed < 0.02:
        number *= 2
        elapsed = timeit.timeit(fn, number=number)
    runs = timeit.repeat(fn, number=number, repeat=repeat)
    return 1e6 * sorted(runs)[len(runs) // 2] / number


def bench(device, size, repeat):
    rng = np.random.default_rng(0)
    x, y, g = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(3))
    a = ndl.Tensor(x, device=device, dtype="float32")
    b = ndl.Tensor(y, device=device, dtype="float32")
    out_grad = ndl.Tensor(g, device=device, dtype="float32", requires_grad=False)
    ca, cb = a.detach(), b.detach()
    xa, ya = a.realize_cached_data(), b.realize_cached_data()

    def no_grad(op):
        def run():
            with ndl.no_grad():
                op(ca, cb)
        return run

    def fwd_bwd(op):
        def run():
            op(a, b).backward(out_grad, create_graph=False)
        return run

    cases = {
        "add": (lambda p, q: p + q, lambda: x + y, lambda: (x + y, g.copy(), g.copy())),
        "matmul": (lambda p, q: p @ q, lambda: x @ y, lambda: (x @ y, g @ y.T, x.T @ g)),
    }
    rows = []
    for name, (op, np_fwd, np_fwd_bwd) in cases.items():
        rows.append((
            f"{name} {size}x{size}",
            per_call_us(np_fwd, repeat),
            per_call_us(lambda op=op: op(xa, ya), repeat),
            per_call_us(no_grad(op), repeat),
            per_call_us(lambda op=op: op(a, b), repeat),
            per_call_us(np_fwd_bwd, repeat),
            per_call_us(fwd_bwd(op), repeat),
        ))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu (default when built) or cpu_numpy")
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if args.device is None:
        device = ndl.cpu() if ndl.cpu().enabled() else ndl.cpu_numpy()
    else:
        device = getattr(ndl, args.device)()
    print(f"device {device}, NEEDLE_BACKEND={ndl.BACKEND}, numpy {np.__version__}, "
          f"float32, median of {args.repeat}, best of {args.rounds} rounds")
    print("| op | numpy fwd | ndarray fwd | needle no_grad | needle fwd | numpy fwd+bwd "
          "| needle fwd+bwd | fwd / numpy | fwd+bwd / numpy |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    rounds = [bench(device, args.size, args.repeat) for _ in range(args.rounds)]
    best = []
    for rows in zip(*rounds):  # one op's row from every round
        best.append((rows[0][0], *(min(cells) for cells in zip(*(row[1:] for row in rows)))))
    for name, npf, nda, nog, fwd, npfb, fb in best:
        print(f"| {name} | {npf:.2f} | {nda:.2f} | {nog:.2f} | {fwd:.2f} | {npfb:.2f} | "
              f"{fb:.2f} | {fwd / npf:.0f}x | {fb / npfb:.0f}x |")
    print("(times in microseconds per call)")


if __name__ == "__main__":
    main()
