"""ResNet9 training throughput: needle's CPU backend next to PyTorch on the same threads.

One training step = forward + softmax loss + backward + Adam step on a batch of 128 random
3x32x32 images (the course's CIFAR-10 setting).  Each framework runs in its own subprocess (so
its peak resident memory, ``ru_maxrss``, is its own): warm-up steps, then the median step time
of ``--steps`` timed steps, reported as images/s.  Threads are pinned to the same count for both
(``OMP_NUM_THREADS`` and ``torch.set_num_threads``).  Nothing is asserted.

    python benchmarks/bench_train.py            # both, 2 threads by default
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


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_needle(args):
    sys.path.insert(0, os.path.join(ROOT, "python"))
    sys.path.insert(0, ROOT)
    import numpy as np
    from apps.models import ResNet9

    import needle as ndl

    device = {"cpu": ndl.cpu, "cuda": ndl.cuda, "numpy": ndl.cpu_numpy}[args.device]()
    if not device.enabled():
        return {"error": f"needle device {args.device} not available"}
    np.random.seed(0)
    model = ResNet9(device=device)
    opt = ndl.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = ndl.nn.SoftmaxLoss()
    X = ndl.Tensor(
        np.random.randn(args.batch, 3, 32, 32).astype(np.float32),
        device=device,
        requires_grad=False,
    )
    y = ndl.Tensor(
        np.random.randint(0, 10, args.batch).astype(np.float32), device=device, requires_grad=False
    )
    model.train()
    sync = getattr(device, "synchronize", None) or (lambda: None)

    def step():
        opt.reset_grad()
        loss = loss_fn(model(X), y)
        loss.backward(create_graph=False)
        opt.step()
        loss.numpy()  # forces completion on asynchronous devices too

    times = time_steps(step, args, sync)
    return {"times": times, "peak_rss_mib": peak_rss_mib()}


def bench_torch(args):
    try:
        import torch
    except ImportError:
        return {"error": "torch not installed"}
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nn = torch.nn
    dev = "cuda" if args.device == "cuda" else "cpu"

    def convbn(a, b, k, s):
        return nn.Sequential(nn.Conv2d(a, b, k, s, k // 2), nn.BatchNorm2d(b), nn.ReLU())

    class Res(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x) + x

    model = (
        nn.Sequential(
            convbn(3, 16, 7, 4),
            convbn(16, 32, 3, 2),
            Res(nn.Sequential(convbn(32, 32, 3, 1), convbn(32, 32, 3, 1))),
            convbn(32, 64, 3, 2),
            convbn(64, 128, 3, 2),
            Res(nn.Sequential(convbn(128, 128, 3, 1), convbn(128, 128, 3, 1))),
            nn.Flatten(),
            nn.Linear(128, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
        .to(dev)
        .train()
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    X = torch.randn(args.batch, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (args.batch,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
        loss.item()

    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    times = time_steps(step, args, sync)
    return {"times": times, "peak_rss_mib": peak_rss_mib(), "version": torch.__version__}


def time_steps(step, args, sync):
    for _ in range(args.warmup):
        step()
    sync()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return times


def child_env(threads):
    env = dict(os.environ)
    env.update(
        {
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads),
            # Large allocations otherwise go straight to mmap/munmap and each step pays page faults.
            "MALLOC_MMAP_THRESHOLD_": "4294967296",
            "MALLOC_TRIM_THRESHOLD_": "4294967296",
        }
    )
    return env


def run_child(which, args):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        which,
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    proc = subprocess.run(cmd, env=child_env(args.threads), capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "numpy"])
    p.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 2)))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3, help="alternating runs of each framework")
    p.add_argument("--child", choices=["needle", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        result = (bench_needle if args.child == "needle" else bench_torch)(args)
        print(json.dumps(result))
        return
    # Alternate the frameworks and keep each one's best round: on a shared machine the
    # fastest round is the one least disturbed by other work.
    results = {"needle": [], "torch": []}
    for _ in range(args.rounds):
        for name in results:
            results[name].append(run_child(name, args))
    print(
        f"ResNet9 training step (fwd + loss + bwd + Adam), batch {args.batch}, 3x32x32, "
        f"device {args.device}, {args.threads} threads; median of {args.steps} steps, "
        f"best of {args.rounds} alternating rounds"
    )
    print(f"{'framework':<10} {'ms/step':>9} {'images/s':>10} {'peak RSS MiB':>13}  rounds (ms)")
    speed = {}
    for name, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            print(f"{name:<10} {'-':>9} {'-':>10} {'-':>13}   ({runs[0]['error']})")
            continue
        medians = [statistics.median(r["times"]) for r in ok]
        best = min(medians)
        speed[name] = args.batch / best
        rss = max(r["peak_rss_mib"] for r in ok)
        rounds = " ".join(f"{1e3 * m:.1f}" for m in medians)
        print(f"{name:<10} {1e3 * best:9.1f} {speed[name]:10.0f} {rss:13.0f}  {rounds}")
    if len(speed) == 2:
        print(f"needle / torch throughput: {speed['needle'] / speed['torch']:.2f}x")


if __name__ == "__main__":
    main()
