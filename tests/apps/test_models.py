"""apps.models: ResNet9 against an independent NumPy forward, and the conv-family models train."""

import os

import numpy as np
import pytest
from tests.conv_reference import out_size

import needle as ndl
import needle.nn as nn
from apps import datasets, models

DEVICE = ndl.cpu() if ndl.cpu().enabled() else ndl.cpu_numpy()


def n_params(model):
    return sum(int(np.prod(p.shape)) for p in model.parameters())


# --- an independent NumPy forward pass --------------------------------------------------------


def np_conv(x, w, b, stride, padding, dilation=1, groups=1):
    """NCHW conv with a (K, K, C_in/groups, C_out) weight: a plain loop over kernel taps."""
    n, c, h, wd = x.shape
    k, _, cg, cout = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = out_size(h, k, stride, padding, padding, dilation)
    wo = out_size(wd, k, stride, padding, padding, dilation)
    out = np.zeros((n, cout, ho, wo))
    og = cout // groups
    for g in range(groups):
        xs = x[:, g * cg : (g + 1) * cg]
        for i in range(k):
            for j in range(k):
                patch = xs[
                    :,
                    :,
                    i * dilation : i * dilation + stride * (ho - 1) + 1 : stride,
                    j * dilation : j * dilation + stride * (wo - 1) + 1 : stride,
                ]
                out[:, g * og : (g + 1) * og] += np.einsum(
                    "nchw,co->nohw", patch, w[i, j, :, g * og : (g + 1) * og]
                )
    return out + b.reshape(1, -1, 1, 1)


def np_convbn(x, block, stride):
    """ConvBN in training mode: conv, batch-statistics BatchNorm (biased variance), ReLU."""
    w = block.conv.weight.numpy().astype(np.float64)
    y = np_conv(x, w, block.conv.bias.numpy(), stride, w.shape[0] // 2)
    mean = y.mean(axis=(0, 2, 3), keepdims=True)
    var = y.var(axis=(0, 2, 3), keepdims=True)
    gamma = block.bn.weight.numpy().reshape(1, -1, 1, 1)
    beta = block.bn.bias.numpy().reshape(1, -1, 1, 1)
    return np.maximum((y - mean) / np.sqrt(var + 1e-5) * gamma + beta, 0)


def np_resnet9(model, x):
    m = model.model.modules
    x = np_convbn(x, m[0], 4)
    x = np_convbn(x, m[1], 2)
    r = m[2].fn.modules
    x = x + np_convbn(np_convbn(x, r[0], 1), r[1], 1)
    x = np_convbn(x, m[3], 2)
    x = np_convbn(x, m[4], 2)
    r = m[5].fn.modules
    x = x + np_convbn(np_convbn(x, r[0], 1), r[1], 1)
    x = x.reshape(x.shape[0], -1)
    x = np.maximum(x @ m[7].weight.numpy() + m[7].bias.numpy().reshape(1, -1), 0)
    return x @ m[9].weight.numpy() + m[9].bias.numpy().reshape(1, -1)


# --- ResNet9 ----------------------------------------------------------------------------------


def test_resnet9_parameter_count():
    assert n_params(models.ResNet9(device=DEVICE)) == 431_946


def test_resnet9_construction_order_draws_like_the_course():
    # Seed 0: the stem conv weight is the first rand(7,7,3,16) draw scaled to U(-b, b) with
    # b = sqrt(6 / fan_in), fan_in = 3*7*7; its bias is the next rand(16) draw, U(+-1/sqrt(147));
    # BatchNorm draws nothing, so the second conv's weight is the third draw.
    np.random.seed(0)
    model = models.ResNet9(device=DEVICE)
    np.random.seed(0)
    u_w1, u_b1, u_w2 = np.random.rand(7, 7, 3, 16), np.random.rand(16), np.random.rand(3, 3, 16, 32)
    params = model.parameters()
    bound = np.sqrt(6 / 147)
    np.testing.assert_allclose(params[0].numpy(), bound * (2 * u_w1 - 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        params[1].numpy(), (2 * u_b1 - 1) / np.sqrt(147), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        params[4].numpy(), np.sqrt(6 / 144) * (2 * u_w2 - 1), rtol=1e-5, atol=1e-6
    )


def test_resnet9_forward_matches_numpy_reference():
    np.random.seed(0)
    model = models.ResNet9(device=DEVICE)
    x = np.random.randn(4, 3, 32, 32)
    out = model(ndl.Tensor(x.astype(np.float32), device=DEVICE)).numpy()
    assert out.shape == (4, 10)
    np.testing.assert_allclose(out, np_resnet9(model, x), rtol=1e-3, atol=1e-3)


def test_resnet9_forward_matches_torch():
    torch = pytest.importorskip("torch")
    np.random.seed(1)
    model = models.ResNet9(device=DEVICE)
    tm = _torch_resnet9(torch, model)
    x = np.random.randn(2, 3, 32, 32).astype(np.float32)
    ours = model(ndl.Tensor(x, device=DEVICE)).numpy()
    theirs = tm(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3)


def _torch_resnet9(torch, model):
    tnn = torch.nn

    def convbn(block, stride):
        w = block.conv.weight.numpy()
        k, _, cin, cout = w.shape
        conv = tnn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)
        conv.weight.data = torch.tensor(w.transpose(3, 2, 0, 1).copy())
        conv.bias.data = torch.tensor(block.conv.bias.numpy())
        return tnn.Sequential(conv, tnn.BatchNorm2d(cout), tnn.ReLU())

    class Res(tnn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x) + x

    def linear(layer):
        w = layer.weight.numpy()
        lin = tnn.Linear(*w.shape)
        lin.weight.data = torch.tensor(w.T.copy())
        lin.bias.data = torch.tensor(layer.bias.numpy().reshape(-1))
        return lin

    m = model.model.modules
    r1, r2 = m[2].fn.modules, m[5].fn.modules
    net = tnn.Sequential(
        convbn(m[0], 4),
        convbn(m[1], 2),
        Res(tnn.Sequential(convbn(r1[0], 1), convbn(r1[1], 1))),
        convbn(m[3], 2),
        convbn(m[4], 2),
        Res(tnn.Sequential(convbn(r2[0], 1), convbn(r2[1], 1))),
        tnn.Flatten(),
        linear(m[7]),
        tnn.ReLU(),
        linear(m[9]),
    )
    return net.train()


# --- the conv family --------------------------------------------------------------------------

EXTRA = ["cnn", "mobilenet", "shufflenet", "resnext", "dilated"]


@pytest.fixture(scope="module")
def mnist_batch():
    data = datasets.load_embedded()
    return data.train.X[:16], data.train.y[:16]


@pytest.mark.parametrize("name", EXTRA)
def test_model_forward_shape_at_two_input_sizes(name):
    np.random.seed(0)
    for hw in (28, 32):
        model = models.build_model(name, in_channels=3, num_classes=7, image_size=hw, device=DEVICE)
        x = ndl.Tensor(np.random.rand(2, 3, hw, hw).astype(np.float32), device=DEVICE)
        assert model(x).shape == (2, 7)


@pytest.mark.parametrize("name", EXTRA)
def test_model_training_steps_lower_the_loss(name, mnist_batch):
    np.random.seed(0)
    model = models.build_model(name, device=DEVICE)
    opt = ndl.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.SoftmaxLoss()
    X = ndl.Tensor(mnist_batch[0], device=DEVICE, requires_grad=False)
    y = ndl.Tensor(mnist_batch[1].astype(np.float32), device=DEVICE, requires_grad=False)

    def loss_now():
        model.eval()
        with ndl.no_grad():
            return float(loss_fn(model(X), y).numpy())

    before = loss_now()
    model.train()
    for _ in range(5):
        opt.reset_grad()
        loss = loss_fn(model(X), y)
        loss.backward(create_graph=False)
        opt.step()
        model.train()
    assert all(p.grad is not None for p in model.parameters()), "a parameter got no gradient"
    # Eval-mode loss uses running statistics that lag; compare training-mode losses as well.
    assert loss_now() < before or float(loss.numpy()) < before


def test_model_features_are_what_their_names_say():
    np.random.seed(0)
    convs = {
        name: [
            m for m in models.build_model(name, device=DEVICE).modules() if isinstance(m, nn.Conv)
        ]
        for name in EXTRA
    }
    assert any(c.groups == c.in_channels > 1 for c in convs["mobilenet"])  # depthwise
    assert any(
        1 < c.groups < c.in_channels and c.kernel_size in (1, (1, 1)) for c in convs["shufflenet"]
    )  # pointwise group conv
    assert any(
        isinstance(m, nn.ChannelShuffle)
        for m in models.build_model("shufflenet", device=DEVICE).modules()
    )
    assert any(c.groups == 8 and c.kernel_size in (3, (3, 3)) for c in convs["resnext"])
    assert {
        c.dilation if isinstance(c.dilation, int) else c.dilation[0] for c in convs["dilated"]
    } >= {1, 2, 4}


def test_build_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        models.build_model("vgg")


# --- the course helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, expected",
    [
        ((15, 2, nn.BatchNorm1d), 111),
        ((784, 100, nn.LayerNorm1d), 159_452),
    ],
)
def test_mlp_resnet_block_parameter_counts(args, expected):
    from apps.mlp_resnet import ResidualBlock

    assert n_params(ResidualBlock(*args)) == expected


@pytest.mark.parametrize(
    "args, expected",
    [
        ((150, 100, 5, 10, nn.LayerNorm1d), 68_360),
        ((10, 100, 1, 100, nn.BatchNorm1d), 21_650),
    ],
)
def test_mlp_resnet_parameter_counts(args, expected):
    from apps.mlp_resnet import MLPResNet

    assert n_params(MLPResNet(*args)) == expected


def test_cifar10_helpers_train_and_evaluate_through_a_dataloader():
    from apps import simple_ml

    rng = np.random.RandomState(0)
    X = rng.rand(24, 3, 32, 32).astype(np.float32)
    y = rng.randint(0, 10, 24).astype(np.uint8)
    loader = ndl.data.DataLoader(ndl.data.NDArrayDataset(X, y), batch_size=8)
    np.random.seed(0)
    model = models.ResNet9(device=DEVICE)
    before = [p.numpy().copy() for p in model.parameters()]
    acc, loss = simple_ml.evaluate_cifar10(model, loader)
    assert all(np.array_equal(a, p.numpy()) for a, p in zip(before, model.parameters()))
    # evaluation = mean loss and accuracy of the eval-mode forward over all 24 samples
    model.eval()
    logits = model(ndl.Tensor(X, device=DEVICE)).numpy()
    ref_loss = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(24), y])
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-4)
    assert acc == np.mean(logits.argmax(1) == y)
    acc, loss = simple_ml.train_cifar10(model, loader, n_epochs=1)
    assert 0 <= acc <= 1 and np.isfinite(loss)
    assert not all(np.array_equal(a, p.numpy()) for a, p in zip(before, model.parameters()))


def test_parse_mnist_reads_the_embedded_subset():
    from apps import simple_ml

    X, y = simple_ml.parse_mnist(
        os.path.join(datasets.EMBEDDED_DIR, "t10k-images-idx3-ubyte.gz"),
        os.path.join(datasets.EMBEDDED_DIR, "t10k-labels-idx1-ubyte.gz"),
    )
    assert X.shape == (1000, 784) and X.dtype == np.float32 and y.dtype == np.uint8
    assert 0.0 == X.min() and X.max() == 1.0
    # the official test set starts with 7 2 1 0 4 1 4 9 5 9
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y, minlength=10).tolist() == [85, 126, 116, 107, 110, 87, 87, 99, 89, 94]


def test_embedded_files_match_their_documented_checksums():
    import hashlib
    import re

    with open(os.path.join(datasets.EMBEDDED_DIR, "README.md")) as f:
        documented = dict(re.findall(r"\| `([\w-]+\.gz)` \|[^|]*\| `([0-9a-f]{64})` \|", f.read()))
    assert len(documented) == 4
    for name, digest in documented.items():
        with open(os.path.join(datasets.EMBEDDED_DIR, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, name
