"""Peak extra memory of one convolution call, relative to its input and output.

    python benchmarks/bench_conv_memory.py [--batch 128]

For each layer of the conv benchmarks (batch 128, float32, channels-last needle tensors) the
CPU backend's buffer pool is emptied, then one call is made and the bytes the pool had to
allocate fresh during it are read from ``pool_stats()``: every buffer the call held at once,
each rounded up to its size class (at most 1/8 more), so an upper bound on the peak. Extra =
that minus the call's own results (the output; for backward the input and weight gradients);
the ratio divides it by input + output bytes.  Never used as a test.
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import needle as ndl  # noqa: E402
from common import CONV_LAYERS  # noqa: E402


def fresh_bytes_of(fn, mod):
    """Bytes the pool allocated fresh while ``fn`` ran from an empty pool, and fn's result."""
    mod.pool_clear()
    before = mod.pool_stats()["fresh_bytes"]
    result = fn()
    return mod.pool_stats()["fresh_bytes"] - before, result


def measure(layer, batch, device):
    name, cin, cout, k, stride, size, groups, dilation, input_grad = layer
    mod = device.mod
    x = ndl.Tensor(
        np.random.randn(batch, size, size, cin).astype(np.float32),
        device=device,
        requires_grad=input_grad,
    )
    w = ndl.Tensor(np.random.randn(k, k, cin // groups, cout).astype(np.float32), device=device)
    pad = dilation * (k - 1) // 2
    conv = lambda: ndl.conv(x, w, stride, pad, dilation, groups)  # noqa: E731
    fwd, y = fresh_bytes_of(conv, mod)
    g = ndl.Tensor(np.random.randn(*y.shape).astype(np.float32), device=device, requires_grad=False)
    bwd, _ = fresh_bytes_of(lambda: y.backward(g), mod)
    in_bytes, out_bytes, w_bytes = 4 * x.numpy().size, 4 * y.numpy().size, 4 * w.numpy().size
    grads = (in_bytes if input_grad else 0) + w_bytes
    return name, in_bytes + out_bytes, fwd - out_bytes, bwd - grads


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args()
    device = ndl.cpu()
    if not device.enabled():
        sys.exit("the C++ backend is not built (make)")
    print(f"batch {args.batch}, float32, cpu(); MiB; ratio = extra / (input + output)")
    print("| layer | input + output | forward extra | ratio | backward extra | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    mib = 2.0**20
    for layer in CONV_LAYERS:
        name, io, fwd, bwd = measure(layer, args.batch, device)
        print(
            f"| {name} | {io / mib:.2f} | {max(fwd, 0) / mib:.2f} | {max(fwd, 0) / io:.2f} | "
            f"{max(bwd, 0) / mib:.2f} | {max(bwd, 0) / io:.2f} |"
        )


if __name__ == "__main__":
    main()
