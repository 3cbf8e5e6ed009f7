"""One CIFAR-10 training epoch of ResNet9 through the app, next to the same epoch in PyTorch.

needle's side is exactly what a user runs::

    python -m apps.train --model resnet9 --data cifar10:DIR --epochs 1 --no-progress

timed as a subprocess (wall time: start-up, loading the pickles, the training pass, the test
pass, writing the curves), together with the training pass's own seconds and images/s that
the app prints.  PyTorch's side is a script (``TORCH_SCRIPT`` below, run as a subprocess) that
does what the app does, read from ``apps/train.py`` and ``apps/engine.py``:

- the five ``data_batch_*`` pickles of ``DIR`` as float32 ``(N, 3, 32, 32)`` pixels / 255, no
  normalization, labels int64; the app's augmentation (its header says ``augment flip-crop``,
  the default for CIFAR-10): a random horizontal flip and a random crop of the image padded by
  4 pixels, applied here per image in the Dataset as a PyTorch user does with transforms;
- the same network (conv(k, stride, padding k//2) + BatchNorm + ReLU blocks, two residual
  blocks, two linear layers);
- the app's optimizer, peak learning rate, schedule and batch size, taken from the header line
  the app prints (by default Adam, lr 0.01, the one-cycle schedule of
  ``apps.engine.scheduled_lr`` set before every step, batch 64); batches drawn by a
  ``DataLoader(TensorDataset, shuffle=True, num_workers=0)``;
- per step the loss and the number of correct predictions read back (``loss.item()``,
  ``argmax``), then a pass over the test split under ``no_grad`` with batches of
  ``max(batch, 256)``.


Both sides run with ``--threads`` threads (``OMP_NUM_THREADS`` etc.; ``torch.set_num_threads``)
and otherwise in the default environment (the caller's, glibc's ``MALLOC_*`` variables
removed: ``common.user_env``).  ``--limit N`` uses only the first N train and test images (the
app's ``--limit``) for a quick check; a full epoch is 50,000 images and takes minutes per
framework on two cores.  ``--rounds`` alternates the two sides that many times and keeps each
one's fastest training pass.  Nothing is asserted.

    python benchmarks/bench_epoch.py --data ~/data/cifar-10-batches-py --limit 2000
    python benchmarks/bench_epoch.py --data ~/data/cifar-10-batches-py
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import describe_env, load_line, user_env  # noqa: E402

# What apps/train.py uses when its header line cannot be read (its defaults at the time of
# writing): the PyTorch script then runs with these.
APP_DEFAULTS = {
    "optimizer": "adam",
    "lr": "0.01",
    "schedule": "onecycle",
    "batch_size": "64",
    "augment": " | augment flip-crop",
}
APP_HEADER = re.compile(
    r"\| (?P<optimizer>\w+) lr (?P<lr>\S+) \((?P<schedule>\w+)\) batch (?P<batch_size>\d+)"
    r"(?P<augment> \| augment flip-crop)?"
)
EPOCH_LINE = re.compile(
    r"epoch 1/1\s.*test loss \S+ acc\s+(?P<test_acc>[\d.]+)%.*?"
    r"(?P<ips>[\d,]+) img/s\s+(?P<seconds>[\d.]+) s"
)

TORCH_SCRIPT = r'''
"""apps.train's ResNet9 CIFAR-10 epoch in PyTorch (written by benchmarks/bench_epoch.py)."""
import argparse, math, os, pickle, sys, time
import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.environ["BENCH_DIR"])
from common import torch_resnet9  # the network of apps.models.ResNet9, in PyTorch layers


def load(folder, names, limit):
    xs, ys = [], []
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
    X = np.concatenate(xs).astype(np.float32) / 255.0
    return X[:limit], np.concatenate(ys)[:limit]


def flip_crop(chw, padding=4):
    """A random horizontal flip, then a random crop of the image padded by ``padding``."""
    img = chw.transpose(1, 2, 0)
    if np.random.rand() < 0.5:
        img = img[:, ::-1, :]
    sx, sy = np.random.randint(low=-padding, high=padding + 1, size=2)
    h, w = img.shape[0], img.shape[1]
    padded = np.pad(img, ((padding, padding), (padding, padding), (0, 0)))
    img = padded[padding + sx : padding + sx + h, padding + sy : padding + sy + w, :]
    return np.ascontiguousarray(img.transpose(2, 0, 1))


class Augmented(torch.utils.data.Dataset):
    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return torch.from_numpy(flip_crop(self.X[i])), int(self.y[i])




def _load_schedules():
    """apps/schedules.py, loaded by its path (importing the apps package would load needle);
    named as in the package, so that its top-level-import guard stays quiet."""
    import importlib.util
    path = os.path.join(os.environ["BENCH_DIR"], "..", "apps", "schedules.py")
    spec = importlib.util.spec_from_file_location("apps.schedules", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scheduled_lr = _load_schedules().scheduled_lr


def run(model, loader, loss_fn, opt=None, on_step=None):
    model.train(opt is not None)
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    for i, (X, y) in enumerate(loader):
        if opt is not None:
            on_step(i)
            opt.zero_grad()
            logits = model(X)
            loss = loss_fn(logits, y)
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                logits = model(X)
                loss = loss_fn(logits, y)
        loss_sum += loss.item() * len(y)
        correct += int((logits.argmax(dim=1) == y).sum().item())
        seen += len(y)
    return loss_sum / seen, correct / seen, seen, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    for flag in ("data", "optimizer", "schedule"):
        p.add_argument("--" + flag)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--augment", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    np.random.seed(0)
    torch.manual_seed(0)
    Xtr, ytr = load(a.data, [f"data_batch_{i}" for i in range(1, 6)], a.limit)
    Xte, yte = load(a.data, ["test_batch"], a.limit)
    data = torch.utils.data.DataLoader
    train_set = (Augmented(Xtr, ytr) if a.augment else
                 torch.utils.data.TensorDataset(torch.from_numpy(Xtr), torch.from_numpy(ytr)))
    train = data(train_set, batch_size=a.batch_size, shuffle=True, num_workers=0)
    test = data(torch.utils.data.TensorDataset(torch.from_numpy(Xte), torch.from_numpy(yte)),
                batch_size=max(a.batch_size, 256), num_workers=0)
    model = torch_resnet9(nn)
    if a.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9)
    total = len(train)

    def on_step(i):
        for group in opt.param_groups:
            group["lr"] = scheduled_lr(a.schedule, a.lr, i, total)

    loss_fn = nn.CrossEntropyLoss()
    tr_loss, tr_acc, seen, seconds = run(model, train, loss_fn, opt, on_step)
    te_loss, te_acc, _, _ = run(model, test, loss_fn)
    print(f"torch {torch.__version__}: {len(ytr):,} train / {len(yte):,} test")
    print(f"epoch 1/1  train loss {tr_loss:.4f} acc {100 * tr_acc:6.2f}%  "
          f"test loss {te_loss:.4f} acc {100 * te_acc:6.2f}%  "
          f"{seen / seconds:,.0f} img/s  {seconds:.1f} s", flush=True)


main()
'''


def timed_run(cmd, threads):
    """Run ``cmd`` from the repository root; returns (wall seconds, output, return code)."""
    start = time.perf_counter()
    env, _ = user_env(threads)
    env["BENCH_DIR"] = os.path.dirname(os.path.abspath(__file__))  # the PyTorch script's imports
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    return wall, proc.stdout + proc.stderr, proc.returncode


def parse_epoch(output):
    m = EPOCH_LINE.search(output)
    if not m:
        return None
    return {
        "ips": float(m["ips"].replace(",", "")),
        "seconds": float(m["seconds"]),
        "test_acc": float(m["test_acc"]),
    }


def run_needle(args, out_dir):
    cmd = [sys.executable, "-m", "apps.train", "--model", "resnet9"]
    cmd += ["--data", f"cifar10:{args.data}", "--epochs", "1", "--no-progress"]
    cmd += ["--out", out_dir]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    wall, output, rc = timed_run(cmd, args.threads)
    header = APP_HEADER.search(output)
    result = {"wall": wall, "cmd": cmd, "output": output, "rc": rc}
    result["config"] = header.groupdict() if header else None
    result["epoch"] = parse_epoch(output) if rc == 0 else None
    return result


def run_torch(args, config, script):
    cmd = [sys.executable, script, "--data", args.data, "--threads", str(args.threads)]
    for key, value in config.items():
        if key != "augment":
            cmd += [f"--{key.replace('_', '-')}", value]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    if config.get("augment"):
        cmd.append("--augment")
    wall, output, rc = timed_run(cmd, args.threads)
    epoch = parse_epoch(output) if rc == 0 else None
    return {"wall": wall, "output": output, "rc": rc, "epoch": epoch}


def have_torch():
    probe = [sys.executable, "-c", "import torch"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def best(runs):
    """The round with the highest training images/s, with the shortest wall time of all
    successful rounds; None when no round succeeded (then the first run, to report)."""
    ok = [r for r in runs if r["rc"] == 0 and r["epoch"]]
    if not ok:
        return None
    top = dict(max(ok, key=lambda r: r["epoch"]["ips"]))
    top["wall"] = min(r["wall"] for r in ok)
    return top


def print_table(needle, torch):
    print("| | needle (`python -m apps.train`) | PyTorch | ratio |")
    print("|---|---:|---:|---:|")
    rows = (
        ("training pass, s (as printed)", lambda r: r["epoch"]["seconds"], "{:.1f}", None),
        ("training pass, images/s (as printed)", lambda r: r["epoch"]["ips"], "{:,.0f}", "rate"),
        ("whole process, wall s", lambda r: r["wall"], "{:.1f}", "time"),
        ("test accuracy after the epoch, %", lambda r: r["epoch"]["test_acc"], "{:.2f}", None),
    )
    for label, get, fmt, kind in rows:
        ours = get(needle) if needle else None
        theirs = get(torch) if torch else None
        shown = (cell(fmt, ours), cell(fmt, theirs), ratio(kind, ours, theirs))
        print(f"| {label} | " + " | ".join(shown) + " |")


def cell(fmt, value):
    return "-" if value is None else fmt.format(value)


def ratio(kind, ours, theirs):
    """PyTorch time / needle time, or needle rate / PyTorch rate: > 1 means needle faster."""
    if kind is None or ours is None or theirs is None:
        return ""
    return f"{(theirs / ours if kind == 'time' else ours / theirs):.2f}x"


def report(name, runs):
    """Each round's epoch line, or the end of its output when it failed."""
    for result in runs:
        for text in result["output"].splitlines():
            if text.startswith("note:") or " parameters | data: " in text:
                print(f"{name}: {text}")  # the app's device and settings, and its notes
        line = EPOCH_LINE.search(result["output"])
        if result["rc"] == 0 and line:
            print(f"{name}: {line.group(0)}  (process {result['wall']:.1f} s)")
        else:
            tail = result["output"].strip().splitlines()[-5:]
            print(f"{name} failed (exit status {result['rc']}):\n  " + "\n  ".join(tail))


def print_header(args, config, from_app, cmd):
    images = f"first {args.limit:,}" if args.limit else "all 50,000"
    print(
        f"ResNet9, one CIFAR-10 epoch ({images} train images), {args.threads} threads; "
        f"{config['optimizer']} lr {config['lr']} ({config['schedule']}), "
        f"batch {config['batch_size']}; best of {args.rounds} alternating round(s)"
        + ("" if from_app else " (app header not read: apps/train.py defaults assumed)")
    )
    augment = (
        "random flip + crop of 4-pixel padding on both sides (the app per batch, PyTorch per "
        "image in its Dataset)"
        if config.get("augment")
        else "none on either side (the app's header names none)"
    )
    print("augmentation: " + augment)
    print(
        "ratio = PyTorch time / needle time (= needle images/s / PyTorch images/s): "
        "> 1 means needle is faster; wall time includes start-up, loading, the test pass "
        "and (needle) writing the curves"
    )
    print(describe_env(*user_env(args.threads)))
    print("needle command: " + " ".join(cmd))


def run_rounds(args):
    """Alternating rounds of the app and the PyTorch script; returns both lists of runs."""
    needle_runs, torch_runs = [], []
    use_torch = have_torch()
    work = tempfile.mkdtemp(prefix="bench_epoch_")
    try:
        script = os.path.join(work, "torch_epoch.py")
        with open(script, "w") as f:
            f.write(TORCH_SCRIPT)
        for _ in range(args.rounds):
            needle_runs.append(run_needle(args, os.path.join(work, "runs")))
            if use_torch:
                config = needle_runs[0]["config"] or dict(APP_DEFAULTS)
                torch_runs.append(run_torch(args, config, script))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return needle_runs, torch_runs


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a cifar-10-batches-py folder")
    p.add_argument("--limit", type=int, default=None, help="first N train/test images only")
    p.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 2)))
    p.add_argument("--rounds", type=int, default=1, help="alternating runs of each side")
    args = p.parse_args()
    args.data = os.path.abspath(os.path.expanduser(args.data))
    if not os.path.isdir(args.data):
        p.error(f"--data: no such folder {args.data}")
    before = load_line("before")
    needle_runs, torch_runs = run_rounds(args)
    first = needle_runs[0]
    print_header(args, first["config"] or APP_DEFAULTS, first["config"] is not None, first["cmd"])
    print(before + "; " + load_line("after"))
    print_table(best(needle_runs), best(torch_runs))
    report("needle", needle_runs)
    if torch_runs:
        report("PyTorch", torch_runs)
    else:
        print("PyTorch: not installed (needle's figures only)")


if __name__ == "__main__":
    main()
