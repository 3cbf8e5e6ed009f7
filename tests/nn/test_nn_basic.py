"""needle.nn basic layers and Module machinery against NumPy references."""

import numpy as np
import pytest
from apps.mlp_resnet import MLPResNet, ResidualBlock
from tests.checks import check_grad, supports

import needle as ndl
from needle import nn


def _f64(device):
    if not supports(device, "float64"):
        pytest.skip(f"{device} has no float64")
    return "float64"


def check_grads(fn, arrays, device):
    """Every input gradient of ``fn`` against central differences (float64 where possible)."""
    check_grad(fn, *[np.asarray(a, dtype=np.float64) for a in arrays], device=device)


# --- Module machinery ----------------------------------------------------------------------


class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 3)
        self.layers = [nn.ReLU(), nn.Linear(3, 2, bias=False)]
        self.table = {"norm": nn.BatchNorm1d(2), "drop": (nn.Dropout(0.1),)}
        self.shared = self.a.weight

    def forward(self, x):
        x = self.layers[1](self.layers[0](self.a(x)))
        return self.table["drop"][0](self.table["norm"](x))


def test_parameters_order_names_and_dedup():
    model = _Custom()
    names = [n for n, _ in model.named_parameters()]
    assert names == [
        "a.weight",
        "a.bias",
        "layers.1.weight",
        "table.norm.weight",
        "table.norm.bias",
    ]
    params = model.parameters()
    assert params[0] is model.a.weight and len(params) == 5
    assert all(isinstance(p, nn.Parameter) for p in params)


def test_children_modules_and_train_eval_through_containers():
    model = _Custom()
    assert [n for n, _ in model.named_children()] == [
        "a",
        "layers.0",
        "layers.1",
        "table.norm",
        "table.drop.0",
    ]
    assert len(model.modules()) == 6 and model.modules()[0] is model
    model.eval()
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    assert model.train(False) is model and not model.table["drop"][0].training


def test_reference_cycles_do_not_loop():
    model = _Custom()
    model.a.parent = model  # a back reference: walked once, not forever
    assert len(model.parameters()) == 5 and len(model.modules()) == 6
    model.eval()
    assert not model.a.training


def test_sequential_modules_attribute_and_method():
    seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Sequential(nn.Tanh()))
    assert isinstance(seq.modules, tuple) and len(seq.modules) == 3
    assert seq.modules[1].__class__ is nn.ReLU
    assert len(seq.modules()) == 5  # itself, Linear, ReLU, inner Sequential, Tanh
    assert seq[0] is seq.modules[0] and len(seq) == 3


def test_repr_shows_structure():
    seq = nn.Sequential(nn.Linear(4, 3), nn.Residual(nn.BatchNorm1d(3)), nn.Dropout(0.2))
    text = repr(seq)
    assert text.startswith("Sequential(\n  (0): Linear(in_features=4, out_features=3, bias=True)")
    assert "(fn): BatchNorm1d(3, eps=1e-05, momentum=0.1)" in text
    assert "(2): Dropout(p=0.2)" in text


def test_state_dict_round_trip_with_buffers(device):
    np.random.seed(3)
    model = nn.Sequential(nn.Linear(4, 3, device=device), nn.BatchNorm1d(3, device=device))
    x = ndl.Tensor(np.random.randn(5, 4), device=device)
    model(x)  # moves the running statistics away from their initial values
    state = model.state_dict()
    assert list(state) == [
        "modules.0.weight",
        "modules.0.bias",
        "modules.1.weight",
        "modules.1.bias",
        "modules.1.running_mean",
        "modules.1.running_var",
    ]
    model.eval()
    expected = model(x).numpy()
    other = nn.Sequential(nn.Linear(4, 3, device=device), nn.BatchNorm1d(3, device=device)).eval()
    assert not np.allclose(other(x).numpy(), expected)
    weight = other.modules[0].weight
    missing, unexpected = other.load_state_dict(state)
    assert missing == [] and unexpected == []
    assert other.modules[0].weight is weight  # identity kept for optimizers
    np.testing.assert_array_equal(other(x).numpy(), expected)
    np.testing.assert_array_equal(
        other.modules[1].running_var.numpy(), model.modules[1].running_var.numpy()
    )


def test_load_state_dict_errors():
    model = nn.Linear(3, 2)
    state = model.state_dict()
    with pytest.raises(KeyError, match="missing keys \\['bias'\\]"):
        model.load_state_dict({"weight": state["weight"]})
    with pytest.raises(KeyError, match="unexpected keys \\['extra'\\]"):
        model.load_state_dict({**state, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match="'weight' has shape \\(2, 3\\).*expects \\(3, 2\\)"):
        model.load_state_dict({"weight": np.zeros((2, 3)), "bias": state["bias"]})
    missing, unexpected = model.load_state_dict({"weight": np.ones((3, 2))}, strict=False)
    assert missing == ["bias"] and unexpected == []
    np.testing.assert_array_equal(model.weight.numpy(), np.ones((3, 2), np.float32))
    assert model.weight.dtype == "float32"


# --- Linear --------------------------------------------------------------------------------


def test_linear_init_course_draws():
    np.random.seed(1337)
    layer = nn.Linear(7, 4)
    np.random.seed(1337)
    w_bound, b_bound = np.sqrt(6 / 7), np.sqrt(6 / 4)
    w = np.random.rand(7, 4).astype(np.float32) * (2 * w_bound) - w_bound
    b = np.random.rand(4, 1).astype(np.float32) * (2 * b_bound) - b_bound
    assert layer.weight.shape == (7, 4) and layer.bias.shape == (1, 4)
    np.testing.assert_allclose(layer.weight.numpy(), w, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layer.bias.numpy(), b.reshape(1, 4), rtol=1e-6, atol=1e-6)
    assert layer.weight.requires_grad and layer.bias.requires_grad


def test_linear_forward_nd_and_bias_variants(device):
    layer = nn.Linear(5, 3, device=device)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    x = np.random.randn(4, 5).astype(np.float32)
    np.testing.assert_allclose(
        layer(ndl.Tensor(x, device=device)).numpy(), x @ w + b, rtol=1e-5, atol=1e-5
    )
    x3 = np.random.randn(2, 4, 5).astype(np.float32)
    out = layer(ndl.Tensor(x3, device=device))
    assert out.shape == (2, 4, 3)
    np.testing.assert_allclose(out.numpy(), x3 @ w + b, rtol=1e-5, atol=1e-5)
    layer.bias.data = ndl.Tensor(b.reshape(3), device=device)
    np.testing.assert_allclose(
        layer(ndl.Tensor(x, device=device)).numpy(), x @ w + b, rtol=1e-5, atol=1e-5
    )
    plain = nn.Linear(5, 3, bias=False, device=device)
    assert plain.bias is None and len(plain.parameters()) == 1
    np.testing.assert_allclose(
        plain(ndl.Tensor(x, device=device)).numpy(), x @ plain.weight.numpy(), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="in_features"):
        layer(ndl.Tensor(np.zeros((4, 6)), device=device))


def test_linear_gradients(device):
    dtype = _f64(device)
    layer = nn.Linear(3, 2, device=device, dtype=dtype)
    w, b = np.random.randn(3, 2), np.random.randn(1, 2)

    def fn(x, weight, bias):
        layer.weight, layer.bias = weight, bias
        return layer(x)

    check_grads(fn, [np.random.randn(4, 3), w, b], device)
    check_grads(fn, [np.random.randn(2, 2, 3), w, b], device)


# --- activations, Flatten, Residual, Sequential --------------------------------------------


@pytest.mark.parametrize(
    "module, reference",
    [
        (nn.ReLU(), lambda x: np.maximum(x, 0)),
        (nn.Tanh(), np.tanh),
        (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
        (nn.Identity(), lambda x: x),
        (nn.Residual(nn.Tanh()), lambda x: np.tanh(x) + x),
        (nn.Sequential(nn.Tanh(), nn.ReLU()), lambda x: np.maximum(np.tanh(x), 0)),
    ],
    ids=["relu", "tanh", "sigmoid", "identity", "residual", "sequential"],
)
def test_elementwise_modules(device, module, reference):
    x = np.random.randn(3, 4)
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU's kink away from the finite differences
    out = module(ndl.Tensor(x, device=device))
    np.testing.assert_allclose(out.numpy(), reference(x.astype(np.float32)), rtol=1e-5, atol=1e-6)
    check_grads(module, [x], device)


def test_flatten(device):
    x = np.random.randn(2, 3, 4, 5)
    out = nn.Flatten()(ndl.Tensor(x, device=device))
    assert out.shape == (2, 60)
    np.testing.assert_allclose(out.numpy(), x.reshape(2, 60).astype(np.float32))
    check_grads(nn.Flatten(), [np.random.randn(2, 3, 2)], device)


# --- SoftmaxLoss ---------------------------------------------------------------------------


def test_softmax_loss_value_and_gradient(device):
    logits = np.random.randn(5, 4)
    y = np.array([0, 3, 1, 1, 2])
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    expected = -log_probs[np.arange(5), y].mean()
    loss = nn.SoftmaxLoss()(ndl.Tensor(logits, device=device), ndl.Tensor(y, device=device))
    assert loss.shape in ((), (1,))
    np.testing.assert_allclose(loss.numpy().reshape(()), expected, rtol=1e-5)
    check_grads(lambda z: nn.SoftmaxLoss()(z, y), [logits], device)
    with pytest.raises(ValueError, match="SoftmaxLoss"):
        nn.SoftmaxLoss()(ndl.Tensor(logits, device=device), ndl.Tensor(y[:3], device=device))


# --- normalisation -------------------------------------------------------------------------


def _bn_reference(x, w, b, axes, eps=1e-5):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    shape = [1] * x.ndim
    shape[1] = -1
    return w.reshape(shape) * (x - mean) / np.sqrt(var + eps) + b.reshape(shape)


@pytest.mark.parametrize(
    "cls, shape, axes",
    [
        (nn.BatchNorm1d, (6, 3), (0,)),
        (nn.BatchNorm2d, (2, 3, 4, 5), (0, 2, 3)),
    ],
    ids=["1d", "2d"],
)
def test_batchnorm_train_eval_and_running_stats(device, cls, shape, axes):
    bn = cls(3, momentum=0.2, device=device)
    w, b = np.random.randn(3).astype(np.float32), np.random.randn(3).astype(np.float32)
    bn.weight.data = ndl.Tensor(w, device=device)
    bn.bias.data = ndl.Tensor(b, device=device)
    xs = [np.random.randn(*shape).astype(np.float32) * 2 + 1 for _ in range(2)]
    running_mean, running_var = np.zeros(3), np.ones(3)
    for x in xs:
        out = bn(ndl.Tensor(x, device=device))
        np.testing.assert_allclose(out.numpy(), _bn_reference(x, w, b, axes), rtol=1e-4, atol=1e-4)
        running_mean = 0.8 * running_mean + 0.2 * x.mean(axis=axes)
        running_var = 0.8 * running_var + 0.2 * x.var(axis=axes)  # biased, as the course
    np.testing.assert_allclose(bn.running_mean.numpy(), running_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), running_var, rtol=1e-5, atol=1e-6)
    assert bn.running_mean.op is None and not bn.running_mean.requires_grad  # no graph kept
    bn.eval()
    x = np.random.randn(*shape).astype(np.float32)
    stat = [1] * len(shape)
    stat[1] = -1
    expected = w.reshape(stat) * (x - running_mean.reshape(stat)) / np.sqrt(
        running_var.reshape(stat) + 1e-5
    ) + b.reshape(stat)
    np.testing.assert_allclose(
        bn(ndl.Tensor(x, device=device)).numpy(), expected, rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(bn.running_var.numpy(), running_var, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        bn(ndl.Tensor(np.zeros((2, 4) + shape[2:]), device=device))


@pytest.mark.parametrize(
    "cls, shape", [(nn.BatchNorm1d, (5, 3)), (nn.BatchNorm2d, (2, 3, 2, 3))], ids=["1d", "2d"]
)
def test_batchnorm_gradients(device, cls, shape):
    dtype = _f64(device)
    bn = cls(3, device=device, dtype=dtype)

    def fn(x, w, b):
        bn.weight, bn.bias = w, b
        return bn(x)

    check_grads(fn, [np.random.randn(*shape), np.random.randn(3), np.random.randn(3)], device)
    bn.eval()
    check_grads(fn, [np.random.randn(*shape), np.random.randn(3), np.random.randn(3)], device)


def test_layernorm(device):
    ln = nn.LayerNorm1d(4, device=device)
    x = np.random.randn(3, 4).astype(np.float32) * 3
    expected = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(
        ln(ndl.Tensor(x, device=device)).numpy(), expected, rtol=1e-4, atol=1e-4
    )
    dtype = _f64(device)
    ln64 = nn.LayerNorm1d(4, device=device, dtype=dtype)

    def fn(x, w, b):
        ln64.weight, ln64.bias = w, b
        return ln64(x)

    check_grads(fn, [np.random.randn(3, 4), np.random.randn(4), np.random.randn(4)], device)
    with pytest.raises(ValueError, match="LayerNorm1d"):
        ln(ndl.Tensor(np.zeros((3, 5)), device=device))


# --- Dropout -------------------------------------------------------------------------------


def test_dropout_course_draw_and_scale(device):
    x = np.random.randn(4, 5).astype(np.float32)
    drop = nn.Dropout(0.3)
    np.random.seed(7)
    out = drop(ndl.Tensor(x, device=device)).numpy()
    np.random.seed(7)
    mask = np.random.rand(4, 5).astype(np.float32) <= 0.7
    np.testing.assert_allclose(out, x * mask / 0.7, rtol=1e-6, atol=1e-6)
    drop.eval()
    np.testing.assert_array_equal(drop(ndl.Tensor(x, device=device)).numpy(), x)


def test_dropout_statistics_and_edges(device):
    x = ndl.Tensor(np.ones((200, 100)), device=device)
    out = nn.Dropout(0.25)(x).numpy()
    kept = out != 0
    assert abs(kept.mean() - 0.75) < 0.02  # 20000 draws: std of the mean ~0.003
    np.testing.assert_allclose(out[kept], 1 / 0.75, rtol=1e-6)
    assert abs(out.mean() - 1.0) < 0.03
    np.testing.assert_array_equal(nn.Dropout(1.0)(x).numpy(), 0)
    np.testing.assert_array_equal(nn.Dropout(0.0)(x).numpy(), 1)
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.5)


# --- course parameter counts (the hw2 models of apps/mlp_resnet.py) ------------------------


def _count(module):
    return sum(int(np.prod(p.shape)) for p in module.parameters())


def test_course_parameter_counts(device):
    assert _count(ResidualBlock(15, 2)) == 111
    assert _count(ResidualBlock(784, 100, nn.LayerNorm1d)) == 159452
    assert _count(MLPResNet(150, 100, 5, 10, nn.LayerNorm1d)) == 68360
    model = MLPResNet(10, 100, 1, 100)
    assert _count(model) == 21650
    out = model(ndl.Tensor(np.random.randn(4, 10), device=model.parameters()[0].device))
    assert out.shape == (4, 100)
