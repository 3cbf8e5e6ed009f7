"""Convolution speed: needle's conv op on one device next to PyTorch on the same shapes.

    python benchmarks/bench_conv.py [--device cpu] [--batch 128] [--repeat 5] [--markdown]

Layers (batch 128, float32, channels-last needle tensors): the ResNet9 convolutions at their
in-network sizes, dense 32->32 and 64->64 3x3 on 32x32, a depthwise layer (C=64, groups 64),
a grouped one (64->64, groups 4) and a dilated one (32->32, dilation 2); padding is half the
dilated kernel extent (the course's k // 2).  Columns:

    fwd            forward time (inputs need no gradient)
    fwd+bwd        forward, then backward with the input gradient (not for the stem, whose
                   input is the image batch) and the weight gradient
    GFLOP/s        2·MACs of the forward (x3 for fwd+bwd, x2 for the stem) per second
    torch          PyTorch's time on the same shapes and threads (the faster of NCHW and
                   channels_last), "n/a" when PyTorch is not installed
    ratio          needle time / PyTorch time (below 1: needle is faster)

Times are medians of ``--repeat`` samples after one warm-up; a sample repeats a small layer
until it lasts 20 ms.  On a machine shared with other jobs use ``--stat min --rounds 3``:
needle's layers and PyTorch's are run in turn three times and each cell keeps its best.
Thread counts are pinned to 2 for both sides and glibc's malloc thresholds set high (the
script re-executes itself with them), so fresh large allocations do not decide the
figures.  Never used as a test.
"""

import argparse
import os
import statistics
import sys

_ENV = {
    "OMP_NUM_THREADS": "2",
    "OPENBLAS_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "MALLOC_MMAP_THRESHOLD_": "4294967296",
    "MALLOC_TRIM_THRESHOLD_": "4294967296",
}
if any(os.environ.get(k) != v for k, v in _ENV.items()):
    os.environ.update(_ENV)
    os.execv(sys.executable, [sys.executable] + sys.argv)

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import needle as ndl  # noqa: E402
from needle.ops.ops_conv import conv_geometry  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from common import CONV_LAYERS as LAYERS  # noqa: E402
from common import median_time  # noqa: E402

# name, C_in, C_out, kernel, stride, H (= W), groups, dilation, input gradient


STAT = statistics.median  # --stat min: the best sample (for a machine shared with other jobs)


def median_ms(fn, repeat, min_sample_s=0.02):
    """Median (or ``STAT``) ms per call over ``repeat`` samples of >= ``min_sample_s`` each;
    the first call (the one that sizes the samples) is the warm-up: first-touch page faults,
    pool fill, lazy initialisation."""
    return 1e3 * median_time(fn, repeat, warmup=0, min_time=min_sample_s, stat=STAT)


def needle_times(layer, batch, device, repeat):
    _, cin, cout, k, s, hw, groups, d, input_grad = layer
    pad = d * (k - 1) // 2
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, hw, hw, cin), dtype=np.float32)
    w = rng.standard_normal((k, k, cin // groups, cout), dtype=np.float32)
    geom = conv_geometry(x.shape, w.shape, s, pad, d, groups)
    g = ndl.Tensor(np.ones(geom.out_shape, np.float32), device=device, requires_grad=False)
    xc = ndl.Tensor(x, device=device, requires_grad=False)
    wc = ndl.Tensor(w, device=device, requires_grad=False)
    xv = ndl.Tensor(x, device=device, requires_grad=input_grad)
    wv = ndl.Tensor(w, device=device, requires_grad=True)

    def forward():
        ndl.conv(xc, wc, s, pad, d, groups).realize_cached_data()

    def forward_backward():
        ndl.conv(xv, wv, s, pad, d, groups).backward(g, create_graph=False)
        wv.grad.realize_cached_data()

    sync = getattr(device, "synchronize", None) if device.name == "cuda" else None

    def timed(fn):
        if sync is None:
            return fn

        def run():
            fn()
            sync()

        return run

    return geom, median_ms(timed(forward), repeat), median_ms(timed(forward_backward), repeat)


def _torch_format_times(torch, layer, batch, repeat, memory_format):
    _, cin, cout, k, s, hw, groups, d, input_grad = layer
    pad = d * (k - 1) // 2
    conv2d = torch.nn.functional.conv2d
    x = torch.randn(batch, cin, hw, hw).to(memory_format=memory_format)
    w = torch.randn(cout, cin // groups, k, k).to(memory_format=memory_format)
    xv = x.clone().requires_grad_(input_grad)
    wv = w.clone().requires_grad_(True)
    with torch.no_grad():
        g = torch.ones_like(conv2d(x, w, None, s, pad, d, groups))

    def forward():
        with torch.no_grad():
            conv2d(x, w, None, s, pad, d, groups)

    def forward_backward():
        conv2d(xv, wv, None, s, pad, d, groups).backward(g)

    return median_ms(forward, repeat), median_ms(forward_backward, repeat)


def torch_times(layer, batch, repeat):
    """PyTorch's (forward, forward+backward) ms: the faster of NCHW and channels_last."""
    try:
        import torch
    except ImportError:
        return None, None
    torch.set_num_threads(2)
    times = [
        _torch_format_times(torch, layer, batch, repeat, fmt)
        for fmt in (torch.contiguous_format, torch.channels_last)
    ]
    return min(t[0] for t in times), min(t[1] for t in times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cpu_numpy")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default="", help="run layers whose name contains this")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate needle's and PyTorch's runs this many times and keep each cell's "
        "best (for a machine shared with other jobs, with --stat min)",
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--stat",
        choices=("median", "min"),
        default="median",
        help="statistic over the samples (min on a machine shared with others)",
    )
    args = parser.parse_args()
    global STAT
    STAT = min if args.stat == "min" else statistics.median
    device = getattr(ndl, args.device)()
    if not device.enabled():
        sys.exit(f"bench_conv: device {args.device} is not available (build it with `make lib`)")
    try:
        from importlib.metadata import version

        torch_info = f"PyTorch {version('torch')}, 2 threads"
    except ImportError:
        torch_info = "PyTorch not installed"
    print(
        f"# conv on {device!r}, batch {args.batch}, float32, {args.stat} of {args.repeat}"
        f"{f', best of {args.rounds} rounds' if args.rounds > 1 else ''}; "
        f"{torch_info}; MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ = 4 GiB"
    )
    head = (
        "layer",
        "fwd ms",
        "GFLOP/s",
        "torch ms",
        "ratio",
        "fwd+bwd ms",
        "GFLOP/s",
        "torch ms",
        "ratio",
    )
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
    else:
        print(f"{head[0]:<26}" + "".join(f"{h:>11}" for h in head[1:]))
    layers = [layer for layer in LAYERS if args.only in layer[0]]

    # needle first, PyTorch after: two OpenMP thread teams alternating call by call steal
    # the two cores from each other while their idle threads spin.
    def best(a, b):
        return a if b is None else b if a is None else min(a, b)

    ours, theirs = None, None
    for _ in range(max(1, args.rounds)):
        o = [needle_times(layer, args.batch, device, args.repeat) for layer in layers]
        t = [torch_times(layer, args.batch, args.repeat) for layer in layers]
        if ours is not None:
            o = [(g, best(f0, f1), best(b0, b1)) for (g, f0, b0), (_, f1, b1) in zip(ours, o)]
            t = [(best(f0, f1), best(b0, b1)) for (f0, b0), (f1, b1) in zip(theirs, t)]
        ours, theirs = o, t
    for layer, (geom, fwd, both), (t_fwd, t_both) in zip(layers, ours, theirs):
        flops_both = geom.flops * (3 if layer[-1] else 2)
        cells = [
            f"{fwd:.2f}", f"{geom.flops / fwd / 1e6:.0f}",
            "n/a" if t_fwd is None else f"{t_fwd:.2f}",
            "n/a" if t_fwd is None else f"{fwd / t_fwd:.2f}",
            f"{both:.2f}", f"{flops_both / both / 1e6:.0f}",
            "n/a" if t_both is None else f"{t_both:.2f}",
            "n/a" if t_both is None else f"{both / t_both:.2f}",
        ]  # fmt: skip
        if args.markdown:
            print("| " + " | ".join([layer[0], *cells]) + " |")
        else:
            print(f"{layer[0]:<26}" + "".join(f"{c:>11}" for c in cells))


if __name__ == "__main__":
    main()
