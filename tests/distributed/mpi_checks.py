"""Run under ``mpiexec -n 2`` by test_distributed.py: collective checks, one ``ok NAME`` line
per passed check on rank 0 (a failed check raises, which aborts the job with its rank)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import numpy as np  # noqa: E402

import needle as ndl  # noqa: E402
import needle.backend_ndarray as nda  # noqa: E402
import needle.distributed as dist  # noqa: E402
import needle.nn as nn  # noqa: E402


def report(name):
    dist.barrier()
    if dist.rank() == 0:
        print(f"ok {name}", flush=True)


def check_all_reduce(device):
    r, n = dist.rank(), dist.size()
    x = nda.NDArray(np.arange(6, dtype="float32").reshape(2, 3) * (r + 1), device=device)
    total = sum(k + 1 for k in range(n))
    got = dist.all_reduce(x, op="sum")
    np.testing.assert_allclose(got.numpy(), np.arange(6).reshape(2, 3) * total)
    assert isinstance(got, nda.NDArray) and got.device == device
    got = dist.all_reduce(ndl.Tensor(x, device=device), op="mean")
    np.testing.assert_allclose(got.numpy(), np.arange(6).reshape(2, 3) * total / n, rtol=1e-6)
    np.testing.assert_allclose(x.numpy(), np.arange(6).reshape(2, 3) * (r + 1))  # unchanged
    report("all_reduce")


def check_broadcast(device):
    np.random.seed(100 + dist.rank())  # differently seeded ranks build different models
    model = nn.Sequential(nn.Linear(5, 4, device=device), nn.BatchNorm1d(4, device=device))
    model.modules()[-1].running_mean.cached_data = nda.NDArray(
        np.full(4, dist.rank(), "float32"), device=device)
    ids = [id(p) for p in model.parameters()]
    dist.broadcast_parameters(model)
    assert ids == [id(p) for p in model.parameters()]
    for _, t in list(model.named_parameters()) + list(model.named_buffers()):
        mine = t.numpy()
        root = dist.broadcast(mine)
        np.testing.assert_array_equal(mine, root)
        other = dist.all_reduce(mine, op="mean")
        np.testing.assert_array_equal(mine, other)  # equal on every rank
    assert float(model.modules()[-1].running_mean.numpy()[0]) == 0.0
    report("broadcast_parameters")


def check_optimizer(device, compression):
    """Rank r's gradient is (r + 1) * g with share n_r / n: the reduced gradient is the
    weighted sum, one Allreduce per dtype."""
    r, n = dist.rank(), dist.size()
    params = [
        ndl.Tensor(np.zeros((3, 2), "float32"), device=device),
        ndl.Tensor(np.zeros(5, "float32"), device=device),
        ndl.Tensor(np.zeros(4, "float64"), device=device, dtype="float64"),
        ndl.Tensor(np.zeros(2, "float32"), device=device),  # no gradient anywhere
    ]
    opt = dist.DistributedOptimizer(ndl.optim.SGD(params, lr=1.0), compression=compression)
    shares = [(k + 1) / (n * (n + 1) / 2) for k in range(n)]  # uneven shares summing to 1
    for _ in range(2):  # the second step reuses the buffers
        for p in params[:3]:
            p.grad = ndl.Tensor(np.full(p.shape, r + 1.0, p.dtype), device=device, dtype=p.dtype)
        if r == 1:
            params[1].grad = None  # absent on one rank: counts as zero there
        opt.share = shares[r]
        opt.synchronize()
        expect = sum(s * (k + 1) for k, s in enumerate(shares))
        expect_1 = sum(s * (k + 1) for k, s in enumerate(shares) if k != 1)
        tol = 1e-3 if compression else 1e-6
        np.testing.assert_allclose(params[0].grad.numpy(), expect, rtol=tol)
        np.testing.assert_allclose(params[1].grad.numpy(), expect_1, rtol=tol)
        np.testing.assert_allclose(params[2].grad.numpy(), expect, rtol=tol)
        assert params[2].grad.dtype == "float64"
        assert params[3].grad is None
    assert opt._collective_calls == 4, opt._collective_calls  # 2 steps x 2 dtypes
    opt.lr = 0.5
    assert opt.optimizer.lr == 0.5
    report(f"optimizer {compression or 'fp32'}")


def main():
    dist.init()
    device = ndl.cpu() if ndl.cpu().enabled() else ndl.cpu_numpy()
    check_all_reduce(device)
    check_broadcast(device)
    check_optimizer(device, None)
    check_optimizer(device, "fp16")


if __name__ == "__main__":
    main()
