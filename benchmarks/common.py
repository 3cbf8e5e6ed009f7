"""Timing helpers shared by the benchmarks: pinned threads, environments, medians.

``user_env()`` is the environment for the child processes of the benchmarks that time what
users run (``bench_train``, ``bench_epoch``, ``bench_overhead``): threads pinned, no allocator
variables.  ``pin_environment()`` (the kernel benchmarks) must run before NumPy is imported:
it re-executes the script once with 2 threads for OpenMP/OpenBLAS/MKL and glibc's mmap/trim
thresholds set high (so neither side pays page faults for fresh large allocations), and with
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed (they slow NumPy's OpenBLAS on some machines).
"""

import os
import statistics
import sys
import time

PINNED_ENV = {
    "OMP_NUM_THREADS": "2",
    "OPENBLAS_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "MALLOC_MMAP_THRESHOLD_": "4294967296",
    "MALLOC_TRIM_THRESHOLD_": "4294967296",
}
UNSET_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def pin_environment(threads=2):
    """Re-exec the running script with the pinned environment unless it already has it."""
    env = dict(
        PINNED_ENV,
        OMP_NUM_THREADS=str(threads),
        OPENBLAS_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    if any(os.environ.get(k) != v for k, v in env.items()) or any(
        k in os.environ for k in UNSET_ENV
    ):
        os.environ.update(env)
        for k in UNSET_ENV:
            os.environ.pop(k, None)
        os.execv(sys.executable, [sys.executable] + sys.argv)


# glibc allocator tunables: users do not set them, so the default-environment figures run
# without them (``user_env``); a benchmark may show a figure taken with them beside, labelled.
RAISED_MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": "4294967296",
    "MALLOC_TRIM_THRESHOLD_": "4294967296",
}


def user_env(threads, malloc_thresholds=False):
    """The environment for a benchmark's child process: this one's, with the thread counts
    pinned to ``threads`` and glibc's ``MALLOC_*``/``GLIBC_TUNABLES`` variables removed (the
    default environment users run in), or set to ``RAISED_MALLOC_ENV`` when
    ``malloc_thresholds`` asks for that special setting.  Returns (env, names removed)."""
    removed = sorted(k for k in os.environ if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES")
    env = {k: v for k, v in os.environ.items() if k not in removed}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    if malloc_thresholds:
        env.update(RAISED_MALLOC_ENV)
    return env, removed


def describe_env(env, removed=()):
    """One line naming the threading/allocator variables a child runs with."""
    prefixes = ("MALLOC_", "GLIBC_", "OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "NEEDLE_")
    shown = ", ".join(f"{k}={env[k]}" for k in sorted(env) if k.startswith(prefixes))
    line = "environment: " + (shown or "default")
    if removed:
        line += f" (removed from the caller's: {', '.join(removed)})"
    return line


def load_line(when):
    """``"load average <when>: 1-min X on N cores"``: on a shared machine, 2-thread figures
    taken while other processes run can be many times slower, for every framework."""
    try:
        load = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        load = "unknown"
    return f"load average {when}: {load} (1 min) on {os.cpu_count()} cores"


def median_time(fn, repeat=7, warmup=2, min_time=0.05, stat=statistics.median):
    """Median (or ``stat``) seconds per call of fn() over ``repeat`` samples; each sample runs
    fn enough times to last ``min_time`` (at least once), sized by timing one call after the
    ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_time / once))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return stat(samples)


def blas_info():
    """One line naming the BLAS NumPy uses and the kernel/threads it runs with."""
    try:
        from threadpoolctl import threadpool_info

        infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if infos:
            i = infos[0]
            return (
                f"{i.get('internal_api')} {i.get('version')} core={i.get('architecture')} "
                f"threads={i.get('num_threads')}"
            )
    except ImportError:
        pass
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{cfg.get('name')} {cfg.get('version')} (threadpoolctl not installed: core unknown)"
    except Exception:  # noqa: BLE001 - informational only
        return "unknown BLAS"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def torch_resnet9(nn):
    """The same network as ``apps.models.ResNet9``, in PyTorch layers."""

    def convbn(a, b, k, s):
        return nn.Sequential(nn.Conv2d(a, b, k, s, k // 2), nn.BatchNorm2d(b), nn.ReLU())

    class Residual(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x) + x

    return nn.Sequential(
        convbn(3, 16, 7, 4),
        convbn(16, 32, 3, 2),
        Residual(nn.Sequential(convbn(32, 32, 3, 1), convbn(32, 32, 3, 1))),
        convbn(32, 64, 3, 2),
        convbn(64, 128, 3, 2),
        Residual(nn.Sequential(convbn(128, 128, 3, 1), convbn(128, 128, 3, 1))),
        nn.Flatten(),
        nn.Linear(128, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


# The convolution layers the conv benchmarks time: (name, C_in, C_out, kernel, stride, input
# size, groups, dilation, whether the input gradient is computed (not for the image batch)).
CONV_LAYERS = [
    ("stem 3->16 k7 s4 @32", 3, 16, 7, 4, 32, 1, 1, False),
    ("16->32 k3 s2 @8", 16, 32, 3, 2, 8, 1, 1, True),
    ("32->32 k3 @4", 32, 32, 3, 1, 4, 1, 1, True),
    ("32->64 k3 s2 @4", 32, 64, 3, 2, 4, 1, 1, True),
    ("64->128 k3 s2 @2", 64, 128, 3, 2, 2, 1, 1, True),
    ("128->128 k3 @1", 128, 128, 3, 1, 1, 1, 1, True),
    ("dense 32->32 k3 @32", 32, 32, 3, 1, 32, 1, 1, True),
    ("dense 64->64 k3 @32", 64, 64, 3, 1, 32, 1, 1, True),
    ("depthwise C64 k3 @32", 64, 64, 3, 1, 32, 64, 1, True),
    ("grouped 64->64 g4 k3 @32", 64, 64, 3, 1, 32, 4, 1, True),
    ("dilated 32->32 d2 k3 @32", 32, 32, 3, 1, 32, 1, 2, True),
]
