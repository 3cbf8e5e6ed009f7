"""Semantic segmentation with transposed convolutions: ``python -m apps.segment``.

A small U-Net (strided 3x3 convs down, ``ConvTranspose2d`` up, skip connections that
concatenate encoder features into the decoder) learns to label every pixel of generated images
(``apps.shapes``: discs, squares and triangles on noisy backgrounds) as background or one of
the three shapes.  Each epoch prints the training loss and pixel accuracy and, on held-out
images, the pixel accuracy and the mean intersection-over-union (``mean IoU 0.xx``); at the end
``OUT/segmentation.png`` shows inputs, true masks and predicted masks side by side (when
matplotlib is installed).  Examples::

    python -m apps.segment
    python -m apps.segment --epochs 2 --train-size 500 --out runs/seg-small
    python -m apps.segment --checkpoint runs/seg.ckpt            # save every epoch
    python -m apps.segment --checkpoint runs/seg.ckpt --resume --epochs 12

The training loop, the progress bar, the checkpoints (``--checkpoint``/``--resume``, Ctrl-C)
and the one-line errors (exit status 2) are those of ``apps.train``.
"""

import importlib
import math
import os
import sys
import time

if not __package__:  # `import segment` with apps/ on sys.path, as the course's tests do
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

import numpy as np

import needle as ndl  # noqa: E402  (apps/__init__ makes the in-tree package importable)
import needle.nn as nn  # noqa: E402
from apps import train
from apps.engine import NonFiniteLoss, minibatches, num_batches, run_epoch, scheduled_lr
from apps.models import ConvBN, count_parameters
from apps.shapes import CLASSES, make_shapes
from apps.train import UsageError

MODEL = "unet"
PICTURE = "segmentation.png"


# --- the model ---------------------------------------------------------------------------------
def concat_channels(a, b):
    """``(N, C, H, W)`` and ``(N, C, H, W)`` -> ``(N, 2C, H, W)``: U-Net's skip connection."""
    n, c, h, w = a.shape
    return ndl.ops.stack((a, b), axis=1).reshape((n, 2 * c, h, w))


class UNet(nn.Module):
    """Encoder-decoder with skips, for ``(N, C, H, W)`` input with H, W divisible by 4.

    enc1 ConvBN(C, w) at H -> enc2 ConvBN(w, 2w, s2) at H/2 -> enc3 ConvBN(2w, 4w, s2),
    ConvBN(4w, 4w) at H/4 -> up2 ConvTranspose2d(4w, 2w, k3, s2, p1, output_padding 1) to H/2,
    concatenated with enc2 -> dec2 ConvBN(4w, 2w) -> up1 ConvTranspose2d(2w, w) to H,
    concatenated with enc1 -> dec1 ConvBN(2w, w) -> head Conv(w, classes, k1).
    Returns logits ``(N, classes, H, W)``.
    """

    def __init__(self, in_channels=1, num_classes=4, width=16, device=None, dtype="float32"):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        w = width
        self.enc1 = ConvBN(in_channels, w, 3, **kw)
        self.enc2 = ConvBN(w, 2 * w, 3, 2, **kw)
        self.enc3 = nn.Sequential(ConvBN(2 * w, 4 * w, 3, 2, **kw), ConvBN(4 * w, 4 * w, 3, **kw))
        up = {"stride": 2, "padding": 1, "output_padding": 1, **kw}
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 3, **up)
        self.dec2 = ConvBN(4 * w, 2 * w, 3, **kw)
        self.up1 = nn.ConvTranspose2d(2 * w, w, 3, **up)
        self.dec1 = ConvBN(2 * w, w, 3, **kw)
        self.head = nn.Conv(w, num_classes, 1, **kw)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        d2 = self.dec2(concat_channels(self.up2(self.enc3(e2)), e2))
        d1 = self.dec1(concat_channels(self.up1(d2), e1))
        return self.head(d1)


class PixelLogits(nn.Module):
    """``(N, K, H, W)`` logits as ``(N*H*W, K)`` rows, one per pixel, for ``SoftmaxLoss``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        y = self.model(x)
        n, k, h, w = y.shape
        return ndl.ops.permute(y, (0, 2, 3, 1)).reshape((n * h * w, k))


# --- metrics -----------------------------------------------------------------------------------
def confusion_matrix(pred, true, num_classes):
    """``cm[t, p]`` = number of pixels of true class t predicted as p."""
    pred, true = np.asarray(pred).ravel(), np.asarray(true).ravel()
    index = true.astype(np.int64) * num_classes + pred.astype(np.int64)
    return np.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def pixel_accuracy(cm):
    """Fraction of pixels labelled correctly."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def iou_per_class(cm):
    """Intersection over union per class, ``TP / (TP + FP + FN)``; nan for a class that is
    neither present nor predicted."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def mean_iou(cm):
    """Mean of the per-class IoU over the classes that occur (present or predicted)."""
    iou = iou_per_class(cm)
    return float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else float("nan")


# --- the command line --------------------------------------------------------------------------
def build_parser():
    p = train._Parser(
        prog="python -m apps.segment",
        description="Train a small U-Net (ConvTranspose2d decoder) to segment generated shapes.",
    )
    p.add_argument("--epochs", type=int, default=6, help="default: 6")
    p.add_argument("--batch-size", type=int, default=32, help="default: 32")
    p.add_argument("--lr", type=float, default=0.01, help="peak Adam learning rate (0.01)")
    p.add_argument("--train-size", type=int, default=1600, help="training images (1600)")
    p.add_argument("--test-size", type=int, default=200, help="held-out images (200)")
    p.add_argument("--size", type=int, default=32, help="image side, a multiple of 4 (32)")
    p.add_argument("--width", type=int, default=16, help="channels of the first layer (16)")
    p.add_argument("--device", default=None, help="cpu | cuda | numpy (default: cpu if built)")
    p.add_argument("--seed", type=int, default=0, help="seeds the data, weights and order (0)")
    p.add_argument("--checkpoint", default=None, help="save model+optimizer+RNG here each epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--out", default=None, help="folder for segmentation.png (runs/segment)")
    p.add_argument("--no-progress", action="store_true", help="no per-batch progress bar")
    # what apps.train's checkpoint and output helpers read
    p.set_defaults(model=MODEL, optimizer="adam", eval_only=False, schedule="onecycle")
    return p


def check_args(args):
    train.require_positive(args, "epochs", "batch_size", "train_size", "test_size", "width")
    if args.size < 8 or args.size % 4:
        raise UsageError(f"--size must be a multiple of 4 and >= 8, got {args.size}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {args.lr}")
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint PATH")
    if args.resume and not os.path.isfile(args.checkpoint):
        raise UsageError(f"checkpoint not found: {args.checkpoint}")
    args.out = args.out or os.path.join("runs", "segment")
    train.check_output_places(args)


def prepare(args):
    """Data, device, model, optimizer, and the state restored from a checkpoint when asked."""
    check_args(args)
    device = train.pick_device(args.device)
    train_set = make_shapes(args.train_size, args.size, seed=args.seed)
    test_set = make_shapes(args.test_size, args.size, seed=args.seed + 1_000_003)
    np.random.seed(args.seed)  # model initialization draws from the global NumPy RNG
    model = UNet(1, len(CLASSES), args.width, device=device)
    opt = ndl.optim.Adam(model.parameters(), lr=args.lr)
    state = {"epoch": 0, "history": [], "loader_rng": np.random.RandomState(args.seed)}
    if args.resume:
        train.restore(args, model, opt, state)
    return train_set, test_set, device, model, opt, state


def predict(model, images, device, batch_size=256):
    """Class index per pixel, ``(N, H, W)``, in eval mode without a graph."""
    model.eval()
    out = []
    with ndl.no_grad():
        for start in range(0, len(images), batch_size):
            x = ndl.Tensor(images[start : start + batch_size], device=device, requires_grad=False)
            out.append(model(x).numpy().argmax(axis=1))
    return np.concatenate(out) if out else np.zeros((0,) + images.shape[2:], dtype=np.int64)


def train_epoch(args, model, opt, state, train_set, device, epoch):
    """One pass of ``apps.engine.run_epoch`` over per-pixel rows; returns (loss, pixel acc)."""
    images, masks = train_set
    steps = num_batches(len(images), args.batch_size)

    def on_step(i):
        opt.lr = scheduled_lr(args.schedule, args.lr, epoch * steps + i, steps * args.epochs)

    batches = (
        (x, y.reshape(-1))  # one label per pixel, the rows PixelLogits makes
        for x, y in minibatches(images, masks, args.batch_size, True, state["loader_rng"])
    )
    result = run_epoch(
        PixelLogits(model),
        batches,
        nn.SoftmaxLoss(),
        opt,
        device=device,
        on_step=on_step,
        progress=not args.no_progress,
        desc=f"epoch {epoch + 1}/{args.epochs}",
        total=steps,
    )
    # run_epoch counts correct rows (pixels) per sample (image)
    return result, result.accuracy / (args.size * args.size)


def fit(args, model, opt, state, train_set, test_set, device):
    """The epoch loop: train, evaluate, print, checkpoint."""
    for epoch in range(state["epoch"], args.epochs):
        tr, train_acc = train_epoch(args, model, opt, state, train_set, device, epoch)
        cm = confusion_matrix(predict(model, test_set[0], device), test_set[1], len(CLASSES))
        iou = iou_per_class(cm)
        state["epoch"] = epoch + 1
        state["history"].append(
            {
                "epoch": epoch + 1,
                "train_loss": tr.loss,
                "train_pixel_acc": train_acc,
                "test_pixel_acc": pixel_accuracy(cm),
                "mean_iou": mean_iou(cm),
                "iou": [float(v) for v in iou],
                "seconds": round(tr.seconds, 3),
            }
        )
        per_class = " ".join(f"{name} {v:.2f}" for name, v in zip(CLASSES, iou))
        print(
            f"epoch {epoch + 1}/{args.epochs}  train loss {tr.loss:.4f} pixel acc "
            f"{100 * train_acc:5.2f}%  test pixel acc {100 * pixel_accuracy(cm):5.2f}%  "
            f"mean IoU {mean_iou(cm):.2f} ({per_class})  {tr.seconds:.1f} s",
            flush=True,
        )
        if args.checkpoint:
            train.save_checkpoint(args.checkpoint, args, model, opt, state)


def write_picture(path, images, masks, preds):
    """Inputs, true masks and predicted masks side by side, one row per image; returns the
    path, or None (with a note) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        print(f"note: matplotlib is not installed; skipped {os.path.basename(path)}")
        return None
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(6, 2 * n), squeeze=False)
    style = {"cmap": "tab10", "vmin": 0, "vmax": 9, "interpolation": "nearest"}
    for i in range(n):
        axes[i, 0].imshow(images[i, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[i, 1].imshow(masks[i], **style)
        axes[i, 2].imshow(preds[i], **style)
    for ax, title in zip(axes[0], ("input", "true mask", "predicted")):
        ax.set_title(title)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    colors = plt.get_cmap("tab10")
    patches = [Patch(color=colors(k), label=name) for k, name in enumerate(CLASSES)]
    fig.legend(handles=patches, loc="lower center", ncol=len(CLASSES), frameon=False)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv=None):
    """Run the segmentation trainer; returns the exit status (0, 1, 2 for usage errors, 130)."""
    try:
        args = build_parser().parse_args(argv)
        train_set, test_set, device, model, opt, state = prepare(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{MODEL}: {count_parameters(model):,} parameters | data: generated shapes "
        f"{args.size}x{args.size} (seed {args.seed}), {args.train_size:,} train / "
        f"{args.test_size:,} test | device {device} | adam lr {args.lr:g} (onecycle) "
        f"batch {args.batch_size}",
        flush=True,
    )
    if state["epoch"] >= args.epochs:
        print(f"checkpoint is at epoch {state['epoch']} >= --epochs {args.epochs}: nothing to do")
        return 0
    start = time.perf_counter()
    try:
        fit(args, model, opt, state, train_set, test_set, device)
    except NonFiniteLoss as exc:
        print(train.diverged_message(exc, state, skip_option=False), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        path = args.checkpoint or os.path.join(args.out, "interrupted.ckpt")
        train.save_checkpoint(path, args, model, opt, state, interrupted=True)
        print(f"\ninterrupted: saved {path} (--resume re-runs epoch {state['epoch'] + 1})",
              file=sys.stderr)  # fmt: skip
        return 130
    last = state["history"][-1]
    print(
        f"done in {time.perf_counter() - start:.1f} s: mean IoU {last['mean_iou']:.2f}, "
        f"test pixel accuracy {100 * last['test_pixel_acc']:.2f}% after {last['epoch']} epochs"
    )
    shown = slice(0, min(6, args.test_size))
    images, masks = test_set[0][shown], test_set[1][shown]
    path = write_picture(
        os.path.join(args.out, PICTURE), images, masks, predict(model, images, device)
    )
    if path:
        print(f"picture: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
