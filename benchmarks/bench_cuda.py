"""CUDA backend speed: float32 matmul GFLOP/s and convolution forward / forward+backward
for ResNet-like layers, next to PyTorch CUDA on the same shapes when it is importable.

Kernels are timed between synchronize() calls (mean of several runs after a warm-up).
PyTorch runs in strict float32 (TF32 off) so both sides do the same arithmetic.

    python benchmarks/bench_cuda.py
"""

import os
import sys
import time

import numpy as np

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python")
)

from needle.backend_ndarray import ndarray as nd  # noqa: E402

try:
    import torch
    import torch.nn.functional as F

    HAVE_TORCH = torch.cuda.is_available()
except ImportError:
    HAVE_TORCH = False


def timed(fn, sync, reps=10, warmup=2):
    for _ in range(warmup):
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - start) / reps


def device_array(cu, x):
    arr = cu.Array(x.size, "float32")
    cu.from_numpy(x.astype(np.float32).ravel(), arr)
    return arr


def matmul_row(cu, n):
    a, b = device_array(cu, np.random.randn(n, n)), device_array(cu, np.random.randn(n, n))
    out = cu.Array(n * n, "float32")
    ours = 2 * n**3 / timed(lambda: cu.matmul(a, b, out, n, n, n), cu.synchronize) / 1e9
    theirs = None
    if HAVE_TORCH:
        ta, tb = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
        theirs = 2 * n**3 / timed(lambda: ta @ tb, torch.cuda.synchronize) / 1e9
    print(f"{f'{n} x {n} x {n}':<28}{ours:>16.0f}{fmt(theirs):>16}{ratio(ours, theirs):>8}")


def bench_matmul(cu):
    print(f"{'matmul (float32)':<28}{'needle GFLOP/s':>16}{'torch GFLOP/s':>16}{'ratio':>8}")
    for n in (1024, 2048, 4096):
        matmul_row(cu, n)


def fmt(v, scale=1.0, digits=0):
    return "n/a" if v is None else f"{v * scale:.{digits}f}"


def ratio(num, den):
    return "n/a" if num is None or den is None else f"{num / den:.2f}"


# (name, N, H=W, Cin, Cout, k, stride, pad, groups)
LAYERS = [
    ("stem 3->16 k7 s4 32x32", 128, 32, 3, 16, 7, 4, 3, 1),
    ("16->32 k3 s2 8x8", 128, 8, 16, 32, 3, 2, 1, 1),
    ("32->32 k3 4x4", 128, 4, 32, 32, 3, 1, 1, 1),
    ("dense 32->32 k3 32x32", 128, 32, 32, 32, 3, 1, 1, 1),
    ("dense 64->64 k3 32x32", 128, 32, 64, 64, 3, 1, 1, 1),
    ("resnet 128->128 k3 56x56 b32", 32, 56, 128, 128, 3, 1, 1, 1),
    ("depthwise 64 k3 32x32", 128, 32, 64, 64, 3, 1, 1, 64),
    ("grouped 64->64 g4 k3 32x32", 128, 32, 64, 64, 3, 1, 1, 4),
]


def geometry(n, h, cin, cout, k, s, p, g, out_h, idil=1):
    """The 25-int conv geometry of a 2-D layer (a size-1 depth axis)."""
    sizes = [n, 1, h, h, cin, 1, k, k, cout, 1, out_h, out_h]
    return sizes + [1, s, s] + [0, p, p] + [1, 1, 1] + [1, idil, idil] + [g]


def needle_conv_times(cu, n, h, cin, cout, k, s, p, g, ho):
    fwd = geometry(n, h, cin, cout, k, s, p, g, ho)
    # input gradient = conv of gy (dilated by the stride) with the flipped, channel-swapped
    # kernel, as the op layer builds it
    bwd_in = geometry(n, ho, cout, cin, k, 1, k - 1 - p, g, h, idil=s)
    x = device_array(cu, np.random.randn(n, h, h, cin))
    w = device_array(cu, np.random.randn(k, k, cin // g, cout))
    wt = device_array(cu, np.random.randn(k, k, cout // g, cin))
    gy = device_array(cu, np.random.randn(n, ho, ho, cout))
    y, dx, dw = cu.Array(n * ho * ho * cout), cu.Array(n * h * h * cin), cu.Array(w.size)

    def forward():
        cu.conv_forward(x, w, y, fwd)

    def forward_backward():
        cu.conv_forward(x, w, y, fwd)
        cu.conv_forward(gy, wt, dx, bwd_in)
        cu.conv_backward_weight(x, gy, dw, fwd)

    return timed(forward, cu.synchronize), timed(forward_backward, cu.synchronize)


def torch_conv_times(n, h, cin, cout, k, s, p, g, ho):
    if not HAVE_TORCH:
        return None, None
    tx = torch.randn(n, cin, h, h, device="cuda").to(memory_format=torch.channels_last)
    tx.requires_grad_(True)
    tw = torch.randn(cout, cin // g, k, k, device="cuda", requires_grad=True)
    tgy = torch.randn(n, cout, ho, ho, device="cuda").to(memory_format=torch.channels_last)

    def forward():
        with torch.no_grad():
            F.conv2d(tx, tw, stride=s, padding=p, groups=g)

    def forward_backward():
        F.conv2d(tx, tw, stride=s, padding=p, groups=g).backward(tgy)

    return timed(forward, torch.cuda.synchronize), timed(forward_backward, torch.cuda.synchronize)


def bench_conv(cu):
    print(
        f"\n{'conv (float32, NHWC)':<30}{'fwd ms':>9}{'torch':>9}{'fwd+bwd ms':>12}{'torch':>9}"
        f"{'GFLOP/s':>9}{'ratio':>7}"
    )
    for name, n, h, cin, cout, k, s, p, g in LAYERS:
        ho = (h + 2 * p - k) // s + 1
        t_f, t_fb = needle_conv_times(cu, n, h, cin, cout, k, s, p, g, ho)
        tf, tfb = torch_conv_times(n, h, cin, cout, k, s, p, g, ho)
        flops = 3 * 2 * n * ho * ho * cout * k * k * cin // g  # forward + two gradients
        print(
            f"{name:<30}{fmt(t_f, 1e3, 3):>9}{fmt(tf, 1e3, 3):>9}{fmt(t_fb, 1e3, 3):>12}"
            f"{fmt(tfb, 1e3, 3):>9}{flops / t_fb / 1e9:>9.0f}{ratio(tfb, t_fb):>7}"
        )


def main():
    if not nd.cuda().enabled():
        print("CUDA backend not available (module not built or no GPU); nothing to time.")
        return
    cu = nd.cuda().mod
    if HAVE_TORCH:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        print(
            f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}; ratio = torch time / "
            "needle time for conv (> 1: needle faster), needle / torch GFLOP/s for matmul"
        )
    else:
        print("PyTorch CUDA not importable: torch columns are n/a")
    np.random.seed(0)
    bench_matmul(cu)
    bench_conv(cu)


if __name__ == "__main__":
    main()
