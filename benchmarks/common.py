"""Timing helpers shared by the benchmarks: pinned threads, high malloc thresholds, medians.

``pin_environment()`` must run before NumPy is imported: it re-executes the script once with
2 threads for OpenMP/OpenBLAS/MKL and glibc's mmap/trim thresholds set high (so neither side
pays page faults for fresh large allocations), and with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE
removed (they slow NumPy's OpenBLAS on some machines).
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
