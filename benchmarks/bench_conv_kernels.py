"""The CPU backend's convolution kernels alone, on shapes given on the command line.

    python benchmarks/bench_conv_kernels.py [N:H:Cin:Cout:k[:groups] ...] [--repeat 15]

Calls the backend's ``conv_forward`` and ``conv_backward_weight`` directly (no graph, no
Python op layer; stride 1, padding k // 2, float32, channels-last) and prints the best time
of ``--repeat`` calls and its GFLOP/s for each.  For comparing kernel paths on one machine
(e.g. direct against im2col + GEMM at a rebuild with another dispatch rule); the
op-level comparison with PyTorch is bench_conv.py.  Never used as a test.
"""

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from common import median_time, pin_environment  # noqa: E402

pin_environment()

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "python"))
from needle import backend_ndarray as nd  # noqa: E402
from needle.ops.ops_conv import conv_geometry  # noqa: E402

DEFAULT_SHAPES = [
    "128:16:256:64:3",
    "128:8:1024:64:1",
    "128:16:64:128:3",
    "128:8:128:128:3",
    "128:2:128:128:3",
    "128:1:128:128:3",
    "128:32:32:32:3",
    "128:32:64:64:3:4",
]


def best_ms(fn, repeat):
    """Best of ``repeat`` single calls, in ms, after two warm-up calls."""
    return 1e3 * median_time(fn, repeat, warmup=2, min_time=0, stat=min)


def kernel_times(dev, rng, spec, repeat):
    """(forward ms, weight-gradient ms, GFLOP per call) for one N:H:Cin:Cout:k[:groups]."""
    n, h, cin, cout, k, *rest = (int(v) for v in spec.split(":"))
    groups = rest[0] if rest else 1
    geom = conv_geometry((n, h, h, cin), (k, k, cin // groups, cout), 1, k // 2, 1, groups)
    x = nd.array(rng.standard_normal((n, h, h, cin), dtype=np.float32), device=dev)
    w = nd.array(rng.standard_normal(geom.weight_shape, dtype=np.float32), device=dev)
    gy = nd.array(rng.standard_normal(geom.out_shape, dtype=np.float32), device=dev)
    out = nd.empty(geom.out_shape, device=dev)
    dw = nd.empty(geom.weight_shape, device=dev)
    g = list(geom.backend)
    fwd = best_ms(lambda: dev.conv_forward(x._handle, w._handle, out._handle, g), repeat)
    wgr = best_ms(lambda: dev.conv_backward_weight(x._handle, gy._handle, dw._handle, g), repeat)
    return fwd, wgr, 2 * n * h * h * k * k * (cin // groups) * cout / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shapes", nargs="*", default=DEFAULT_SHAPES, help="N:H:Cin:Cout:k[:groups]")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    dev = nd.cpu()
    rng = np.random.default_rng(0)
    print("| N:H:C_in:C_out:k[:groups] | fwd ms | GFLOP/s | wgrad ms | GFLOP/s |")
    print("|---|---:|---:|---:|---:|")
    for spec in args.shapes:
        fwd, wgr, gflop = kernel_times(dev, rng, spec, args.repeat)
        fwd_rate, wgr_rate = gflop / fwd * 1e3, gflop / wgr * 1e3
        print(f"| {spec} | {fwd:.2f} | {fwd_rate:.0f} | {wgr:.2f} | {wgr_rate:.0f} |")


if __name__ == "__main__":
    main()
