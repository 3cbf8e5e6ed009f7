"""Matmul throughput of the C++ CPU backend next to NumPy/OpenBLAS, plus elementwise bandwidth.

    python benchmarks/bench_matmul.py [--repeat 7] [--threads 2] [--markdown]

GFLOP/s (2·m·n·p per second) of ``ndarray_backend_cpu.matmul`` (float32, compact operands,
preallocated output) and of ``numpy.matmul`` on the same shapes with the same thread count:
square 256…2048 and the tall-skinny shapes im2col produces for convolutions.  Then the
effective bandwidth (bytes read + written per second) of a few elementwise and strided-copy
kernels on 4M-element arrays, next to the same NumPy operation with ``out=``.

Medians of ``--repeat`` samples after warm-up; threads pinned (OMP/OpenBLAS), glibc malloc
thresholds high and OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset (the script re-executes itself
with that environment).  Never used as a test.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import blas_info, cpu_name, median_time, pin_environment  # noqa: E402

_threads = "2"
for i, arg in enumerate(sys.argv):
    if arg == "--threads" and i + 1 < len(sys.argv):
        _threads = sys.argv[i + 1]
pin_environment(int(_threads))

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
from needle.backend_ndarray import ndarray_backend_cpu as cpu  # noqa: E402

SQUARE = [256, 512, 1024, 2048]
TALL = [(8192, 147, 16), (8192, 288, 32), (2048, 576, 64)]


def buffers(*arrays):
    out = []
    for a in arrays:
        buf = cpu.Array(a.size, str(a.dtype))
        cpu.from_numpy(a, buf)
        out.append(buf)
    return out


def bench_matmul(m, n, p, repeat, dtype="float32"):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, n)).astype(dtype)
    b = rng.standard_normal((n, p)).astype(dtype)
    ab, bb = buffers(a, b)
    ob = cpu.Array(m * p, dtype)
    out = np.empty((m, p), dtype)
    t_ours = median_time(lambda: cpu.matmul(ab, bb, ob, m, n, p), repeat)
    t_np = median_time(lambda: np.matmul(a, b, out=out), repeat)
    err = np.abs(cpu.to_numpy(ob, (m, p), (p, 1), 0) - a @ b).max()
    flops = 2.0 * m * n * p
    return flops / t_ours / 1e9, flops / t_np / 1e9, err


def bench_bandwidth(repeat, n=1 << 22):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    xb, yb = buffers(x, y)
    ob = cpu.Array(n, "float32")
    out = np.empty(n, np.float32)
    side = 2048
    rb, rout = cpu.Array(side, "float32"), np.empty(side, np.float32)
    xt = x.reshape(side, side)
    rows = [
        (
            "ewise_add (2 reads, 1 write)",
            12 * n,
            lambda: cpu.ewise_add(xb, yb, ob),
            lambda: np.add(x, y, out=out),
        ),
        (
            "scalar_mul (1 read, 1 write)",
            8 * n,
            lambda: cpu.scalar_mul(xb, 1.5, ob),
            lambda: np.multiply(x, 1.5, out=out),
        ),
        ("ewise_relu", 8 * n, lambda: cpu.ewise_relu(xb, ob), lambda: np.maximum(x, 0, out=out)),
        ("ewise_exp", 8 * n, lambda: cpu.ewise_exp(xb, ob), lambda: np.exp(x, out=out)),
        (
            "reduce_sum (rows of 2048)",
            4 * n,
            lambda: cpu.reduce_sum(xb, rb, side),
            lambda: x.reshape(side, side).sum(axis=1, out=rout),
        ),
        (
            "compact contiguous (copy)",
            8 * n,
            lambda: cpu.compact(xb, ob, (side, side), (side, 1), 0),
            lambda: np.copyto(out.reshape(side, side), xt),
        ),
        (
            "compact transposed 2048x2048",
            8 * n,
            lambda: cpu.compact(xb, ob, (side, side), (1, side), 0),
            lambda: np.copyto(out.reshape(side, side), xt.T),
        ),
    ]
    result = []
    for name, nbytes, ours, ref in rows:
        t_ours, t_np = median_time(ours, repeat), median_time(ref, repeat)
        result.append((name, nbytes / t_ours / 1e9, nbytes / t_np / 1e9))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    print(f"# {cpu_name()}; threads={args.threads}; NumPy {np.__version__}: {blas_info()}")
    bar = "|" if args.markdown else ""
    print(
        f"{bar} {'shape m x n x p':<22} {bar} {'needle GFLOP/s':>14} {bar} {'NumPy GFLOP/s':>13} "
        f"{bar} {'ratio':>6} {bar} {'max |err|':>9} {bar}"
    )
    if args.markdown:
        print("|---|---:|---:|---:|---:|")
    for m, n, p in [(s, s, s) for s in SQUARE] + TALL:
        ours, ref, err = bench_matmul(m, n, p, args.repeat)
        print(
            f"{bar} {f'{m} x {n} x {p}':<22} {bar} {ours:>14.1f} {bar} {ref:>13.1f} "
            f"{bar} {ours / ref:>6.2f} {bar} {err:>9.1e} {bar}"
        )
    print()
    head = f"{'kernel (4M float32)':<30} {bar} {'needle GB/s':>11} {bar} {'NumPy GB/s':>10}"
    print(f"{bar} {head} {bar}")
    if args.markdown:
        print("|---|---:|---:|")
    for name, ours, ref in bench_bandwidth(args.repeat):
        print(f"{bar} {name:<30} {bar} {ours:>11.1f} {bar} {ref:>10.1f} {bar}")


if __name__ == "__main__":
    main()
