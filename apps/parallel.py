"""``python -m apps.train --distributed``: data-parallel training on MPI (needle.distributed).

Started as ``mpiexec -n N python -m apps.train --distributed ...``.  Every rank builds the
same model (rank 0's weights, optimizer state, epoch, history and RNG states are broadcast,
so ``--resume`` works with any number of ranks, and only rank 0 reads the checkpoint).  Each
step the global batch of ``--batch-size`` samples is the one a single process would take
(the same permutation and augmentation draws); rank r trains on its contiguous share of it
(``DistributedSampler``) and ``DistributedOptimizer`` averages the gradients, weighted by
the shares.  Evaluation is sharded (each rank a slice of the test set) and its sums are
all-reduced.  Only rank 0 prints, writes ``history.csv``/curves and checkpoints.

BatchNorm keeps per-rank statistics, as PyTorch's DistributedDataParallel does: in training
each rank normalizes with the statistics of its own share (so a model with BatchNorm does not
compute exactly what one process computes); before evaluation and checkpoints the running
statistics are broadcast from rank 0.

Faults end the whole job: an uncaught exception prints ``rank N: <error>`` and aborts every
rank; a non-finite loss (without ``--skip-nonfinite``) does the same with its epoch and step.
Ctrl-C on ``mpiexec`` reaches the ranks as SIGTERM (Open MPI kills them about 0.25 s later):
rank 0 saves its checkpoint as ``apps.train`` does and ends the job with status 130; the
other ranks ignore the signal, so that rank 0 is not left waiting in a collective.
"""

import importlib
import os
import signal
import sys
import time

if not __package__:  # `import parallel` with apps/ on sys.path, as the course's tests do
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

import numpy as np

import needle.nn as nn
from apps import train
from apps.datasets import DataError, Split
from apps.engine import EpochResult, NonFiniteLoss, run_epoch, scheduled_lr


def main(args) -> int:
    """Run the distributed trainer on this rank; returns the exit status."""
    import needle.distributed as dist

    try:
        dist.init()
    except ImportError:
        print(
            f"error: --distributed needs mpi4py and an MPI library: {dist.INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    rank = dist.rank()
    setup, error = None, None
    try:
        setup = train.prepare(args, files=rank == 0)
    except (train.UsageError, DataError) as exc:
        error = str(exc)
    failed = [(r, e) for r, e in enumerate(dist.all_gather_object(error)) if e]
    if failed:  # every rank returns together; rank 0 reports the first problem
        if rank == 0:
            r, e = failed[0]
            print(f"error: {e}" if r == 0 else f"error: rank {r}: {e}", file=sys.stderr)
        return 2
    data, train_split, test, device, model, opt, state = setup
    share_state(dist, model, opt, state)
    dopt = dist.DistributedOptimizer(opt, compression=args.compression)
    if rank == 0:
        print_header(args, data, train_split, test, device, model, dist.size())
    if args.eval_only:
        te = evaluate(args, dist, test, device, model, "test")
        if rank == 0:
            print(
                f"test loss {te.loss:.4f} acc {100 * te.accuracy:.2f}% "
                f"({te.samples:,} images on {dist.size()} ranks)"
            )
        return 0
    if state["epoch"] >= args.epochs:
        if rank == 0:
            print(f"checkpoint is at epoch {state['epoch']} >= --epochs {args.epochs}: "
                  "nothing to do")
        return 0
    return run(args, dist, train_split, test, device, model, dopt, state)


def share_state(dist, model, opt, state):
    """Rank 0's weights, buffers, optimizer state, epoch, history and RNG states everywhere."""
    dist.broadcast_parameters(model)
    dist.broadcast_optimizer_state(opt)
    rest = dist.broadcast_object(
        {
            "epoch": state["epoch"],
            "history": state["history"],
            "global": np.random.get_state(),
            "loader": state["loader_rng"].get_state(),
        }
    )
    state["epoch"], state["history"] = rest["epoch"], list(rest["history"])
    np.random.set_state(rest["global"])
    state["loader_rng"].set_state(rest["loader"])


def print_header(args, data, train_split, test, device, model, size):
    has_bn = any("BatchNorm" in type(m).__name__ for m in model.modules())
    print(
        f"{args.model}: {train.count_parameters(model):,} parameters | data: {data.name}, "
        f"{len(train_split):,} train / {len(test):,} test | device {device} | "
        f"{args.optimizer} lr {args.lr:g} ({args.schedule}) | {size} ranks, global batch "
        f"{args.batch_size} ({args.batch_size / size:g} per rank)"
        + (f" | allreduce {args.compression}" if args.compression != "none" else "")
        + (" | BatchNorm statistics per rank" if has_bn else ""),
        flush=True,
    )


def run(args, dist, train_split, test, device, model, dopt, state) -> int:
    rank = dist.rank()
    _route_signals(rank)
    start = time.perf_counter()
    try:
        fit(args, dist, train_split, test, device, model, dopt, state)
    except NonFiniteLoss as exc:
        dist.abort(train.diverged_message(exc, state))
    except KeyboardInterrupt:  # rank 0 only: the others ignore SIGINT/SIGTERM
        out_dir = train.output_folder(args)
        path = args.checkpoint or f"{out_dir}/interrupted.ckpt"
        train.save_checkpoint(path, args, model, dopt.optimizer, state, interrupted=True)
        print(
            f"\ninterrupted: saved {path} (weights mid-epoch {state['epoch'] + 1}; "
            f"--resume re-runs that epoch)",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(0.1)  # let mpiexec forward the line (it kills the job ~0.25 s after Ctrl-C)
        dist.init().Abort(130)  # the other ranks may be waiting in a collective
    if rank == 0:
        last = state["history"][-1]
        print(
            f"done in {time.perf_counter() - start:.1f} s: test accuracy "
            f"{100 * last['test_acc']:.2f}% after {last['epoch']} epochs"
        )
        paths = train.write_curves(state["history"], train.output_folder(args))
        print("curves: " + ", ".join(paths))
    return 0


def _route_signals(rank):
    """Rank 0 turns SIGTERM (what ``mpiexec`` sends on Ctrl-C) into KeyboardInterrupt."""
    if rank == 0:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    else:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def shards(split, sampler, global_batches, augment, rng):
    """This rank's share of each global batch; augmentation draws for the whole global batch
    (from the shared ``rng``), so every rank's draws match a single process's."""
    for batch in global_batches:
        lo, hi = sampler.bounds(len(batch))
        if augment is None:
            yield split.X[batch[lo:hi]], split.y[batch[lo:hi]]
        else:
            yield augment(split.X[batch], rng)[lo:hi], split.y[batch[lo:hi]]


def fit(args, dist, train_split, test, device, model, dopt, state):
    """The epoch loop of ``apps.train.fit`` with sharded batches and all-reduced metrics."""
    from needle.data import DistributedSampler

    rank, loss_fn = dist.rank(), nn.SoftmaxLoss()
    rng = state["loader_rng"]
    sampler = DistributedSampler(len(train_split), args.batch_size, dist.size(), rank, rng=rng)
    steps = len(sampler)
    for epoch in range(state["epoch"], args.epochs):
        global_batches = sampler.global_batches()
        shares = [_share(sampler, len(b)) for b in global_batches]

        def on_step(i, epoch=epoch, shares=shares):
            dopt.lr = scheduled_lr(args.schedule, args.lr, epoch * steps + i, steps * args.epochs)
            dopt.share = shares[i]

        desc = f"epoch {epoch + 1}/{args.epochs}"
        tr = run_epoch(
            model,
            shards(train_split, sampler, global_batches, train.augmenter(args), rng),
            loss_fn,
            dopt,
            device=device,
            dtype=args.dtype,
            on_step=on_step,
            progress=rank == 0 and not args.no_progress,
            desc=desc,
            total=steps,
            nonfinite="skip" if args.skip_nonfinite else "raise",
        )
        tr = reduce_result(dist, tr)
        te = evaluate(args, dist, test, device, model, desc + " test")
        state["epoch"] = epoch + 1
        state["history"].append(train.history_row(epoch, dopt.lr, tr, te))
        if rank == 0:
            train.report_epoch(desc, dopt.lr, tr, te)
            train.write_history(state["history"], train.output_folder(args))
            if args.checkpoint:
                train.save_checkpoint(args.checkpoint, args, model, dopt.optimizer, state)


def _share(sampler, batch_len):
    """This rank's fraction of a global batch (its gradient's weight in the average)."""
    lo, hi = sampler.bounds(batch_len)
    return (hi - lo) / batch_len


def evaluate(args, dist, split, device, model, desc):
    """Each rank evaluates its contiguous slice of ``split``; sums are all-reduced.  The
    running statistics (BatchNorm) are rank 0's."""
    from needle.data import share_bounds

    dist.broadcast_buffers(model)
    lo, hi = share_bounds(len(split), dist.size(), dist.rank())
    shard = Split(split.X[lo:hi], split.y[lo:hi])
    progress = dist.rank() == 0 and not args.no_progress
    result = train.evaluate(args, shard, device, model, nn.SoftmaxLoss(), progress, desc)
    return reduce_result(dist, result)


def reduce_result(dist, result: EpochResult) -> EpochResult:
    """Sample-weighted loss and accuracy over all ranks (a rank with no samples adds 0)."""
    n = result.samples
    local = np.array(
        [result.loss * n if n else 0.0, result.accuracy * n if n else 0.0, n, result.skipped],
        dtype=np.float64,
    )
    loss_sum, correct, samples, skipped = dist.all_reduce(local, op="sum")
    if samples == 0:
        return EpochResult(float("nan"), float("nan"), 0, result.seconds, int(skipped))
    return EpochResult(
        loss_sum / samples, correct / samples, int(samples), result.seconds, int(skipped)
    )
