"""Train a Conv1d sentence classifier (TextCNN) and print accuracy each epoch.

    python -m apps.train_text                        # the embedded fortunes categories
    python -m apps.train_text --epochs 10 --widths 3,4,5 --channels 64
    python -m apps.train_text --data DIR             # DIR/train.tsv(.gz), DIR/test.tsv(.gz)

The default data (``apps/data/fortunes_text``, see ``apps/data/TEXT_DATA.md``) is
``category<TAB>words`` lines of four unbalanced categories (computers 678, food 141, law 106,
sports 85 training sentences), so besides the accuracy each epoch reports the balanced
accuracy (the mean of the per-class recalls: 25% for guessing, also for always answering
"computers") and the recall of each class.  The model is ``apps.models.TextCNN``: embeddings
→ Conv1d of several widths → ReLU → max over time → dropout → linear.  Sentences are cut or
padded (``<pad>``) to ``--seq-len`` words; training words seen fewer than ``--min-count``
times, and test words never seen, read ``<unk>``.

The loop, progress bar, ``history.csv``/curves in ``--out`` and ``--checkpoint``/``--resume``
(bit for bit: the RNG states are saved) are ``apps.train``'s.  Bad arguments give one line on
stderr and exit status 2; Ctrl-C saves a checkpoint and exits with 130.
"""

import collections
import gzip
import importlib
import math
import os
import sys
import time

if not __package__:  # `python apps/train_text.py`, or `import train_text` with apps/ on sys.path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

import numpy as np

import needle as ndl  # noqa: E402
import needle.nn as nn  # noqa: E402
from apps.engine import NonFiniteLoss, minibatches, num_batches, run_epoch  # noqa: E402
from apps.models import TextCNN, count_parameters  # noqa: E402
from apps.train import (  # noqa: E402
    UsageError,
    _Parser,
    check_output_places,
    diverged_message,
    pick_device,
    require_positive,
    restore,
    save_checkpoint,
    write_curves,
    write_history,
)

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "fortunes_text")
PAD, UNK = "<pad>", "<unk>"


def build_parser():
    p = _Parser(prog="python -m apps.train_text", description=__doc__.split("\n")[0])
    p.add_argument("--embedding", type=int, default=32, help="word vector width")
    p.add_argument("--channels", type=int, default=32, help="filters per width")
    p.add_argument("--widths", default="2,3,4", help="comma-separated filter widths (words)")
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--seq-len", type=int, default=40, help="words per sentence (cut or padded)")
    p.add_argument("--min-count", type=int, default=1, help="rarer training words read <unk>")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--data", default=None, help="folder with train.tsv(.gz) and test.tsv(.gz)")
    p.add_argument("--max-examples", type=int, default=None, help="train on this many only")
    p.add_argument("--device", default=None, help="cpu, cuda or numpy")
    p.add_argument("--checkpoint", default=None, help="save model + optimizer here each epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--out", default=os.path.join("runs", "train_text"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(model="textcnn", eval_only=False)  # what apps.train's checkpoints record
    return p


def parse_widths(text):
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise UsageError(f"--widths must be comma-separated integers, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise UsageError(f"--widths must be integers >= 1, got {text!r}")
    return widths


def check_args(args):
    require_positive(args, "embedding", "channels", "seq_len", "min_count", "batch_size", "epochs")
    args.widths = parse_widths(args.widths)
    if max(args.widths) > args.seq_len:
        raise UsageError(f"--widths {max(args.widths)} exceeds --seq-len {args.seq_len}")
    if not 0 <= args.dropout < 1:
        raise UsageError(f"--dropout must be in [0, 1), got {args.dropout}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {args.lr}")
    if args.weight_decay < 0:
        raise UsageError(f"--weight-decay must be >= 0, got {args.weight_decay}")
    if args.max_examples is not None and args.max_examples < 1:
        raise UsageError(f"--max-examples must be >= 1, got {args.max_examples}")
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint PATH")
    if args.resume and not os.path.isfile(args.checkpoint):
        raise UsageError(f"checkpoint not found: {args.checkpoint}")
    check_output_places(args)  # --out writable, --checkpoint's folder exists


# --- data ----------------------------------------------------------------------------------------
def read_tsv(folder, split):
    """``[(category, [words])]`` from ``folder/split.tsv`` or ``.tsv.gz``."""
    for name in (f"{split}.tsv.gz", f"{split}.tsv"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            break
    else:
        raise UsageError(f"--data: {os.path.join(folder, split)}.tsv(.gz) not found")
    opener = gzip.open if path.endswith(".gz") else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            label, tab, text = line.rstrip("\n").partition("\t")
            if not tab or not label:
                raise UsageError(f"--data: {path} line {number} is not 'category<TAB>text'")
            rows.append((label, text.split()))
    if not rows:
        raise UsageError(f"--data: {path} holds no sentences")
    return rows


def build_vocabulary(sentences, min_count):
    """``[<pad>, <unk>, words seen >= min_count times, most frequent first]``."""
    counts = collections.Counter(w for words in sentences for w in words)
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return [PAD, UNK] + kept


def encode(rows, vocab, classes, seq_len):
    """``(X (N, seq_len) word ids, y (N,) class ids)`` as float32 (needle's index dtype)."""
    index = {w: k for k, w in enumerate(vocab)}
    X = np.zeros((len(rows), seq_len), dtype=np.float32)  # 0 is <pad>
    y = np.empty(len(rows), dtype=np.float32)
    for n, (label, words) in enumerate(rows):
        if label not in classes:
            raise UsageError(f"--data: test category {label!r} is not among the training ones")
        ids = [index.get(w, 1) for w in words[:seq_len]]
        X[n, : len(ids)] = ids
        y[n] = classes.index(label)
    return X, y


def load_text(args):
    """(name, classes, vocab, (X, y) train, (X, y) test)."""
    folder = DEFAULT_DATA if args.data is None else args.data
    name = "fortunes categories (embedded)" if args.data is None else folder
    train_rows, test_rows = read_tsv(folder, "train"), read_tsv(folder, "test")
    if args.max_examples is not None:  # a fixed shuffle first: the file is sorted by class
        order = np.random.RandomState(0).permutation(len(train_rows))[: args.max_examples]
        train_rows = [train_rows[k] for k in sorted(order)]
    classes = sorted({label for label, _ in train_rows})
    if len(classes) < 2:
        raise UsageError(f"--data: the training sentences have {len(classes)} category")
    vocab = build_vocabulary([words for _, words in train_rows], args.min_count)
    train = encode(train_rows, vocab, classes, args.seq_len)
    return name, classes, vocab, train, encode(test_rows, vocab, classes, args.seq_len)


# --- evaluation ----------------------------------------------------------------------------------
def confusion(labels, predictions, num_classes):
    """``C[true, predicted]`` counts."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels.astype(np.int64), predictions.astype(np.int64)), 1)
    return matrix


def recalls(matrix):
    """Per-class recall (nan for a class with no sentences) and their mean over the classes
    present: the balanced accuracy."""
    support = matrix.sum(axis=1)
    per_class = np.where(support > 0, np.diag(matrix) / np.maximum(support, 1), np.nan)
    return per_class, float(np.nanmean(per_class))


def evaluate(model, data, args, device):
    """(mean loss, accuracy, balanced accuracy, per-class recalls) on ``data``."""
    model.eval()
    X, y = data
    loss_fn, loss_sum, predictions = nn.SoftmaxLoss(), 0.0, []
    with ndl.no_grad():
        for xb, yb in minibatches(X, y, args.batch_size):
            logits = model(ndl.Tensor(xb, device=device, requires_grad=False))
            target = ndl.Tensor(yb, device=device, requires_grad=False)
            loss_sum += float(loss_fn(logits, target).numpy()) * len(yb)
            predictions.append(logits.numpy().argmax(axis=1))
    predicted = np.concatenate(predictions)
    per_class, balanced = recalls(confusion(y, predicted, model.linear.out_features))
    return loss_sum / len(y), float((predicted == y).mean()), balanced, per_class


# --- the run -------------------------------------------------------------------------------------
def prepare(args):
    check_args(args)
    device = pick_device(args.device)
    name, classes, vocab, train, test = load_text(args)
    np.random.seed(args.seed)  # initialization and dropout draw from the global NumPy RNG
    model = TextCNN(len(vocab), len(classes), args.embedding, args.channels, args.widths,
                    args.dropout, args.seq_len, device=device)  # fmt: skip
    if args.optimizer == "adam":
        opt = ndl.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    else:
        opt = ndl.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9,
                            weight_decay=args.weight_decay)  # fmt: skip
    state = {"epoch": 0, "history": [], "loader_rng": np.random.RandomState(args.seed)}
    if args.resume:
        restore(args, model, opt, state)  # a different vocabulary fails here: shapes differ
    return name, classes, vocab, train, test, device, model, opt, state


def train_epoch(args, train, device, model, opt, state, epoch):
    X, y = train
    batches = minibatches(X, y, args.batch_size, shuffle=True, rng=state["loader_rng"])
    return run_epoch(model, batches, nn.SoftmaxLoss(), opt, device=device,
                     progress=not args.no_progress, desc=f"epoch {epoch}",
                     total=num_batches(len(X), args.batch_size))  # fmt: skip


def fit(args, classes, train, test, device, model, opt, state):
    for epoch in range(state["epoch"] + 1, args.epochs + 1):
        start = time.perf_counter()
        tr = train_epoch(args, train, device, model, opt, state, epoch)
        te_loss, te_acc, balanced, per_class = evaluate(model, test, args, device)
        seconds = time.perf_counter() - start
        recall = ", ".join(f"{c} {100 * r:.0f}%" for c, r in zip(classes, per_class))
        print(f"epoch {epoch}: train loss {tr.loss:.4f} acc {100 * tr.accuracy:.1f}% | test "
              f"loss {te_loss:.4f} acc {100 * te_acc:.1f}% balanced {100 * balanced:.1f}% "
              f"(recall {recall}) | {tr.images_per_s:,.0f} sentences/s | {seconds:.1f} s",
              flush=True)  # fmt: skip
        state["history"].append({
            "epoch": epoch, "lr": args.lr, "train_loss": tr.loss, "train_acc": tr.accuracy,
            "test_loss": te_loss, "test_acc": te_acc, "test_balanced_acc": balanced,
            "seconds": seconds, "images_per_s": tr.images_per_s,
        })  # fmt: skip
        state["epoch"] = epoch
        if args.checkpoint:
            save_checkpoint(args.checkpoint, args, model, opt, state)
        write_history(state["history"], args.out)


def main(argv=None):
    """Run the trainer; returns the exit status (0, 1 if it diverged, 2 for usage errors,
    130 on Ctrl-C)."""
    try:
        args = build_parser().parse_args(argv)
        name, classes, vocab, train, test, device, model, opt, state = prepare(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{c} {int((train[1] == k).sum())}" for k, c in enumerate(classes))
    print(f"TextCNN widths {','.join(map(str, args.widths))}: {count_parameters(model):,} "
          f"parameters | data: {name}, {len(train[1]):,} train ({counts}) / {len(test[1]):,} "
          f"test sentences, vocabulary {len(vocab):,} | device {device}", flush=True)  # fmt: skip
    if state["epoch"] >= args.epochs:
        print(f"checkpoint is at epoch {state['epoch']} >= --epochs {args.epochs}: nothing to do")
        return 0
    try:
        fit(args, classes, train, test, device, model, opt, state)
    except NonFiniteLoss as exc:
        print(diverged_message(exc, state, skip_option=False), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        path = args.checkpoint or os.path.join(args.out, "interrupted.ckpt")
        save_checkpoint(path, args, model, opt, state, interrupted=True)
        print(f"\ninterrupted: saved {path} (--resume re-runs epoch {state['epoch'] + 1})",
              file=sys.stderr)  # fmt: skip
        return 130
    last = state["history"][-1]
    print(f"done: test accuracy {100 * last['test_acc']:.1f}%, balanced "
          f"{100 * last['test_balanced_acc']:.1f}% after {last['epoch']} epochs")  # fmt: skip
    paths = write_curves(state["history"], args.out)
    print("curves: " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
