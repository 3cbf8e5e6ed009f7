"""Train a model from the command line: ``python -m apps.train`` (also ``make train``).

With no arguments it trains a small CNN on the MNIST subset embedded in ``apps/data`` (no
download), printing one progress bar and one summary line per epoch, and writes the loss and
accuracy curves (CSV, and PNG when matplotlib is installed) to ``--out``.  Examples::

    python -m apps.train
    python -m apps.train --model resnet9 --epochs 2
    python -m apps.train --model resnet9 --data cifar10:../data/cifar-10-batches-py \\
        --epochs 10 --schedule onecycle --checkpoint runs/r9.ckpt
    python -m apps.train --checkpoint runs/r9.ckpt --resume --epochs 20
    python -m apps.train --checkpoint runs/r9.ckpt --eval-only

``--resume`` restores the weights, BatchNorm statistics, optimizer state, RNG states and history
of the last completed epoch: with the same arguments the run continues bit for bit as if it had
never stopped; a larger ``--epochs`` stretches the learning-rate schedule over the new total.

Errors in the command line or the environment (unknown model, missing data folder, CUDA not
available, unreadable checkpoint) are reported as one line on stderr with exit status 2.
Ctrl-C saves a checkpoint (``--checkpoint``, else ``OUT/interrupted.ckpt``) and exits with 130.

``--distributed`` trains data-parallel on MPI (``apps/parallel.py``, docs/DISTRIBUTED.md)::

    mpiexec -n 2 python -m apps.train --distributed --model resnet9 --batch-size 128
"""

import argparse
import contextlib
import csv
import importlib
import math
import os
import signal
import sys
import tempfile
import threading
import time

if not __package__:  # `import train` with apps/ on sys.path, as the course's tests do
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

import numpy as np

import needle as ndl  # noqa: E402  (apps/__init__ makes the in-tree package importable)
import needle.nn as nn  # noqa: E402
from apps import checkpoint as ckpt
from apps.datasets import DataError, adapt_images, load_data
from apps.engine import (
    SCHEDULES,
    NonFiniteLoss,
    flip_crop,
    minibatches,
    num_batches,
    run_epoch,
    scheduled_lr,
)
from apps.models import MODELS, build_model, count_parameters

HISTORY_FIELDS = (
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "seconds",
    "images_per_s",
)


class UsageError(Exception):
    """A problem with the command line or the environment: one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise UsageError(message)


def build_parser():
    p = _Parser(
        prog="python -m apps.train",
        description="Train a model; by default a small CNN on the embedded MNIST subset.",
    )
    p.add_argument("--model", default="cnn", help=f"{' | '.join(MODELS)} (default: cnn)")
    p.add_argument(
        "--data",
        default="embedded",
        help="embedded (the MNIST subset in apps/data, default) | mnist:DIR | cifar10:DIR",
    )
    p.add_argument("--epochs", type=int, default=3, help="default: 3")
    p.add_argument("--batch-size", type=int, default=64, help="default: 64")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (adam 0.01, sgd 0.1)")
    p.add_argument("--optimizer", default="adam", help="adam (default) | sgd (momentum 0.9)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay (default 0)")
    p.add_argument(
        "--schedule", default="onecycle", help=f"{' | '.join(SCHEDULES)} (default: onecycle)"
    )
    p.add_argument(
        "--augment",
        default="auto",
        choices=("auto", "none", "flip-crop"),
        help="training-image augmentation: flip-crop (random flips, crops of 4-pixel padding), "
        "none, or auto (default: flip-crop for cifar10, none for MNIST)",
    )
    p.add_argument("--device", default=None, help="cpu | cuda | numpy (default: cpu if built)")
    p.add_argument("--dtype", default="float32", help="float32 (default) | float64")
    p.add_argument("--seed", type=int, default=0, help="seeds initialization and shuffling (0)")
    p.add_argument("--checkpoint", default=None, help="save model+optimizer+RNG here each epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--eval-only", action="store_true", help="evaluate --checkpoint's model")
    p.add_argument("--limit", type=int, default=None, help="use only the first N train/test images")
    p.add_argument("--out", default=None, help="folder for history.csv/curves.png (runs/MODEL)")
    p.add_argument("--no-progress", action="store_true", help="no per-batch progress bar")
    p.add_argument(
        "--skip-nonfinite",
        action="store_true",
        help="skip training batches whose loss is nan/inf (default: stop with an error)",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the ranks of `mpiexec -n N` (--batch-size is the global batch)",
    )
    p.add_argument(
        "--compression",
        default="none",
        choices=("none", "fp16"),
        help="with --distributed: send gradients as float16 (default: none)",
    )
    return p


def check_args(args, files=True):
    """Every check of the command line; ``files=False`` leaves out those of files and folders
    (ranks other than 0 of a distributed run neither read checkpoints nor write)."""
    if args.model not in MODELS:
        raise UsageError(f"unknown model {args.model!r}; choose one of: {', '.join(MODELS)}")
    if args.optimizer not in ("adam", "sgd"):
        raise UsageError(f"unknown optimizer {args.optimizer!r}; choose adam or sgd")
    if args.schedule not in SCHEDULES:
        raise UsageError(
            f"unknown schedule {args.schedule!r}; choose one of: {', '.join(SCHEDULES)}"
        )
    require_positive(args, "epochs", "batch_size")
    if args.dtype not in ("float32", "float64"):
        raise UsageError(f"--dtype must be float32 or float64, got {args.dtype!r}")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    if (args.resume or args.eval_only) and not args.checkpoint:
        raise UsageError("--resume and --eval-only need --checkpoint PATH")
    if files and (args.resume or args.eval_only) and not os.path.isfile(args.checkpoint):
        raise UsageError(f"checkpoint not found: {args.checkpoint}")
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {args.lr}")
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        raise UsageError(f"--weight-decay must be a number >= 0, got {args.weight_decay}")
    if args.lr is None:
        args.lr = 0.01 if args.optimizer == "adam" else 0.1
    if files:
        check_output_places(args)


def diverged_message(exc, state, skip_option=True):
    """The one-line error for a non-finite loss at ``exc``'s step of the current epoch;
    ``skip_option=False`` for the apps without ``--skip-nonfinite`` (segment, train_text)."""
    where = (
        f"error: training diverged: loss {exc.value} at epoch {state['epoch'] + 1}, step "
        f"{exc.step + 1}"
    )
    if not skip_option:
        return where + " (lower --lr)"
    return (
        f"{where}; the last checkpoint and history.csv are from epoch {state['epoch']} "
        "(lower --lr, or --skip-nonfinite to skip such batches)"
    )


def require_positive(args, *names):
    """UsageError unless each of the integer options ``names`` (attribute names) is >= 1."""
    for name in names:
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")


def check_output_places(args):
    """Before any work: the output folder can be made and written, and a checkpoint to write
    names a file in an existing, writable folder (its parents are not created)."""
    if args.eval_only:
        return
    out = output_folder(args)
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--out {out} exists and is not a folder")
    try:  # the folder is made now (the run writes there) and a file tried in it
        os.makedirs(out, exist_ok=True)
        _try_writing_in(out)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create or write in it ({exc.strerror})") from None
    if args.checkpoint:
        path = args.checkpoint
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise UsageError(f"--checkpoint {path} is a folder; name a file")
        if not os.path.isdir(folder):
            raise UsageError(f"--checkpoint {path}: folder {folder} does not exist")
        try:
            _try_writing_in(folder)
        except OSError as exc:
            raise UsageError(
                f"--checkpoint {path}: cannot write in {folder} ({exc.strerror})"
            ) from None


def _try_writing_in(folder):
    with tempfile.TemporaryFile(dir=folder):
        pass


def pick_device(name):
    """``cpu`` / ``cuda`` / ``numpy`` -> a needle device; default: cpu, else numpy with a note."""
    if name is None:
        if ndl.cpu().enabled():
            return ndl.cpu()
        print(
            "note: the C++ backend is not built (run `make lib`); using the NumPy backend",
            file=sys.stderr,
        )
        return ndl.cpu_numpy()
    devices = {"cpu": ndl.cpu, "cuda": ndl.cuda, "numpy": ndl.cpu_numpy}
    if name not in devices:
        raise UsageError(f"unknown device {name!r}; choose cpu, cuda or numpy")
    device = devices[name]()
    if not device.enabled():
        why = (
            "no CUDA GPU or the CUDA backend is not built"
            if name == "cuda"
            else "the C++ backend is not built (run `make lib`)"
        )
        raise UsageError(f"--device {name} is not available: {why}")
    return device


def make_optimizer(args, model):
    if args.optimizer == "adam":
        return ndl.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    return ndl.optim.SGD(
        model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay
    )


def prepare(args, files=True):
    """Data, device, model, optimizer, and the state restored from a checkpoint when asked
    (``files=False``: no checkpoint read, no output checked: see ``check_args``)."""
    check_args(args, files)
    device = pick_device(args.device)
    data = load_data(args.data)
    train, test = data.train.head(args.limit), data.test.head(args.limit)
    model_cls = MODELS[args.model]
    if args.model == "resnet9":  # the course's ResNet9 takes (3, 32, 32)
        train = type(train)(adapt_images(train.X, model_cls.input_shape), train.y)
        test = type(test)(adapt_images(test.X, model_cls.input_shape), test.y)
    np.random.seed(args.seed)  # model initialization draws from the global NumPy RNG
    model = build_model(
        args.model,
        in_channels=train.X.shape[1],
        num_classes=data.num_classes,
        image_size=train.X.shape[2:],
        device=device,
        dtype=args.dtype,
    )
    opt = make_optimizer(args, model)
    state = {"epoch": 0, "history": [], "loader_rng": np.random.RandomState(args.seed)}
    if files and (args.resume or args.eval_only):
        restore(args, model, opt, state)
    return data, train, test, device, model, opt, state


def restore(args, model, opt, state):
    try:
        payload = ckpt.load(args.checkpoint)
        if payload["model"] != args.model:
            raise ValueError(
                f"it holds a {payload['model']!r} model, not {args.model!r} "
                f"(pass --model {payload['model']})"
            )
        ckpt.load_model_state(model, payload["model_state"])
        if args.resume:
            ckpt.load_optimizer_state(opt, payload["optimizer_state"])
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"cannot use checkpoint {args.checkpoint}: {exc}") from None
    if args.resume:
        state["epoch"] = payload["epoch"]
        state["history"] = list(payload["history"])
        np.random.set_state(payload["rng"]["global"])
        state["loader_rng"].set_state(payload["rng"]["loader"])


@contextlib.contextmanager
def _signals_held():
    """SIGINT and SIGTERM that arrive in the block act when it ends (a checkpoint being
    written is finished first).  Python-level handlers, so that a signal taken by another
    thread (a progress bar's) is held too; only the main thread can set them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {
        signum: signal.signal(signum, lambda number, frame: received.append(number))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])  # now handled as it would have been


def save_checkpoint(path, args, model, opt, state, interrupted=False):
    with _signals_held():  # a Ctrl-C while the file is written acts once it is complete
        ckpt.save(
            path,
            {
                "model": args.model,
                "model_state": ckpt.model_state(model),
                "optimizer": args.optimizer,
                "optimizer_state": ckpt.optimizer_state(opt),
                "epoch": state["epoch"],
                "interrupted": interrupted,
                "history": state["history"],
                "rng": {"global": np.random.get_state(), "loader": state["loader_rng"].get_state()},
                "args": {k: v for k, v in vars(args).items()},
            },
        )


def output_folder(args):
    """``--out``, by default ``runs/MODEL``."""
    return args.out or os.path.join("runs", args.model)


def write_history(history, out_dir):
    """``history.csv`` with a row per finished epoch (rewritten after each epoch)."""
    os.makedirs(out_dir, exist_ok=True)
    csv_path = os.path.join(out_dir, "history.csv")
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        for row in history:
            writer.writerow({k: row[k] for k in HISTORY_FIELDS})
    return csv_path


def write_curves(history, out_dir):
    """``curves.png`` when matplotlib is importable, next to the ``history.csv`` that each
    epoch wrote. Returns the paths of both."""
    csv_path = os.path.join(out_dir, "history.csv")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        print("note: matplotlib is not installed; skipped curves.png (history.csv has the data)")
        return [csv_path]
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-o"), ("test", "-s")):
        ax_loss.plot(epochs, [r[f"{split}_loss"] for r in history], style, label=split)
        ax_acc.plot(epochs, [100 * r[f"{split}_acc"] for r in history], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    png_path = os.path.join(out_dir, "curves.png")
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return [csv_path, png_path]


def augmenter(args):
    """The batch transform ``--augment`` asks for (None for no augmentation)."""
    kind = args.augment
    if kind == "auto":
        kind = "flip-crop" if (args.data or "").startswith("cifar10:") else "none"
    return flip_crop if kind == "flip-crop" else None


def fit(args, train, test, device, model, opt, state):
    """The epoch loop: train, evaluate, record, checkpoint."""
    loss_fn = nn.SoftmaxLoss()
    steps = num_batches(len(train), args.batch_size)
    total_steps = steps * args.epochs
    progress = not args.no_progress
    for epoch in range(state["epoch"], args.epochs):

        def on_step(i, epoch=epoch):
            opt.lr = scheduled_lr(args.schedule, args.lr, epoch * steps + i, total_steps)

        desc = f"epoch {epoch + 1}/{args.epochs}"
        batches = minibatches(
            train.X, train.y, args.batch_size, True, state["loader_rng"], augmenter(args)
        )
        tr = run_epoch(
            model,
            batches,
            loss_fn,
            opt,
            device=device,
            dtype=args.dtype,
            on_step=on_step,
            progress=progress,
            desc=desc,
            total=steps,
            nonfinite="skip" if args.skip_nonfinite else "raise",
        )
        te = evaluate(args, test, device, model, loss_fn, progress, desc + " test")
        state["epoch"] = epoch + 1
        state["history"].append(history_row(epoch, opt.lr, tr, te))
        report_epoch(desc, opt.lr, tr, te)
        write_history(state["history"], output_folder(args))  # an interrupted run keeps its curve
        if args.checkpoint:
            save_checkpoint(args.checkpoint, args, model, opt, state)


def history_row(epoch, lr, tr, te):
    """The ``history.csv`` row of epoch ``epoch`` (0-based) from its train/test results."""
    return {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": tr.loss,
        "train_acc": tr.accuracy,
        "test_loss": te.loss,
        "test_acc": te.accuracy,
        "seconds": round(tr.seconds, 3),
        "images_per_s": round(tr.images_per_s, 1),
    }


def report_epoch(desc, lr, tr, te):
    """The one summary line of an epoch."""
    print(
        f"{desc}  train loss {tr.loss:.4f} acc {100 * tr.accuracy:6.2f}%  "
        f"test loss {te.loss:.4f} acc {100 * te.accuracy:6.2f}%  "
        f"lr {lr:.2e}  {tr.images_per_s:,.0f} img/s  {tr.seconds:.1f} s"
        + (f"  ({tr.skipped} non-finite batches skipped)" if tr.skipped else ""),
        flush=True,
    )


def evaluate(args, split, device, model, loss_fn, progress, desc):
    batch_size = max(args.batch_size, 256)  # no backward pass: larger batches fit
    batches = minibatches(split.X, split.y, batch_size)
    return run_epoch(
        model,
        batches,
        loss_fn,
        None,
        device=device,
        dtype=args.dtype,
        progress=progress,
        desc=desc,
        total=num_batches(len(split), batch_size),
    )


def main(argv=None):
    """Run the trainer; returns the exit status (0, 2 for usage errors, 130 on Ctrl-C)."""
    try:
        args = build_parser().parse_args(argv)
        if args.distributed:
            from apps import parallel

            return parallel.main(args)
        data, train, test, device, model, opt, state = prepare(args)
    except (UsageError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out_dir = output_folder(args)
    print(
        f"{args.model}: {count_parameters(model):,} parameters | data: {data.name}, "
        f"{len(train):,} train / {len(test):,} test | device {device} | "
        f"{args.optimizer} lr {args.lr:g} ({args.schedule}) batch {args.batch_size}"
        + (" | augment flip-crop" if augmenter(args) else ""),
        flush=True,
    )
    if args.eval_only:
        te = evaluate(args, test, device, model, nn.SoftmaxLoss(), not args.no_progress, "test")
        print(
            f"test loss {te.loss:.4f} acc {100 * te.accuracy:.2f}% "
            f"({te.samples:,} images, {te.images_per_s:,.0f} img/s)"
        )
        return 0
    if state["epoch"] >= args.epochs:
        print(f"checkpoint is at epoch {state['epoch']} >= --epochs {args.epochs}: nothing to do")
        return 0
    start = time.perf_counter()
    try:
        fit(args, train, test, device, model, opt, state)
    except NonFiniteLoss as exc:
        print(diverged_message(exc, state), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        path = args.checkpoint or os.path.join(out_dir, "interrupted.ckpt")
        save_checkpoint(path, args, model, opt, state, interrupted=True)
        print(
            f"\ninterrupted: saved {path} (weights mid-epoch {state['epoch'] + 1}; "
            f"--resume re-runs that epoch)",
            file=sys.stderr,
        )
        return 130
    last = state["history"][-1]
    print(
        f"done in {time.perf_counter() - start:.1f} s: test accuracy "
        f"{100 * last['test_acc']:.2f}% after {last['epoch']} epochs"
    )
    paths = write_curves(state["history"], out_dir)
    print("curves: " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
