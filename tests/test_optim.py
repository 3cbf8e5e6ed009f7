"""needle.optim: update rules against NumPy re-implementations, schedules, clipping, state."""

import gc
import math

import numpy as np
import pytest

import needle as ndl
from needle import nn, optim


def _params(device, shapes=((3, 2), (1, 2)), dtype="float32"):
    return [
        nn.Parameter(ndl.Tensor(np.random.randn(*s), device=device, dtype=dtype)) for s in shapes
    ]


def _set_grads(params, grads, device):
    for p, g in zip(params, grads):
        p.grad = ndl.Tensor(g, device=device, dtype=p.dtype, requires_grad=False)


def _sgd_reference(ps, grads_per_step, lr, momentum, wd):
    ps = [p.astype(np.float64) for p in ps]
    u = [np.zeros_like(p) for p in ps]
    for grads in grads_per_step:
        for i, g in enumerate(grads):
            g = g + wd * ps[i]
            u[i] = momentum * u[i] + (1 - momentum) * g
            ps[i] = ps[i] - lr * u[i]
    return ps


def _adam_reference(ps, grads_per_step, lr, b1, b2, eps, wd):
    ps = [p.astype(np.float64) for p in ps]
    m = [np.zeros_like(p) for p in ps]
    v = [np.zeros_like(p) for p in ps]
    for t, grads in enumerate(grads_per_step, start=1):
        for i, g in enumerate(grads):
            g = g + wd * ps[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            ps[i] = ps[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return ps


def _run(opt_factory, device, steps=4):
    params = _params(device)
    start = [p.numpy().copy() for p in params]
    grads_per_step = [[np.random.randn(*p.shape) for p in params] for _ in range(steps)]
    opt = opt_factory(params)
    for grads in grads_per_step:
        _set_grads(params, grads, device)
        before = [p.grad for p in params]
        snapshot = [g.numpy().copy() for g in before]
        opt.step()
        for p, g, s in zip(params, before, snapshot):
            assert p.grad is g  # the gradient object is untouched ...
            np.testing.assert_array_equal(g.numpy(), s)  # ... and so are its values
            assert p.op is None and not p.inputs  # no graph grows on the parameter
    return params, start, [[g.astype(np.float32) for g in gs] for gs in grads_per_step]


@pytest.mark.parametrize("momentum, wd", [(0.0, 0.0), (0.9, 0.0), (0.5, 0.01)])
def test_sgd_matches_reference(device, momentum, wd):
    params, start, grads = _run(
        lambda ps: optim.SGD(ps, lr=0.1, momentum=momentum, weight_decay=wd), device
    )
    expected = _sgd_reference(start, grads, 0.1, momentum, wd)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.numpy(), e, rtol=1e-5, atol=1e-6)
        assert p.dtype == "float32"


@pytest.mark.parametrize("wd", [0.0, 0.01])
def test_adam_matches_reference(device, wd):
    params, start, grads = _run(
        lambda ps: optim.Adam(ps, lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=wd), device
    )
    expected = _adam_reference(start, grads, 0.01, 0.8, 0.99, 1e-6, wd)
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.numpy(), e, rtol=1e-5, atol=1e-6)


def test_params_without_grad_are_skipped_and_reset_grad(device):
    params = _params(device)
    before = params[1].numpy().copy()
    _set_grads(params[:1], [np.ones((3, 2))], device)
    opt = optim.Adam(params)
    opt.step()
    np.testing.assert_array_equal(params[1].numpy(), before)
    opt.reset_grad()
    assert all(p.grad is None for p in params)


def test_training_reduces_loss_without_growing_graph(device):
    np.random.seed(1)
    x_np = np.random.randn(32, 4)
    x = ndl.Tensor(x_np, device=device)
    y = ndl.Tensor((x_np @ np.random.randn(4, 3)).argmax(1), device=device)  # learnable labels
    model = nn.Sequential(nn.Linear(4, 8, device=device), nn.ReLU(), nn.Linear(8, 3, device=device))
    opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.5)
    losses = []
    for _ in range(20):
        opt.reset_grad()
        loss = nn.SoftmaxLoss()(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.numpy()))
    assert losses[-1] < 0.5 * losses[0]
    # Backward leaves node <-> node.grad reference cycles (the course's design): count after
    # a collection.  In a steady state the same number of tensors stays alive.
    del loss
    gc.collect()
    counter = ndl.autograd.TENSOR_COUNTER
    for _ in range(3):
        opt.reset_grad()
        nn.SoftmaxLoss()(model(x), y).backward()
        opt.step()
    gc.collect()
    assert ndl.autograd.TENSOR_COUNTER - counter < 10


@pytest.mark.parametrize(
    "factory",
    [
        lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
        lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01),
    ],
    ids=["sgd", "adam"],
)
def test_state_dict_resumes_exactly(device, factory, tmp_path):
    params = _params(device)
    grads = [[np.random.randn(*p.shape) for p in params] for _ in range(6)]
    opt = factory(params)
    for g in grads[:3]:
        _set_grads(params, g, device)
        opt.step()
    ndl.save({"params": [p.detach() for p in params], "opt": opt.state_dict()}, tmp_path / "ck.npz")
    for g in grads[3:]:
        _set_grads(params, g, device)
        opt.step()
    final = [p.numpy() for p in params]

    ck = ndl.load(tmp_path / "ck.npz")
    resumed = [nn.Parameter(t) for t in ck["params"]]
    opt2 = factory(resumed)
    opt2.load_state_dict(ck["opt"])
    for g in grads[3:]:
        _set_grads(resumed, g, device)
        opt2.step()
    for p, f in zip(resumed, final):
        np.testing.assert_array_equal(p.numpy(), f)
    with pytest.raises(KeyError, match="expected keys"):
        opt2.load_state_dict({"lr": 0.1})


def test_clip_grad_norm(device):
    params = _params(device)
    grads = [np.random.randn(*p.shape) * 3 for p in params]
    _set_grads(params, grads, device)
    old = params[0].grad
    norm = optim.clip_grad_norm(params, max_norm=1.0)
    expected = math.sqrt(sum((g.astype(np.float32) ** 2).sum() for g in grads))
    np.testing.assert_allclose(norm, expected, rtol=1e-5)
    clipped = math.sqrt(sum((p.grad.numpy().astype(np.float64) ** 2).sum() for p in params))
    np.testing.assert_allclose(clipped, 1.0, rtol=1e-4)
    np.testing.assert_allclose(old.numpy(), grads[0].astype(np.float32))  # not in place
    small = [g / (10 * expected) for g in grads]
    _set_grads(params, small, device)
    opt = optim.SGD(params)
    opt.clip_grad_norm(max_norm=1.0)  # the course's method stub
    np.testing.assert_allclose(params[1].grad.numpy(), small[1].astype(np.float32), rtol=1e-6)


def _lrs(scheduler, n):
    out = [scheduler.get_last_lr()]
    for _ in range(n):
        scheduler.step()
        out.append(scheduler.optimizer.lr)
    return out


def test_step_and_cosine_schedules():
    opt = optim.SGD(_params(ndl.cpu_numpy() if ndl.BACKEND == "nd" else ndl.cpu()), lr=1.0)
    np.testing.assert_allclose(
        _lrs(optim.StepLR(opt, step_size=2, gamma=0.5), 5), [1, 1, 0.5, 0.5, 0.25, 0.25]
    )
    opt.lr = 0.1
    cos = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.01)
    expected = [0.01 + 0.09 * (1 + math.cos(math.pi * min(t, 4) / 4)) / 2 for t in range(7)]
    np.testing.assert_allclose(_lrs(cos, 6), expected)
    with pytest.raises(ValueError, match="step_size"):
        optim.StepLR(opt, step_size=0)


def test_one_cycle_matches_torch_formula():
    opt = optim.SGD([], lr=0.0)
    sched = optim.OneCycleLR(opt, max_lr=0.4, total_steps=10, pct_start=0.3)
    lrs = _lrs(sched, 9)
    assert lrs[0] == pytest.approx(0.4 / 25)
    assert lrs[2] == pytest.approx(0.4)  # the peak at pct_start·total − 1 = 2
    assert lrs[9] == pytest.approx(0.4 / 25 / 1e4)
    assert all(a < b for a, b in zip(lrs[:2], lrs[1:3])) and all(
        a > b for a, b in zip(lrs[2:9], lrs[3:])
    )
    torch = pytest.importorskip("torch")
    w = torch.zeros(1, requires_grad=True)
    topt = torch.optim.SGD([w], lr=0.1)
    tsched = torch.optim.lr_scheduler.OneCycleLR(
        topt, max_lr=0.4, total_steps=10, pct_start=0.3, cycle_momentum=False
    )
    expected = [topt.param_groups[0]["lr"]]
    for _ in range(9):
        topt.step()
        tsched.step()
        expected.append(topt.param_groups[0]["lr"])
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    sched.step()
    with pytest.raises(ValueError, match="total_steps"):
        sched.step()


def test_adam_flat_and_per_parameter_steps_agree(device):
    # Steps where every parameter has a gradient run over flat buffers; a step where one
    # has none falls back to per-parameter updates.  Both follow the same rule.
    params = _params(device, shapes=((3, 2), (1, 2), (4,)))
    start = [p.numpy().copy() for p in params]
    grads = [[np.random.randn(*p.shape) for p in params] for _ in range(4)]
    grads[2][1] = None  # parameter 1 skips step 3
    opt = optim.Adam(params, lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.01)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = None if g is None else ndl.Tensor(g, device=device, dtype=p.dtype)
        opt.step()
    for i, p in enumerate(params):
        # parameter-wise reference with the optimizer's global step count t
        ref, m, v = np.asarray(start[i], np.float64), np.zeros(p.shape), np.zeros(p.shape)
        for t, s in enumerate(grads, start=1):
            if s[i] is None:
                continue
            g = s[i].astype(np.float32) + 0.01 * ref
            m = 0.8 * m + 0.2 * g
            v = 0.99 * v + 0.01 * g * g
            ref = ref - 0.01 * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.99**t)) + 1e-6)
        np.testing.assert_allclose(p.numpy(), ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(opt.state_dict()["m"][str(i)].numpy(), m, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(opt.state_dict()["v"][str(i)].numpy(), v, rtol=1e-5, atol=1e-6)


def test_adam_reads_gradients_that_lie_in_one_buffer(device):
    # needle.distributed hands Adam gradients that are consecutive views of one buffer with
    # more after them (its flags): the flat step reads them in place, to the same result.
    from needle.backend_selection import array_api

    shapes = ((3, 2), (1, 2), (4,))
    grads = [[np.random.randn(*s).astype("float32") for s in shapes] for _ in range(3)]
    results = []
    for in_one_buffer in (False, True):
        np.random.seed(5)
        params = _params(device, shapes=shapes)
        opt = optim.Adam(params, lr=0.01, weight_decay=0.01)
        for step in grads:
            if in_one_buffer:
                flat = np.concatenate([g.ravel() for g in step] + [np.full(3, 7.0, "float32")])
                buffer = ndl.Tensor(flat, device=device).realize_cached_data()
                offsets = np.cumsum([0] + [g.size for g in step])
                views = [buffer[o : o + g.size].reshape(g.shape) for o, g in zip(offsets, step)]
                if ndl.BACKEND == "nd":
                    assert array_api.flat_view(views) is not None  # the in-place path
                for p, v in zip(params, views):
                    p.grad = ndl.Tensor.make_const(v)
            else:
                _set_grads(params, step, device)
            opt.step()
        results.append([p.numpy() for p in params])
    for packed, in_place in zip(*results):
        np.testing.assert_array_equal(in_place, packed)


def test_adam_sees_parameters_replaced_from_outside(device):
    params = _params(device)
    opt = optim.Adam(params, lr=0.1)
    _set_grads(params, [np.ones(p.shape) for p in params], device)
    opt.step()
    params[0].data = ndl.Tensor(np.zeros((3, 2)), device=device, dtype="float32")
    opt.step()  # second Adam step with g = 1: the update is lr·1/(1 + eps) per element
    np.testing.assert_allclose(params[0].numpy(), np.full((3, 2), -0.1), rtol=1e-5)
