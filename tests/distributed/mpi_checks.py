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


def check_bucket_hooks(device, compression=None):
    """Gradients from backward() reach the buffer through the hooks: before the all-reduce
    p.grad is the rank's weighted gradient, after it the weighted sum over ranks; a share set
    after backward, a gradient replaced by hand, a stale gradient, synchronize() before
    step(), and a second optimizer over the same parameters all give the exact averages."""
    r, n = dist.rank(), dist.size()
    np.random.seed(7)
    first_layer = nn.Linear(4, 3, device=device)
    model = nn.Sequential(first_layer, nn.ReLU(), nn.Linear(3, 2, device=device))
    params = model.parameters()
    rng = np.random.default_rng(20 + r)  # each rank its own data
    X = ndl.Tensor(rng.standard_normal((5, 4)).astype("float32"), device=device)
    y = ndl.Tensor(rng.integers(0, 2, 5).astype("float32"), device=device)
    loss_fn = nn.SoftmaxLoss()

    def backward(loss_of=None):
        (loss_of or (lambda: loss_fn(model(X), y)))().backward()

    backward()  # no optimizer yet: plain local gradients
    local = [p.grad.numpy().copy() for p in params]
    every = dist.all_gather_object(local)  # every rank's local gradients

    def weighted(shares, scale=None):
        scale = scale or [1.0] * len(params)
        return [sum(shares[k] * every[k][i] * scale[i] for k in range(n))
                for i in range(len(params))]  # fmt: skip

    tol = dict(rtol=2e-3, atol=1e-4) if compression else dict(rtol=1e-5, atol=1e-7)

    def expect(grads, want, what):
        for i, (g, w) in enumerate(zip(grads, want)):
            np.testing.assert_allclose(g, w, err_msg=f"{what} {i}", **tol)

    mean = weighted([1.0 / n] * n)
    opt = dist.DistributedOptimizer(ndl.optim.SGD(params, lr=1.0), compression=compression)
    for _ in range(2):  # the second round reuses the buffer
        opt.reset_grad()
        backward()
        expect([p.grad.numpy() for p in params], [g / n for g in local], "weighted by the hook")
        calls = opt._collective_calls
        opt.synchronize()
        expect([p.grad.numpy() for p in params], mean, "average")
        before = [p.numpy().copy() for p in params]
        opt.step()  # synchronize() was called: only the update
        assert opt._collective_calls == calls + 1
        expect([p.numpy() for p in params], [b - m for b, m in zip(before, mean)], "update")
        for p, b in zip(params, before):
            p.cached_data = ndl.Tensor(b, device=device).realize_cached_data()

    shares = [(k + 1) / (n * (n + 1) / 2) for k in range(n)]
    opt.reset_grad()
    opt.share = 1.0 / n
    backward()
    opt.share = shares[r]  # changed after backward: the piece is weighted again at step()
    opt.synchronize()
    expect([p.grad.numpy() for p in params], weighted(shares), "share set after backward")

    opt.share = None
    opt.reset_grad()
    backward()
    params[0].grad = ndl.Tensor(2 * local[0], device=device)  # replaced by hand
    opt.synchronize()
    expect([p.grad.numpy() for p in params], weighted([1.0 / n] * n, [2, 1, 1, 1]), "replaced")

    # Not reset: the last layer's gradients stay the last average (stale), the first
    # layer's come from a loss that does not reach the last layer's bias.
    averaged = [p.grad.numpy().copy() for p in params]
    backward(lambda: (first_layer(X) * 0.5).sum())
    firsts = dist.all_gather_object([p.grad.numpy().copy() for p in params[:2]])  # weighted
    opt.synchronize()
    want = [sum(f[i] for f in firsts) for i in range(2)] + averaged[2:]
    expect([p.grad.numpy() for p in params], want, "stale")

    # A second optimizer over the same parameters takes their hooks over.
    second = dist.DistributedOptimizer(ndl.optim.SGD(params, lr=1.0), compression=compression)
    second.reset_grad()
    backward()
    expect([p.grad.numpy() for p in params], [g / n for g in local], "second optimizer")
    second.synchronize()
    expect([p.grad.numpy() for p in params], mean, "second optimizer, average")
    backward()  # no step() after that synchronize() and no reset_grad(): a new gradient
    calls = second._collective_calls
    second.step()
    assert second._collective_calls == calls + 1, "step() after backward() must average"
    report(f"bucket hooks {device.name}" + (f" {compression}" if compression else ""))


def main():
    dist.init()
    if os.environ.get("NEEDLE_BACKEND") == "np":  # the course's NumPy mode: plain arrays
        check_optimizer(ndl.cpu(), None)
        check_bucket_hooks(ndl.cpu())
        return
    device = ndl.cpu() if ndl.cpu().enabled() else ndl.cpu_numpy()
    check_all_reduce(device)
    check_broadcast(device)
    check_optimizer(device, None)
    check_optimizer(device, "fp16")
    check_bucket_hooks(device)
    check_bucket_hooks(device, "fp16")
    check_bucket_hooks(ndl.cpu_numpy())


if __name__ == "__main__":
    main()
