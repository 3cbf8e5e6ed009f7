"""ResNet9 training and inference as users write them: needle next to PyTorch on the same threads.

Training is the loop of the course and of PyTorch's tutorials, timed as it is written::

    for X, y in loader:                       # needle.data.DataLoader, shuffle=True
        opt.reset_grad()                      # torch: opt.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()                       # the default backward()
        opt.step()

over one pass of ``--steps`` fresh batches of 128 random 3x32x32 images (CIFAR-10's shape)
from an ``NDArrayDataset`` (PyTorch: ``DataLoader(TensorDataset, shuffle=True,
num_workers=0)``), Adam lr 1e-3.  Each step is timed from the end of the previous one, so the
time to fetch its batch is included.  Reported separately:

- warm-up: the first step, and the mean of the first five;
- steady state: the median step after the first five, as images/s;
- the whole first pass (warm-up included) as images/s;
- inference: ``model.eval()`` forward of one batch of 128, with and without ``no_grad``
  (median of repeats).

Each framework runs in its own subprocess, and so does a variant of needle's run in which
``import torch`` comes before ``import needle`` (as in many users' scripts: two OpenMP
runtimes in one process).  Threads are pinned to ``--threads`` for both (``OMP_NUM_THREADS``
etc., ``torch.set_num_threads``); otherwise the children run in the default environment:
the caller's, with glibc's ``MALLOC_*`` variables removed (``common.user_env``), unless
``--malloc-thresholds`` asks for raised mmap/trim thresholds (a special setting, labelled in
the output).  With ``--rounds`` > 1 the variants run in turn
that many times and each figure keeps its best round (on a shared machine the least disturbed
round is the closest to the real cost).  Nothing is asserted.  Without PyTorch installed only
needle's rows are printed.

    python benchmarks/bench_train.py                   # 2 threads, 30 steps, 3 rounds
    python benchmarks/bench_train.py --steps 10 --rounds 1
    python benchmarks/bench_train.py --device cuda --threads 16
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402  (stdlib only)
    describe_env,
    load_line,
    median_time,
    torch_resnet9,
    user_env,
)

VARIANTS = ("needle", "needle-torch-first", "torch")
LABELS = {
    "needle": "needle",
    "needle-torch-first": "needle, torch imported first",
    "torch": "PyTorch",
}
WARMUP_STEPS = 5  # "first steps": step 1 and the mean of steps 1..5; steady state after them


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train_pass(loader, model, loss_fn, opt, reset_grad, sync):
    """One pass over ``loader`` in the user's loop; returns (per-step seconds, pass seconds)."""
    times = []
    start = last = time.perf_counter()
    for X, y in loader:
        reset_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
        sync()
        now = time.perf_counter()
        times.append(now - last)
        last = now
    return times, last - start


def bench_needle(args, torch_first=False):
    if torch_first:
        try:
            import torch  # noqa: F401  (imported first on purpose, as users do)
        except ImportError:
            return {"error": "torch not installed"}
    sys.path.insert(0, os.path.join(ROOT, "python"))
    sys.path.insert(0, ROOT)
    import numpy as np
    from apps.models import ResNet9

    import needle as ndl

    device = {"cpu": ndl.cpu, "cuda": ndl.cuda, "numpy": ndl.cpu_numpy}[args.device]()
    if not device.enabled():
        return {"error": f"needle device {args.device} not available"}
    sync = getattr(device, "synchronize", None) or (lambda: None)
    np.random.seed(0)
    n = args.batch * args.steps
    images = np.random.randn(n, 3, 32, 32).astype(np.float32)
    labels = np.random.randint(0, 10, n)
    loader = ndl.data.DataLoader(
        ndl.data.NDArrayDataset(images, labels),
        batch_size=args.batch,
        shuffle=True,
        device=device,
    )
    model = ResNet9(device=device)
    opt = ndl.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = ndl.nn.SoftmaxLoss()
    model.train()
    times, seconds = train_pass(loader, model, loss_fn, opt, opt.reset_grad, sync)

    model.eval()
    X = ndl.Tensor(images[: args.batch], device=device, requires_grad=False)

    return {
        "times": times,
        "pass_s": seconds,
        **eval_times(model, X, ndl.no_grad, sync),
        "peak_rss_mib": peak_rss_mib(),
    }


class _ToDevice:
    """Moves each batch to the device in the loop, as users write ``X.to(dev)``."""

    def __init__(self, loader, dev):
        self.loader, self.dev = loader, dev

    def __iter__(self):
        for X, y in self.loader:
            yield X.to(self.dev), y.to(self.dev)


def bench_torch(args):
    try:
        import torch
    except ImportError:
        return {"error": "torch not installed"}
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = "cuda" if args.device == "cuda" else "cpu"
    if dev == "cuda" and not torch.cuda.is_available():
        return {"error": "torch CUDA not available"}
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    n = args.batch * args.steps
    images = torch.randn(n, 3, 32, 32)
    labels = torch.randint(0, 10, (n,))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, labels),
        batch_size=args.batch,
        shuffle=True,
        num_workers=0,
    )
    if dev == "cuda":
        loader = _ToDevice(loader, dev)
    model = torch_resnet9(torch.nn).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    times, seconds = train_pass(loader, model, loss_fn, opt, opt.zero_grad, sync)

    model.eval()
    X = images[: args.batch].to(dev)

    return {
        "times": times,
        "pass_s": seconds,
        **eval_times(model, X, torch.no_grad, sync),
        "peak_rss_mib": peak_rss_mib(),
        "version": torch.__version__,
    }


def eval_times(model, X, no_grad, sync):
    """Median seconds of ``model(X)`` (an eval-mode model) as it is and inside ``no_grad()``."""

    def forward():
        model(X)
        sync()

    def forward_no_grad():
        with no_grad():
            model(X)
        sync()

    return {"eval_s": median_time(forward), "eval_no_grad_s": median_time(forward_no_grad)}


def run_child(which, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", which]
    for flag in ("device", "threads", "batch", "steps"):
        cmd += [f"--{flag}", str(getattr(args, flag))]
    env, _ = user_env(args.threads, args.malloc_thresholds)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize(runs, batch):
    """Best figures over the rounds of one variant (None when every round failed)."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return None
    steady = [statistics.median(r["times"][WARMUP_STEPS:] or r["times"]) for r in ok]
    return {
        "step1_ms": 1e3 * min(r["times"][0] for r in ok),
        "first5_ms": 1e3 * min(statistics.mean(r["times"][:WARMUP_STEPS]) for r in ok),
        "steady_ms": 1e3 * min(steady),
        "steady_ips": batch / min(steady),
        "pass_ips": max(batch * len(r["times"]) / r["pass_s"] for r in ok),
        "eval_ms": 1e3 * min(r["eval_s"] for r in ok),
        "eval_no_grad_ms": 1e3 * min(r["eval_no_grad_s"] for r in ok),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in ok),
        "version": ok[0].get("version"),
    }


# (label, key, format, "time" when smaller is better / "rate" when larger is better)
ROWS = (
    ("train step 1, ms", "step1_ms", "{:.1f}", "time"),
    (f"train steps 1-{WARMUP_STEPS} mean, ms", "first5_ms", "{:.1f}", "time"),
    ("train steady median step, ms", "steady_ms", "{:.1f}", "time"),
    ("train steady, images/s", "steady_ips", "{:,.0f}", "rate"),
    ("train first pass (warm-up included), images/s", "pass_ips", "{:,.0f}", "rate"),
    ("eval forward, ms", "eval_ms", "{:.2f}", "time"),
    ("eval forward under no_grad, ms", "eval_no_grad_ms", "{:.2f}", "time"),
    ("peak RSS, MiB", "peak_rss_mib", "{:,.0f}", None),
)


def ratio(kind, ours, theirs):
    """PyTorch time / needle time, or needle rate / PyTorch rate: > 1 means needle faster."""
    if kind is None or ours is None or theirs is None:
        return ""
    return f"{(theirs / ours if kind == 'time' else ours / theirs):.2f}x"


def print_table(stats):
    shown = [v for v in VARIANTS if stats.get(v)]
    if not shown:
        return
    torch = stats.get("torch")
    needles = [v for v in shown if v != "torch"] if torch else []
    head = [LABELS[v] for v in shown] + [f"ratio ({LABELS[v]})" for v in needles]
    print("| measure | " + " | ".join(head) + " |")
    print("|---|" + "---:|" * len(head))
    for label, key, fmt, kind in ROWS:
        cells = [fmt.format(stats[v][key]) for v in shown]
        cells += [ratio(kind, stats[v][key], torch[key]) for v in needles]
        print(f"| {label} | " + " | ".join(cells) + " |")


def print_header(args):
    n = args.batch * args.steps
    print(
        f"ResNet9, batch {args.batch} of 3x32x32, device {args.device}, {args.threads} threads; "
        f"one pass of {args.steps} steps over {n:,} random images (DataLoader, shuffle), "
        f"Adam lr 1e-3, default backward(); steady state = median of steps "
        f"{WARMUP_STEPS + 1}-{args.steps}; eval = model.eval() forward of one batch, median; "
        f"best of {args.rounds} alternating round(s)"
    )
    print(
        "ratio = PyTorch time / needle time (= needle images/s / PyTorch images/s): "
        "> 1 means needle is faster"
    )
    print(describe_env(*user_env(args.threads, args.malloc_thresholds)))
    print(load_line("before"))
    if args.malloc_thresholds:
        print(
            "SPECIAL SETTING: glibc MALLOC_MMAP/TRIM_THRESHOLD_ raised to 4 GiB "
            "(not the default environment users run in)"
        )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "numpy"])
    p.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 2)))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=30, help="steps in the timed pass (>= 6)")
    p.add_argument("--rounds", type=int, default=3, help="alternating runs of each variant")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    p.add_argument(
        "--malloc-thresholds",
        action="store_true",
        help="special setting: raise glibc's mmap/trim thresholds in the children",
    )
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        if args.child == "torch":
            result = bench_torch(args)
        else:
            result = bench_needle(args, torch_first=args.child == "needle-torch-first")
        print(json.dumps(result))
        return
    if args.steps <= WARMUP_STEPS:
        p.error(f"--steps must be > {WARMUP_STEPS} (the warm-up steps are reported apart)")
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variant(s) {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    print_header(args)
    runs = {v: [] for v in variants}
    for _ in range(args.rounds):
        for v in variants:
            runs[v].append(run_child(v, args))
    stats = {v: summarize(r, args.batch) for v, r in runs.items()}
    print_table(stats)
    for v, r in runs.items():
        if stats[v] is None:
            print(f"{LABELS[v]}: not run ({r[0]['error']})")
    if stats.get("torch"):
        print(f"PyTorch {stats['torch']['version']}")
    print(load_line("after"))


if __name__ == "__main__":
    main()
