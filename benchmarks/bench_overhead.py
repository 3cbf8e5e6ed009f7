"""Framework overhead: microseconds per small op and per tiny training step, needle next to
NumPy and PyTorch.

    python benchmarks/bench_overhead.py [--device cpu|cpu_numpy] [--size 8] [--rounds 3]
    python benchmarks/bench_overhead.py --malloc-thresholds   # plus a special-setting table

For 8x8 operands the arithmetic is a few nanoseconds, so the figures are almost all Python:
Tensor creation, op dispatch, the array wrapper and the backend call.  Op columns:

    numpy      the same arithmetic on NumPy arrays (for backward: the arithmetic of the
               gradients, e.g. g @ b.T and a.T @ g for matmul)
    ndarray    the NDArray operation alone (no Tensor, no graph)
    no_grad    the op on Tensors that record no graph (needle: in a loop inside one
               ``with needle.no_grad():``; PyTorch: tensors without ``requires_grad``)
    fwd        the op recording the graph (inputs require grad)
    fwd+bwd    forward, then the default ``backward(out_grad)``

The MLP step is a course-style training step on one fixed batch of 8:
Linear(32, 64) -> ReLU -> Linear(64, 10), softmax loss, SGD lr 0.1,
``reset_grad(); loss = loss_fn(model(X), y); loss.backward(); opt.step()`` (PyTorch:
``zero_grad``, ``CrossEntropyLoss``).

Each framework is timed in its own subprocess (so PyTorch's OpenMP runtime and allocator do
not share needle's process), with ``--threads`` threads (``OMP_NUM_THREADS`` etc.,
``torch.set_num_threads``) and otherwise the default environment: glibc ``MALLOC_*``
variables are removed from the children.  ``--malloc-thresholds`` adds a second, labelled
table taken with glibc's mmap/trim thresholds raised (a special setting users do not make).
Times are the median of ``--repeat`` runs of a loop sized to take ~20 ms; with ``--rounds``
the children run that many times in turn and each cell keeps its best round (on a shared
machine the least-disturbed round is the closest to the real cost).  PyTorch is optional.
"""

import argparse
import json
import os
import subprocess
import sys
import timeit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import describe_env, load_line, user_env  # noqa: E402  (stdlib only)

OPS = ("add", "matmul")


def per_call_us(fn, repeat):
    """Median microseconds per call of ``fn``."""
    number, elapsed = 1, 0.0
    while elapsed < 0.02:
        number *= 2
        elapsed = timeit.timeit(fn, number=number)
    runs = timeit.repeat(fn, number=number, repeat=repeat)
    return 1e6 * sorted(runs)[len(runs) // 2] / number


def operands(size):
    import numpy as np

    rng = np.random.default_rng(0)
    return [rng.standard_normal((size, size)).astype(np.float32) for _ in range(3)]


def mlp_batch():
    import numpy as np

    rng = np.random.default_rng(1)
    return rng.standard_normal((8, 32)).astype(np.float32), rng.integers(0, 10, 8)


def needle_ops(ndl, device, size, repeat):
    """{op: {column: us}} for needle and NumPy."""
    x, y, g = operands(size)
    a = ndl.Tensor(x, device=device, dtype="float32")
    b = ndl.Tensor(y, device=device, dtype="float32")
    out_grad = ndl.Tensor(g, device=device, dtype="float32", requires_grad=False)
    ca, cb = a.detach(), b.detach()
    xa, ya = a.realize_cached_data(), b.realize_cached_data()
    fns = {"add": lambda p, q: p + q, "matmul": lambda p, q: p @ q}
    numpy_bwd = {
        "add": lambda: (x + y, g.copy(), g.copy()),
        "matmul": lambda: (x @ y, g @ y.T, x.T @ g),
    }
    rows = {}
    for name in OPS:
        op = fns[name]
        with ndl.no_grad():  # entered once, as around an evaluation loop
            no_grad = per_call_us(lambda op=op: op(ca, cb), repeat)
        rows[name] = {
            "numpy fwd": per_call_us(lambda op=op: op(x, y), repeat),
            "ndarray fwd": per_call_us(lambda op=op: op(xa, ya), repeat),
            "no_grad": no_grad,
            "fwd": per_call_us(lambda op=op: op(a, b), repeat),
            "numpy fwd+bwd": per_call_us(numpy_bwd[name], repeat),
            "fwd+bwd": per_call_us(lambda op=op: op(a, b).backward(out_grad), repeat),
        }
    return rows


def needle_mlp(ndl, device, repeat):
    nn = ndl.nn
    kw = {"device": device, "dtype": "float32"}
    model = nn.Sequential(nn.Linear(32, 64, **kw), nn.ReLU(), nn.Linear(64, 10, **kw))
    opt = ndl.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.SoftmaxLoss()
    xs, ys = mlp_batch()
    X = ndl.Tensor(xs, requires_grad=False, **kw)
    y = ndl.Tensor(ys.astype("float32"), requires_grad=False, **kw)

    def step():
        opt.reset_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()

    return per_call_us(step, repeat)


def child_needle(args):
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import needle as ndl

    if args.device is None:
        device = ndl.cpu() if ndl.cpu().enabled() else ndl.cpu_numpy()
    else:
        device = getattr(ndl, args.device)()
    return {
        "ops": needle_ops(ndl, device, args.size, args.repeat),
        "mlp": needle_mlp(ndl, device, args.repeat),
        "device": f"{device} (NEEDLE_BACKEND={ndl.BACKEND})",
    }


def child_torch(args):
    try:
        import torch
    except ImportError:
        return {"error": "torch not installed"}
    torch.set_num_threads(args.threads)
    x, y, g = (torch.from_numpy(v) for v in operands(args.size))
    a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
    fns = {"add": lambda p, q: p + q, "matmul": lambda p, q: p @ q}
    rows = {}
    for name in OPS:
        op = fns[name]
        rows[name] = {
            "no_grad": per_call_us(lambda op=op: op(x, y), args.repeat),
            "fwd": per_call_us(lambda op=op: op(a, b), args.repeat),
            "fwd+bwd": per_call_us(lambda op=op: op(a, b).backward(g), args.repeat),
        }
    nn = torch.nn
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    xs, ys = mlp_batch()
    X, t = torch.from_numpy(xs), torch.from_numpy(ys)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(X), t)
        loss.backward()
        opt.step()

    return {"ops": rows, "mlp": per_call_us(step, args.repeat), "version": torch.__version__}


def run_child(which, args, special):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", which]
    cmd += ["--size", str(args.size), "--repeat", str(args.repeat), "--threads", str(args.threads)]
    if args.device:
        cmd += ["--device", args.device]
    env, _ = user_env(args.threads, malloc_thresholds=special)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def best_of(runs):
    """Cell-wise minimum over rounds; None when every round failed."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return None
    best = dict(ok[0])
    best["mlp"] = min(r["mlp"] for r in ok)
    best["ops"] = {
        op: {col: min(r["ops"][op][col] for r in ok) for col in ok[0]["ops"][op]}
        for op in ok[0]["ops"]
    }
    return best


def fmt_ratio(num, den, digits=2):
    if num is None or den is None:
        return ""
    return f"{num / den:.{digits}f}x"


def print_tables(needle, torch, size):
    """The op table and the MLP-step table (times in microseconds)."""
    tops = torch["ops"] if torch else {}
    cols = ["NumPy fwd", "NDArray fwd", "needle no_grad", "needle fwd", "NumPy fwd+bwd"]
    cols += ["needle fwd+bwd", "needle fwd / NumPy", "needle fwd+bwd / NumPy"]
    if torch:
        cols += ["PyTorch no_grad", "PyTorch fwd", "PyTorch fwd+bwd"]
        cols += ["PyTorch / needle no_grad", "PyTorch / needle fwd", "PyTorch / needle fwd+bwd"]
    print("| op | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for op, n in needle["ops"].items():
        cells = [f"{n[k]:.2f}" for k in ("numpy fwd", "ndarray fwd", "no_grad", "fwd")]
        cells += [f"{n['numpy fwd+bwd']:.2f}", f"{n['fwd+bwd']:.2f}"]
        cells += [fmt_ratio(n["fwd"], n["numpy fwd"], 0)]
        cells += [fmt_ratio(n["fwd+bwd"], n["numpy fwd+bwd"], 0)]
        if torch:
            t = tops[op]
            cells += [f"{t[k]:.2f}" for k in ("no_grad", "fwd", "fwd+bwd")]
            cells += [fmt_ratio(t[k], n[k]) for k in ("no_grad", "fwd", "fwd+bwd")]
        print(f"| {op} {size}x{size} | " + " | ".join(cells) + " |")
    print()
    print("| training step | needle | PyTorch | PyTorch / needle |")
    print("|---|---:|---:|---:|")
    theirs = torch["mlp"] if torch else None
    print(
        f"| MLP 32-64-10, batch 8, SGD | {needle['mlp']:.1f} | "
        f"{'-' if theirs is None else f'{theirs:.1f}'} | {fmt_ratio(theirs, needle['mlp'])} |"
    )
    print(
        "(microseconds per call; x / y columns are time ratios: needle / NumPy > 1 means "
        "needle slower, PyTorch / needle > 1 means needle faster)"
    )


def measure(args, special):
    runs = {"needle": [], "torch": []}
    for _ in range(args.rounds):
        for which in runs:
            runs[which].append(run_child(which, args, special))
    needle, torch = best_of(runs["needle"]), best_of(runs["torch"])
    if needle is None:
        raise SystemExit(f"needle run failed: {runs['needle'][0]['error']}")
    return needle, torch, runs["torch"][0].get("error")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu (default when built) or cpu_numpy")
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 2)))
    parser.add_argument(
        "--malloc-thresholds",
        action="store_true",
        help="also measure with glibc's mmap/trim thresholds raised (labelled special setting)",
    )
    parser.add_argument("--child", choices=["needle", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child_needle(args) if args.child == "needle" else child_torch(args)
        print(json.dumps(result))
        return
    settings = [False, True] if args.malloc_thresholds else [False]
    for special in settings:
        before = load_line("before")
        needle, torch, torch_error = measure(args, special)
        label = (
            "SPECIAL SETTING: glibc MALLOC_MMAP/TRIM_THRESHOLD_ raised (not the default "
            "environment)"
            if special
            else "default environment (no MALLOC_* variables)"
        )
        print(
            f"{label}; device {needle['device']}, float32, {args.threads} threads, "
            f"median of {args.repeat}, best of {args.rounds} rounds"
            + (f", PyTorch {torch['version']}" if torch else f"; PyTorch: {torch_error}")
        )
        print(describe_env(*user_env(args.threads, malloc_thresholds=special)))
        print(before + "; " + load_line("after"))
        print_tables(needle, torch, args.size)
        print()


if __name__ == "__main__":
    main()
