"""Train a word-level language model and print train / test perplexity each epoch.

    python -m apps.train_lm                          # LSTM on the embedded fortunes corpus
    python -m apps.train_lm --model gru --epochs 3 --hidden 256
    python -m apps.train_lm --data ptb:data/ptb      # the Penn Treebank folder (train/test.txt)

The default data (``apps/data/fortunes_lm``, see ``apps/data/TEXT_DATA.md``) ships with the
project.  The model is ``apps.models.LanguageModel``; the loop is the course's
``epoch_general_ptb`` (hidden state carried between chunks, detached), with a progress bar,
``history.csv`` (losses; perplexity = exp(loss)) in ``--out``, and ``--checkpoint``/``--resume`` as
``apps.train``.  Bad arguments give one line on stderr and exit status 2.
"""

import gzip
import importlib
import math
import os
import sys
import time

if not __package__:  # `python apps/train_lm.py`, or `import train_lm` with apps/ on sys.path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

import numpy as np

import needle as ndl  # noqa: E402
import needle.nn as nn  # noqa: E402
from apps import checkpoint as ckpt  # noqa: E402
from apps.models import LanguageModel, count_parameters  # noqa: E402
from apps.train import (  # noqa: E402
    UsageError,
    _Parser,
    pick_device,
    require_positive,
    write_history,
)

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "fortunes_lm")


def build_parser():
    p = _Parser(prog="python -m apps.train_lm", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="lstm", choices=["rnn", "lstm", "gru"])
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--embedding", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    p.add_argument("--clip", type=float, default=0.25, help="gradient norm limit (0: none)")
    p.add_argument("--data", default=None, help="ptb:DIR for the Penn Treebank folder")
    p.add_argument("--max-tokens", type=int, default=None, help="use only this many tokens")
    p.add_argument("--device", default=None, help="cpu, cuda or numpy")
    p.add_argument("--checkpoint", default=None, help="save model + optimizer here each epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--out", default=os.path.join("runs", "train_lm"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    return p


def check_args(args):
    require_positive(args, "layers", "hidden", "embedding", "seq_len", "batch_size", "epochs")
    if not args.lr > 0:
        raise UsageError(f"--lr must be > 0, got {args.lr}")
    if args.clip < 0:
        raise UsageError(f"--clip must be >= 0, got {args.clip}")
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint PATH")
    if args.max_tokens is not None and args.max_tokens < 2 * args.batch_size:
        raise UsageError(f"--max-tokens must be at least 2 x --batch-size, got {args.max_tokens}")


def _read_lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def load_corpus(spec):
    """(name, train lines, test lines) from the embedded corpus or ``ptb:DIR``."""
    if spec is None:
        folder, name, files = DEFAULT_DATA, "fortunes (embedded)", ("train.txt.gz", "test.txt.gz")
    elif spec.startswith("ptb:"):
        folder, name = spec[4:], f"Penn Treebank ({spec[4:]})"
        test = "test.txt" if os.path.exists(os.path.join(folder, "test.txt")) else "valid.txt"
        files = ("train.txt", test)
    else:
        raise UsageError(f"--data must be ptb:DIR, got {spec!r}")
    paths = [os.path.join(folder, f) for f in files]
    for path in paths:
        if not os.path.isfile(path):
            raise UsageError(f"--data: {path} not found")
    return name, _read_lines(paths[0]), _read_lines(paths[1])


def tokenize(lines, dictionary):
    ids = []
    for line in lines:
        for word in line.split() + ["<eos>"]:
            ids.append(dictionary.add_word(word))
    return ids


def progress(desc, done, total, start, enabled):
    if enabled:
        rate = done / max(time.perf_counter() - start, 1e-9)
        bar = "#" * int(30 * done / max(total, 1))
        print(f"\r{desc} [{bar:<30}] {done}/{total} chunks {rate:.1f}/s", end="",
              file=sys.stderr, flush=True)  # fmt: skip


def run_epoch(model, data, args, device, opt=None, desc="train"):
    """One pass in chunks of ``--seq-len`` rows; returns (mean loss, tokens/s)."""
    model.train() if opt is not None else model.eval()
    loss_fn, h, total, count = nn.SoftmaxLoss(), None, 0.0, 0
    starts = list(range(0, data.shape[0] - 1, args.seq_len))
    start = time.perf_counter()
    for k, i in enumerate(starts):
        x, y = ndl.data.get_batch(data, i, args.seq_len, device=device, dtype="float32")
        if h is not None:
            h = tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach()
        logits, h = model(x, h)
        loss = loss_fn(logits, y)
        if opt is not None:
            opt.reset_grad()
            loss.backward()
            if args.clip:
                opt.clip_grad_norm(args.clip)
            opt.step()
        value = float(loss.numpy())
        if not math.isfinite(value):
            raise FloatingPointError(f"{desc}: the loss became {value} at chunk {k}")
        total += value * y.shape[0]
        count += y.shape[0]
        progress(desc, k + 1, len(starts), start, not args.no_progress)
    if not args.no_progress:
        print(file=sys.stderr)
    return total / max(count, 1), count / (time.perf_counter() - start)


def prepare(args):
    check_args(args)
    device = pick_device(args.device)
    name, train_lines, test_lines = load_corpus(args.data)
    dictionary = ndl.data.Dictionary()
    train_ids, test_ids = tokenize(train_lines, dictionary), tokenize(test_lines, dictionary)
    if args.max_tokens:
        train_ids, test_ids = train_ids[: args.max_tokens], test_ids[: args.max_tokens]
    for split, ids in (("train", train_ids), ("test", test_ids)):
        if len(ids) < 2 * args.batch_size:
            raise UsageError(f"{split} data has {len(ids)} tokens, too few for --batch-size "
                             f"{args.batch_size}")  # fmt: skip
    train = ndl.data.batchify(train_ids, args.batch_size, device, "float32")
    test = ndl.data.batchify(test_ids, args.batch_size, device, "float32")
    np.random.seed(args.seed)
    model = LanguageModel(args.embedding, len(dictionary), args.hidden, args.layers,
                          args.model, args.seq_len, device=device)  # fmt: skip
    if args.optimizer == "adam":
        opt = ndl.optim.Adam(model.parameters(), lr=args.lr)
    else:
        opt = ndl.optim.SGD(model.parameters(), lr=args.lr)
    state = {"epoch": 0, "history": []}
    if args.resume:
        try:
            saved = ckpt.load(args.checkpoint)
            ckpt.load_model_state(model, saved["model"])
            ckpt.load_optimizer_state(opt, saved["optimizer"])
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise UsageError(f"--resume: {exc}") from None
        state = {"epoch": int(saved["epoch"]), "history": list(saved.get("history", []))}
    return name, len(dictionary), train, test, device, model, opt, state


def main(argv=None):
    """Run the trainer; returns the exit status (0, 2 for usage errors, 130 on Ctrl-C)."""
    try:
        args = build_parser().parse_args(argv)
        name, vocab, train, test, device, model, opt, state = prepare(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.model} language model: {count_parameters(model):,} parameters | data: {name}, "
          f"{train.size:,} train / {test.size:,} test tokens, vocabulary {vocab:,} | "
          f"device {device}", flush=True)  # fmt: skip
    try:
        for epoch in range(state["epoch"] + 1, args.epochs + 1):
            start = time.perf_counter()
            tr_loss, tok_s = run_epoch(model, train, args, device, opt, f"epoch {epoch} train")
            te_loss, _ = run_epoch(model, test, args, device, None, f"epoch {epoch} test")
            seconds = time.perf_counter() - start
            print(f"epoch {epoch}: train perplexity {math.exp(tr_loss):.1f} | test perplexity "
                  f"{math.exp(te_loss):.1f} | {tok_s:,.0f} tokens/s | {seconds:.1f} s",
                  flush=True)  # fmt: skip
            state["history"].append({
                "epoch": epoch, "lr": args.lr, "train_loss": tr_loss, "train_acc": 0.0,
                "test_loss": te_loss, "test_acc": 0.0, "seconds": seconds,
                "images_per_s": tok_s,
            })  # fmt: skip
            state["epoch"] = epoch
            if args.checkpoint:
                ckpt.save(args.checkpoint, {
                    "model": ckpt.model_state(model), "optimizer": ckpt.optimizer_state(opt),
                    "epoch": epoch, "history": state["history"],
                })  # fmt: skip
            write_history(state["history"], args.out)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except FloatingPointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
