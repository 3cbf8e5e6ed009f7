"""Data-parallel costs on this machine: ``python benchmarks/bench_distributed.py``.

1. The gradient all-reduce of ResNet9 (431,946 float32) through ``needle.distributed``
   (``DistributedOptimizer.synchronize`` after ``loss.backward()``, whose hooks have written
   each gradient into the buffer) against a raw mpi4py ``Allreduce`` of one buffer of the
   same size after the same backward, 2 ranks, alternated; medians.  Also: the raw
   Allreduce back to back (hot caches), synchronize with gradients set by hand (packed at
   synchronize), with fp16 compression, and the time the hooks take inside backward.
2. ResNet9 training throughput (img/s, random 3x32x32 data, global batch 64): 1 rank with 2
   threads against 2 ranks with 1 thread each.

The script starts itself under ``mpiexec`` (found beside this Python or on PATH).
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "python"), ROOT]


def mpiexec():
    candidate = os.path.join(sysconfig.get_path("scripts"), "mpiexec")
    return candidate if os.access(candidate, os.X_OK) else shutil.which("mpiexec")


def launch(n, threads, *args):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")  # fmt: skip
    cmd = [mpiexec(), "-n", str(n), "--oversubscribe", "--bind-to", "none", sys.executable,
           os.path.abspath(__file__), *args]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if out.returncode:
        sys.exit(out.stdout + out.stderr)
    return out.stdout


def median_time(fn, repeats, warmup=5):
    import numpy as np

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def worker_allreduce(repeats=40):
    """Times what a training step spends on gradients beyond backward(), as users get it:
    ``loss.backward()`` (whose hooks write each gradient, weighted, into the bucket) then
    ``synchronize`` (the all-reduce), against a raw Allreduce of one buffer of that size."""
    import numpy as np
    from apps.models import ResNet9
    from mpi4py import MPI

    import needle as ndl
    import needle.distributed as dist
    import needle.nn as nn

    comm = dist.init()
    np.random.seed(0)
    model = ResNet9(device=ndl.cpu())
    params = model.parameters()
    total = sum(int(np.prod(p.shape)) for p in params)
    raw = np.ones(total, np.float32)
    X = ndl.Tensor(np.random.rand(2, 3, 32, 32).astype("float32"), requires_grad=False)
    y = ndl.Tensor(np.array([1.0, 2.0], "float32"), requires_grad=False)
    loss_fn = nn.SoftmaxLoss()

    def backward():
        for p in params:
            p.grad = None
        loss_fn(model(X), y).backward()

    def timed(fn, before=None):
        """Median time of fn(), each call after an untimed before()."""
        times = []
        for k in range(repeats + 3):
            if before is not None:
                before()
            comm.Barrier()
            start = time.perf_counter()
            fn()
            if k >= 3:
                times.append(time.perf_counter() - start)
        return float(np.median(times))

    def raw_allreduce():
        comm.Allreduce(MPI.IN_PLACE, raw, op=MPI.SUM)

    # In a step: alternately, backward without hooks then the raw Allreduce, and backward
    # with the bucket hooks then synchronize (the two differ only in what a step does).
    opt = dist.DistributedOptimizer(ndl.optim.SGD(params, lr=0.1))
    hooks = [p._grad_hooks for p in params]
    rounds = {"backward": [], "raw": [], "hooked backward": [], "synchronize": []}
    for k in range(repeats + 3):
        for with_hooks in (False, True):
            for p, h in zip(params, hooks):
                p._grad_hooks = h if with_hooks else ()
            comm.Barrier()
            start = time.perf_counter()
            backward()
            middle = time.perf_counter()
            comm.Barrier()
            middle2 = time.perf_counter()
            (opt.synchronize if with_hooks else raw_allreduce)()
            end = time.perf_counter()
            if k >= 3:
                rounds["hooked backward" if with_hooks else "backward"].append(middle - start)
                rounds["synchronize" if with_hooks else "raw"].append(end - middle2)
    med = {name: float(np.median(times)) for name, times in rounds.items()}
    t_raw = med["raw"]

    # The hooks' own time inside backward (the difference of the two backward medians is
    # within the noise of two ranks sharing two cores): each hook wrapped in a timer.
    spent = [0.0]

    def timing(hook):
        def timed_hook(tensor):
            start = time.perf_counter()
            hook(tensor)
            spent[0] += time.perf_counter() - start

        return timed_hook

    for p, h in zip(params, hooks):
        p._grad_hooks = tuple(timing(hook) for hook in h)
    in_hooks = []
    for k in range(repeats + 3):
        spent[0] = 0.0
        backward()
        opt.synchronize()
        if k >= 3:
            in_hooks.append(spent[0])
    for p, h in zip(params, hooks):
        p._grad_hooks = h
    t_hooks = float(np.median(in_hooks))
    results = {"fp32": med["synchronize"]}
    grads = [ndl.Tensor(np.random.randn(*p.shape).astype("float32")) for p in params]

    def assign():
        for p, g in zip(params, grads):
            p.grad = g

    results["fp32, gradients set by hand"] = timed(opt.synchronize, before=assign)
    t_hot = timed(raw_allreduce)
    opt16 = dist.DistributedOptimizer(ndl.optim.SGD(params, lr=0.1), compression="fp16")
    results["fp16"] = timed(opt16.synchronize, before=backward)

    # Adam's flat update reads the averaged gradients in the bucket in place (flat_view);
    # without that it packs them again (concat_flat), as it does for a single process.
    adam = dist.DistributedOptimizer(ndl.optim.Adam(params, lr=1e-4))
    in_place = ndl.backend_ndarray.flat_view
    adam_steps = {"in place": [], "packed": []}
    for k in range(repeats + 3):
        for name in adam_steps:
            ndl.backend_ndarray.flat_view = in_place if name == "in place" else (lambda a: None)
            adam.reset_grad()
            backward()
            adam.synchronize()
            comm.Barrier()
            start = time.perf_counter()
            adam.step()
            if k >= 3:
                adam_steps[name].append(time.perf_counter() - start)
    ndl.backend_ndarray.flat_view = in_place
    if comm.Get_rank() == 0:
        mb = total * 4 / 2**20
        print(f"ResNet9 gradient: {total:,} floats ({mb:.2f} MiB), {comm.Get_size()} ranks")
        print(f"raw mpi4py Allreduce (one buffer), back to back: {1e3 * t_hot:7.3f} ms")
        print(f"raw mpi4py Allreduce (one buffer), after backward: {1e3 * t_raw:7.3f} ms")
        for name, t in results.items():
            print(f"needle.distributed synchronize {name}: {1e3 * t:7.3f} ms "
                  f"(raw / needle = {t_raw / t:.2f}x)")  # fmt: skip
        adam_ms = {name: 1e3 * float(np.median(t)) for name, t in adam_steps.items()}
        print(f"Adam step after synchronize, gradients read in the bucket / packed again: "
              f"{adam_ms['in place']:.3f} / {adam_ms['packed']:.3f} ms")  # fmt: skip
        print(f"time in the bucket hooks per backward: {1e3 * t_hooks:.3f} ms; "
              f"raw / (synchronize + hooks) = {t_raw / (results['fp32'] + t_hooks):.2f}x")


def worker_train(steps=20, batch=64):
    import numpy as np
    from apps.models import ResNet9

    import needle as ndl
    import needle.distributed as dist
    import needle.nn as nn

    dist.init()
    rank, size = dist.rank(), dist.size()
    np.random.seed(0)
    model = ResNet9(device=ndl.cpu())
    dist.broadcast_parameters(model)
    opt = dist.DistributedOptimizer(ndl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    rng = np.random.RandomState(rank)
    share = batch // size
    X = ndl.Tensor(rng.rand(share, 3, 32, 32).astype("float32"), device=ndl.cpu(),
                   requires_grad=False)  # fmt: skip
    y = ndl.Tensor(rng.randint(0, 10, share).astype("float32"), device=ndl.cpu(),
                   requires_grad=False)  # fmt: skip
    loss_fn = nn.SoftmaxLoss()
    model.train()

    def step():
        opt.reset_grad()
        loss_fn(model(X), y).backward()
        opt.step()

    t = median_time(step, steps, warmup=3)
    if rank == 0:
        print(f"{size} rank(s) x {os.environ.get('OMP_NUM_THREADS')} thread(s): "
              f"{1e3 * t:.0f} ms/step, {batch / t:.0f} img/s (global batch {batch})")  # fmt: skip


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "allreduce":
        return worker_allreduce()
    if len(sys.argv) > 1 and sys.argv[1] == "train":
        return worker_train()
    print(launch(2, 1, "allreduce"), end="")
    one = launch(1, 2, "train")
    two = launch(2, 1, "train")
    print(one + two, end="")
    ips = [float(line.split(" img/s")[0].split()[-1]) for line in (one, two)]
    print(f"scaling efficiency (2 ranks x 1 thread vs 1 rank x 2 threads): {ips[1] / ips[0]:.2f}")


if __name__ == "__main__":
    main()
