"""The course's homework code as its users run it: their import lines, then a short session.

Each test starts a fresh interpreter at the repository root, runs the import lines of one of
the course's homework test files (``sys.path.append("./python")``, ``sys.path.append("./apps")``,
``from simple_ml import *``, ...) with the backend that homework was written for (hw1/hw2 on
``NEEDLE_BACKEND=np``, hw3/hw4 on the NDArray backend), then a session written from the course's
API and checked against NumPy. A fresh interpreter matters: this process already has ``python/``
and the repository root on ``sys.path`` (conftest.py) and has chosen its backend, which would
hide exactly the import problems these tests are about.
"""

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
APP_MODULES = sorted(p.stem for p in (ROOT / "apps").glob("*.py") if p.stem != "__init__")


def run_course(*parts, backend="nd", pythonpath=None, script_dir=None):
    """Run the code ``parts`` (each dedented) in a fresh interpreter at the repository root.

    By default the code runs as ``python -c``, so the cwd is importable as under the
    course's ``python -m pytest``; with ``script_dir`` it runs as a script saved there, so only
    the code's own ``sys.path`` lines (and ``pythonpath``) make anything importable.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NEEDLE_BACKEND")}
    env["NEEDLE_BACKEND"] = backend
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    code = "\n".join(textwrap.dedent(part) for part in parts)
    if script_dir is None:
        cmd = [sys.executable, "-c", code]
    else:
        script = Path(script_dir) / "course_session.py"
        script.write_text(code)
        cmd = [sys.executable, str(script)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"session failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


# --- the course's import lines ------------------------------------------------------------
HW1 = """
import sys
sys.path.append("./python")
sys.path.append("./apps")
import numpy as np
import needle as ndl
from simple_ml import *
"""

HW2 = """
import sys
sys.path.append("./python")
sys.path.append("./apps")
import numpy as np
import needle as ndl
import needle.nn as nn
from mlp_resnet import *
"""

HW3 = """
import numpy as np
import needle as ndl
from needle import backend_ndarray as nd
"""

HW4 = """
import sys
sys.path.append("./python")
sys.path.append("./apps")
import numpy as np
import needle as ndl
import needle.nn as nn
from needle import backend_ndarray as nd
"""

# The course's gradient check: central differences by nudging the tensor's live storage in
# place (``realize_cached_data().flat[j] += eps``), against the op's ``gradient_as_tuple`` or,
# for a composite ``f`` (``backward=True``), against ``.grad`` after ``backward()``.
GRADCHECK = """
def check_gradients(f, *args, eps=1e-4, tol=1e-6, backward=False, **kwargs):
    out = f(*args, **kwargs)
    cotangent = np.random.randn(*out.shape)
    c = ndl.Tensor(cotangent, device=out.device, dtype=out.dtype)
    if backward:
        (out * c).sum().backward()
        grads = [x.grad for x in args]
    else:
        grads = out.op.gradient_as_tuple(c, out)
    assert len(grads) == len(args), (f.__name__, len(grads))
    for i, (x, grad) in enumerate(zip(args, grads)):
        data = x.realize_cached_data()
        numeric = np.zeros(x.shape)
        for j in range(int(np.prod(x.shape))):
            data.flat[j] += eps
            up = (f(*args, **kwargs).numpy() * cotangent).sum()
            data.flat[j] -= 2 * eps
            down = (f(*args, **kwargs).numpy() * cotangent).sum()
            data.flat[j] += eps
            numeric.flat[j] = (up - down) / (2 * eps)
        err = np.abs(grad.numpy() - numeric).max()
        assert err < tol, f"{f.__name__} {kwargs}: gradient of input {i} off by {err}"
"""

# Softmax cross-entropy of logits against integer labels, and the error rate, in NumPy.
SOFTMAX_REF = """
def softmax_ref(Z, y):
    Z = np.asarray(Z, dtype=np.float64)
    S = np.exp(Z - Z.max(axis=1, keepdims=True))
    S /= S.sum(axis=1, keepdims=True)
    loss = -np.log(S[np.arange(len(y)), y]).mean()
    return S, loss, np.mean(Z.argmax(axis=1) != y)
"""


# --- importing apps/ both ways ------------------------------------------------------------
IMPORTS_BOTH_WAYS = """
import importlib
from simple_ml import *
from models import *
from models import ResNet9
from mlp_resnet import *
import apps.models
import apps.simple_ml

assert ResNet9 is apps.models.ResNet9
assert parse_mnist is apps.simple_ml.parse_mnist and callable(epoch_general_cifar10)
assert callable(MLPResNet) and callable(ResidualBlock) and callable(epoch)
for name in {names!r}:
    top, package = importlib.import_module(name), importlib.import_module("apps." + name)
    assert top is package, f"{{name}} and apps.{{name}} are two modules"
print("ok")
"""


@pytest.mark.parametrize("cwd_importable", [True, False], ids=["python-m-pytest", "script"])
def test_apps_import_top_level_and_as_package(cwd_importable, tmp_path):
    script_dir = None if cwd_importable else tmp_path
    out = run_course(HW1, IMPORTS_BOTH_WAYS.format(names=APP_MODULES), script_dir=script_dir)
    assert out.strip().endswith("ok")


def test_apps_package_import_first_then_top_level():
    # hw4's conv test imports apps.models, the sequence test then `from models import ...`
    run_course(
        HW4,
        """
        from apps.models import ResNet9
        from apps.simple_ml import train_cifar10
        from models import ResNet9 as TopLevelResNet9
        from simple_ml import train_cifar10 as top_level_train
        assert TopLevelResNet9 is ResNet9 and top_level_train is train_cifar10
        """,
    )


@pytest.mark.parametrize("module", ["apps.train", "apps.summary"])
def test_apps_command_line_help(module):
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"python -m {module}" in proc.stdout


# --- hw1: autograd on the NumPy backend ---------------------------------------------------
def test_hw1_ops_forward_keep_float64_and_match_numpy():
    run_course(
        HW1,
        """
        np.random.seed(0)
        x, y = np.random.randn(3, 4), np.random.randn(3, 4)
        pos, z, w3 = np.random.rand(3, 4) + 0.5, np.random.randn(4, 2), np.random.randn(2, 3, 4)
        a, b, p = ndl.Tensor(x), ndl.Tensor(y), ndl.Tensor(pos)
        assert isinstance(a.realize_cached_data(), np.ndarray) and a.dtype == "float64"
        s = np.random.randn(1)
        cases = {
            "add": (a + b, x + y),
            "sub": (a - b, x - y),
            "mul": (a * b, x * y),
            "div": (a / b, x / y),
            "divide_scalar": (ndl.divide_scalar(a, scalar=s), x / float(s[0])),
            "rsub_scalar": (a - 3, x - 3),
            "power_scalar": (a**3, x**3),
            "power": (ndl.power(p, a), pos**x),
            "matmul": (a @ ndl.Tensor(z), x @ z),
            "summation_axis": (ndl.summation(a, axes=(1,)), x.sum(axis=1)),
            "summation_all": (ndl.summation(a), x.sum()),
            "broadcast_to": (ndl.broadcast_to(ndl.Tensor(x[:, :1]), (3, 4)), x[:, :1] + 0 * x),
            "reshape": (ndl.reshape(a, (2, 6)), x.reshape(2, 6)),
            "transpose_last_two": (ndl.transpose(a), x.T),
            "transpose_swaps_two": (ndl.transpose(ndl.Tensor(w3), axes=(0, 2)), w3.swapaxes(0, 2)),
            "negate": (-a, -x),
            "log": (ndl.log(p), np.log(pos)),
            "exp": (ndl.exp(a), np.exp(x)),
            "relu": (ndl.relu(a), np.maximum(x, 0)),
        }
        for name, (got, want) in cases.items():
            assert got.dtype == "float64", (name, got.dtype)
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, err_msg=name)
        """,
        backend="np",
    )


def test_hw1_op_gradients_match_central_differences():
    run_course(
        HW1,
        GRADCHECK,
        """
        np.random.seed(1)
        def T(*shape):
            return ndl.Tensor(np.random.randn(*shape))
        def away_from_zero(*shape):
            v = np.random.randn(*shape)
            return ndl.Tensor(np.where(np.abs(v) < 0.1, 0.5, v))
        def positive(*shape):
            return ndl.Tensor(np.random.rand(*shape) + 0.5)

        check_gradients(ndl.add, T(3, 4), T(3, 4))
        check_gradients(ndl.multiply, T(3, 4), T(3, 4))
        check_gradients(ndl.divide, T(3, 4), positive(3, 4))
        check_gradients(ndl.divide_scalar, T(3, 4), scalar=np.random.randn(1))
        check_gradients(ndl.mul_scalar, T(3, 4), scalar=-1.5)
        check_gradients(ndl.power_scalar, T(3, 4), scalar=3)
        check_gradients(ndl.power, positive(3, 4), T(3, 4))
        check_gradients(ndl.matmul, T(3, 4), T(4, 2))
        check_gradients(ndl.matmul, T(2, 3, 4), T(4, 5))
        check_gradients(ndl.summation, T(3, 4, 2), axes=(1,))
        check_gradients(ndl.summation, T(3, 4))
        check_gradients(ndl.broadcast_to, T(3, 1), shape=(2, 3, 4))
        check_gradients(ndl.reshape, T(3, 4), shape=(2, 6))
        check_gradients(ndl.transpose, T(2, 3, 4), axes=(0, 2))
        check_gradients(ndl.transpose, T(3, 4))
        check_gradients(ndl.negate, T(3, 4))
        check_gradients(ndl.log, positive(3, 4))
        check_gradients(ndl.exp, T(3, 4))
        check_gradients(ndl.relu, away_from_zero(3, 4))
        """,
        backend="np",
    )


def test_hw1_find_topo_sort_order():
    run_course(
        HW1,
        """
        np.random.seed(0)
        a, b = ndl.Tensor(np.random.randn(2, 2)), ndl.Tensor(np.random.randn(2, 2))
        c = 3 * a * a + 4 * b * a - a
        order = ndl.autograd.find_topo_sort([c])
        kinds = [type(n.op).__name__ if n.op is not None else "leaf" for n in order]
        assert kinds == [
            "leaf", "MulScalar", "EWiseMul", "leaf", "MulScalar", "EWiseMul", "EWiseAdd",
            "Negate", "EWiseAdd",
        ], kinds
        assert order[0] is a and order[3] is b and order[-1] is c
        A, B = a.numpy(), b.numpy()
        values = [A, 3 * A, 3 * A * A, B, 4 * B, 4 * B * A, 3 * A * A + 4 * B * A, -A, c.numpy()]
        for node, want in zip(order, values):
            np.testing.assert_allclose(node.numpy(), want, rtol=1e-12)
        np.testing.assert_allclose(c.numpy(), 3 * A * A + 4 * B * A - A, rtol=1e-12)
        """,
        backend="np",
    )


def test_hw1_gradient_of_gradient():
    run_course(
        HW1,
        """
        x2, x3 = ndl.Tensor([6.0]), ndl.Tensor([0.0])
        y = x2 * x2 + x2 * x3
        y.backward()
        assert isinstance(x2.grad, ndl.Tensor)
        np.testing.assert_allclose(x2.grad.numpy(), [12.0])  # 2 x2 + x3
        np.testing.assert_allclose(x3.grad.numpy(), [6.0])  # x2
        g = x2.grad
        g.backward()
        np.testing.assert_allclose(x2.grad.numpy(), [2.0])
        np.testing.assert_allclose(x3.grad.numpy(), [1.0])
        """,
        backend="np",
    )


def test_hw1_simple_ml_on_the_embedded_mnist_subset():
    run_course(
        HW1,
        SOFTMAX_REF,
        """
        import gzip
        images = "apps/data/train-images-idx3-ubyte.gz"
        labels = "apps/data/train-labels-idx1-ubyte.gz"
        X, y = parse_mnist(images, labels)
        assert X.shape == (5000, 784) and X.dtype == np.float32, (X.shape, X.dtype)
        assert y.shape == (5000,) and y.dtype == np.uint8, (y.shape, y.dtype)
        with gzip.open(images) as f:
            raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(5000, 784)
        with gzip.open(labels) as f:
            np.testing.assert_array_equal(y, np.frombuffer(f.read(), np.uint8, offset=8))
        np.testing.assert_allclose(X, raw / 255.0, rtol=1e-6)
        assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]

        np.random.seed(0)
        Z, labels_ = np.random.randn(50, 10), np.random.randint(0, 10, 50)
        loss = softmax_loss(ndl.Tensor(Z), ndl.Tensor(np.eye(10)[labels_]))
        np.testing.assert_allclose(loss.numpy(), softmax_ref(Z, labels_)[1], rtol=1e-10)

        def numpy_nn_epoch(X, y, W1, W2, lr, batch):
            for i in range(0, len(X), batch):
                Xb, yb = X[i : i + batch], y[i : i + batch]
                H = np.maximum(Xb @ W1, 0)
                S = softmax_ref(H @ W2, yb)[0]
                S[np.arange(len(yb)), yb] -= 1
                G2 = S / len(yb)
                G1 = (G2 @ W2.T) * (H > 0)
                W1, W2 = W1 - lr * Xb.T @ G1, W2 - lr * H.T @ G2
            return W1, W2

        X, y = X[:500], y[:500]
        w1 = np.random.randn(784, 32).astype(np.float32) / np.sqrt(32)
        w2 = np.random.randn(32, 10).astype(np.float32) / np.sqrt(10)
        W1, W2 = nn_epoch(X, y, ndl.Tensor(w1), ndl.Tensor(w2), lr=0.2, batch=100)
        assert isinstance(W1, ndl.Tensor) and isinstance(W2, ndl.Tensor)
        r1, r2 = numpy_nn_epoch(X, y, w1.astype(np.float64), w2.astype(np.float64), 0.2, 100)
        np.testing.assert_allclose(W1.numpy(), r1, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(W2.numpy(), r2, rtol=1e-4, atol=1e-5)

        loss, err = loss_err(ndl.relu(ndl.Tensor(X) @ W1) @ W2, y)
        _, ref_loss, ref_err = softmax_ref(np.maximum(X @ r1, 0) @ r2, y)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-4)
        np.testing.assert_allclose(err, ref_err)
        """,
        backend="np",
    )


# --- hw2: nn, optim, data ------------------------------------------------------------------
def test_hw2_linear_sequential_softmax_loss_forward_backward():
    run_course(
        HW2,
        SOFTMAX_REF,
        """
        # Linear draws weight then bias, with the course's bounds and shapes
        np.random.seed(1337)
        lin = nn.Linear(5, 8)
        np.random.seed(1337)
        bw, bb = np.sqrt(6 / 5), np.sqrt(6 / 8)
        w = np.random.rand(5, 8) * 2 * bw - bw
        b = (np.random.rand(8, 1) * 2 * bb - bb).reshape(1, 8)
        np.testing.assert_allclose(lin.weight.numpy(), w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(lin.bias.numpy(), b, rtol=1e-5, atol=1e-6)

        np.random.seed(0)
        x, labels = np.random.randn(6, 5).astype(np.float32), np.array([0, 1, 2, 0, 1, 2])
        model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
        params = model.parameters()
        assert len(params) == 4 and params[0] is model.modules[0].weight
        W1, b1, W2, b2 = (p.numpy().astype(np.float64) for p in params)
        logits = model(ndl.Tensor(x))
        H = np.maximum(x @ W1 + b1, 0)
        Z = H @ W2 + b2
        np.testing.assert_allclose(logits.numpy(), Z, rtol=1e-5, atol=1e-6)
        loss = nn.SoftmaxLoss()(logits, ndl.Tensor(labels))
        S, ref_loss, _ = softmax_ref(Z, labels)
        np.testing.assert_allclose(loss.numpy(), ref_loss, rtol=1e-5)

        loss.backward()
        G = S.copy()
        G[np.arange(6), labels] -= 1
        G /= 6
        GH = (G @ W2.T) * (H > 0)
        wants = [x.T @ GH, GH.sum(0, keepdims=True), H.T @ G, G.sum(0, keepdims=True)]
        for p, want in zip(params, wants):
            np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-4, atol=1e-6)

        model.eval()
        assert not any(m.training for m in model.modules)
        """,
        backend="np",
    )


def test_hw2_batchnorm_and_dropout():
    run_course(
        HW2,
        GRADCHECK,
        """
        np.random.seed(0)
        x = (np.random.randn(8, 5) * 3 + 1).astype(np.float32)
        bn = nn.BatchNorm1d(5)
        assert len(bn.parameters()) == 2
        out = bn(ndl.Tensor(x))
        mu, var = x.mean(0), x.var(0)  # biased variance, as the course's golden values
        want = (x - mu) / np.sqrt(var + 1e-5)
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mu, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var, rtol=1e-5)
        bn.eval()
        want = (x - 0.1 * mu) / np.sqrt(0.9 + 0.1 * var + 1e-5)
        np.testing.assert_allclose(bn(ndl.Tensor(x)).numpy(), want, rtol=1e-4, atol=1e-5)

        bn64 = nn.BatchNorm1d(4, dtype="float64")
        bn64.weight.data = ndl.Tensor(np.random.randn(4))
        bn64.bias.data = ndl.Tensor(np.random.randn(4))
        def batchnorm1d(t):
            return bn64(t)
        check_gradients(batchnorm1d, ndl.Tensor(np.random.randn(6, 4)), backward=True)

        drop = nn.Dropout(0.3)
        xd = np.random.randn(4, 6).astype(np.float32)
        np.random.seed(7)
        out = drop(ndl.Tensor(xd)).numpy()
        np.random.seed(7)
        keep = np.random.rand(4, 6) <= 0.7
        assert 0 < keep.sum() < keep.size
        np.testing.assert_allclose(out, xd * keep / 0.7, rtol=1e-6)
        drop.eval()
        np.testing.assert_array_equal(drop(ndl.Tensor(xd)).numpy(), xd)
        """,
        backend="np",
    )


def test_hw2_sgd_momentum_and_adam_updates():
    run_course(
        HW2,
        """
        def sgd_ref(state, w, g, t, lr=0.1, momentum=0.9):
            state["u"] = momentum * state.get("u", 0) + (1 - momentum) * g
            return w - lr * state["u"]

        def adam_ref(state, w, g, t, lr=0.01, b1=0.9, b2=0.999, eps=1e-8):
            state["m"] = b1 * state.get("m", 0) + (1 - b1) * g
            state["v"] = b2 * state.get("v", 0) + (1 - b2) * g * g
            m_hat, v_hat = state["m"] / (1 - b1**t), state["v"] / (1 - b2**t)
            return w - lr * m_hat / (np.sqrt(v_hat) + eps)

        np.random.seed(3)
        X = ndl.Tensor(np.random.randn(16, 4).astype(np.float32))
        y = ndl.Tensor(np.random.randint(0, 3, 16))
        wd = 0.01
        optimizers = [
            (lambda ps: ndl.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=wd), sgd_ref),
            (lambda ps: ndl.optim.Adam(ps, lr=0.01, weight_decay=wd), adam_ref),
        ]
        for make_opt, ref in optimizers:
            np.random.seed(0)
            model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
            params = model.parameters()
            opt = make_opt(params)
            states = [{} for _ in params]
            for t in range(1, 4):
                opt.reset_grad()
                nn.SoftmaxLoss()(model(X), y).backward()
                before = [p.numpy().astype(np.float64) for p in params]
                grads = [p.grad.numpy().copy() for p in params]
                opt.step()
                for p, w, g, state in zip(params, before, grads, states):
                    want = ref(state, w, g + wd * w, t)  # L2 decay added to the gradient
                    np.testing.assert_allclose(p.numpy(), want, rtol=1e-5, atol=1e-6)
                    np.testing.assert_array_equal(p.grad.numpy(), g)  # grad left untouched
        """,
        backend="np",
    )


def test_hw2_training_loop_does_not_grow_the_graph():
    run_course(
        HW2,
        """
        import gc
        np.random.seed(0)
        X = ndl.Tensor(np.random.randn(32, 10).astype(np.float32))
        y = ndl.Tensor(np.random.randint(0, 4, 32))
        for make_opt in (
            lambda ps: ndl.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.001),
            lambda ps: ndl.optim.Adam(ps, lr=0.01, weight_decay=0.001),
        ):
            model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4))
            opt = make_opt(model.parameters())
            counts = []
            for _ in range(15):
                opt.reset_grad()
                loss = nn.SoftmaxLoss()(model(X), y)
                loss.backward()
                opt.step()
                gc.collect()
                counts.append(ndl.autograd.TENSOR_COUNTER)
            assert counts[-1] <= counts[4] + 5, counts  # a growing graph adds dozens a step
        """,
        backend="np",
    )


def test_hw2_data_loader_datasets_and_transforms():
    run_course(
        HW2,
        """
        import gzip
        # shuffling draws a fresh np.random.permutation at each iter(), none at construction
        np.random.seed(0)
        loader = ndl.data.DataLoader(ndl.data.NDArrayDataset(np.arange(100)), 1, shuffle=True)
        orders = [[int(batch[0].numpy().item()) for batch in loader] for _ in range(2)]
        np.random.seed(0)
        first, second = np.random.permutation(100), np.random.permutation(100)
        assert orders == [first.tolist(), second.tolist()]

        x, labels = np.random.randn(10, 3).astype(np.float32), np.arange(10)
        batches = list(ndl.data.DataLoader(ndl.data.NDArrayDataset(x, labels), batch_size=4))
        assert [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
        assert all(isinstance(t, ndl.Tensor) for b in batches for t in b)
        np.testing.assert_array_equal(batches[2][0].numpy(), x[8:])
        np.testing.assert_array_equal(batches[1][1].numpy(), labels[4:8])

        img = np.random.rand(6, 5, 2)
        flip, crop = ndl.data.RandomFlipHorizontal(p=0.5), ndl.data.RandomCrop(padding=2)
        flipped = 0
        for seed in range(6):
            np.random.seed(seed)
            u = np.random.rand()
            np.random.seed(seed)
            want = img[:, ::-1, :] if u < 0.5 else img
            flipped += u < 0.5
            np.testing.assert_array_equal(flip(img), want)
            np.random.seed(seed)
            sx, sy = np.random.randint(low=-2, high=3, size=2)
            np.random.seed(seed)
            padded = np.pad(img, ((2, 2), (2, 2), (0, 0)))
            want = padded[2 + sx : 2 + sx + 6, 2 + sy : 2 + sy + 5]
            np.testing.assert_array_equal(crop(img), want)
        assert 0 < flipped < 6

        images = "apps/data/train-images-idx3-ubyte.gz"
        labels = "apps/data/train-labels-idx1-ubyte.gz"
        mnist = ndl.data.MNISTDataset(images, labels)
        assert len(mnist) == 5000
        with gzip.open(images) as f:
            raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(5000, 28, 28, 1)
        X0, y0 = mnist[0]
        assert X0.shape == (28, 28, 1) and int(y0) == 5
        np.testing.assert_allclose(X0, raw[0] / 255.0, rtol=1e-6)
        Xb, yb = next(iter(ndl.data.DataLoader(mnist, batch_size=3)))
        assert Xb.shape == (3, 28, 28, 1) and yb.numpy().tolist() == [5, 0, 4]
        """,
        backend="np",
    )


@pytest.mark.parametrize("backend", ["np", "nd"])
def test_hw2_mlp_resnet_builds_and_trains(backend):
    run_course(
        HW2,
        SOFTMAX_REF,
        """
        def num_params(model):
            return sum(int(np.prod(p.shape)) for p in model.parameters())

        assert num_params(ResidualBlock(15, 2, norm=nn.BatchNorm1d)) == 111
        assert num_params(ResidualBlock(784, 100, norm=nn.LayerNorm1d)) == 159452
        assert num_params(MLPResNet(150, 100, 5, 10, norm=nn.LayerNorm1d)) == 68360
        assert num_params(MLPResNet(10, 100, 1, 100, norm=nn.BatchNorm1d)) == 21650

        np.random.seed(1)
        X = np.random.rand(40, 28, 28, 1).astype(np.float32)
        y = np.random.randint(0, 10, 40).astype(np.uint8)
        loader = ndl.data.DataLoader(ndl.data.NDArrayDataset(X, y), batch_size=8)
        model = MLPResNet(784, hidden_dim=32, num_blocks=1)
        opt = ndl.optim.Adam(model.parameters(), lr=0.01)
        history = [epoch(loader, model, opt) for _ in range(8)]
        assert all(0 <= err <= 1 and np.isfinite(loss) for err, loss in history), history
        assert history[-1][1] < 0.5 * history[0][1], history  # it memorises 40 samples

        err, loss = epoch(loader, model)  # evaluation: model.eval(), no update
        assert not model.training
        logits = model(ndl.Tensor(X.reshape(40, 784))).numpy()
        _, ref_loss, ref_err = softmax_ref(logits, y)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
        np.testing.assert_allclose(err, ref_err)
        """,
        backend=backend,
    )


# --- hw3: NDArray --------------------------------------------------------------------------
def test_hw3_views_share_storage_and_have_numpy_strides():
    run_course(
        HW3,
        """
        from numpy.lib.stride_tricks import as_strided

        def strides_of(a):
            return tuple(s // a.itemsize for s in a.strides)

        np.random.seed(0)
        x = np.random.randn(4, 6).astype(np.float32)
        A = nd.array(x, device=nd.cpu())
        views = {
            "permute": (A.permute((1, 0)), x.transpose(1, 0)),
            "reshape": (A.reshape((3, 8)), x.reshape(3, 8)),
            "slice": (A[1:3, ::2], x[1:3, ::2]),
            "int index keeps the axis": (A[2, 1:], x[2:3, 1:]),
            "negative start": (A[-2:, :-1], x[-2:, :-1]),
            "as_strided": (A.as_strided((3, 3), (6, 1)), as_strided(x, (3, 3), (24, 4))),
            "broadcast_to": (A[1:2, :].broadcast_to((5, 6)), np.broadcast_to(x[1:2], (5, 6))),
        }
        for name, (view, want) in views.items():
            assert view._handle.ptr() == A._handle.ptr(), name
            assert view.shape == want.shape, (name, view.shape)
            assert view.strides == strides_of(want), (name, view.strides)
            np.testing.assert_array_equal(view.numpy(), want, err_msg=name)

        P = A.permute((1, 0))
        assert A.is_compact() and not P.is_compact() and not A[1:3, :].is_compact()
        C = P.compact()
        assert C.is_compact() and C.strides == (4, 1) and C._handle.ptr() != A._handle.ptr()
        np.testing.assert_array_equal(C.numpy(), x.T)
        assert A.compact()._handle.ptr() == A._handle.ptr()
        assert nd.NDArray.compact_strides((2, 3, 4)) == (12, 4, 1)

        sums, maxes = A.sum(axis=1, keepdims=True), A.max(axis=0, keepdims=True)
        np.testing.assert_allclose(sums.numpy(), x.sum(1, keepdims=True), rtol=1e-5)
        np.testing.assert_allclose(maxes.numpy(), x.max(0, keepdims=True))
        with np.errstate(invalid="ignore"):
            np.testing.assert_allclose((A**0.5).numpy(), x**0.5, rtol=1e-6)  # NaN stays NaN

        A.flat[5] += 1.0  # the numerical-gradient idiom writes into the array's own storage
        x.flat[5] += 1.0
        np.testing.assert_allclose(A.numpy(), x, rtol=1e-6)

        device = nd.cpu()
        t = device.__tile_size__
        m, n, p = 2, 2, 3
        TA = nd.array(np.random.randn(m, n, t, t), device=device)
        TB = nd.array(np.random.randn(n, p, t, t), device=device)
        TC = nd.NDArray.make((m, p, t, t), device=device)
        device.matmul_tiled(TA._handle, TB._handle, TC._handle, m * t, n * t, p * t)
        def untile(a, rows, cols):
            return a.numpy().transpose(0, 2, 1, 3).reshape(rows * t, cols * t)
        want = untile(TA, m, n) @ untile(TB, n, p)
        np.testing.assert_allclose(untile(TC, m, p), want, rtol=1e-4, atol=1e-4)
        """,
        pythonpath="./python",
    )


def test_hw3_setitem_in_place_with_omitted_bounds():
    run_course(
        HW3,
        """
        np.random.seed(0)
        x = np.random.randn(5, 5).astype(np.float32)
        y = np.random.randn(6, 6).astype(np.float32)
        A, B = nd.array(x, device=nd.cpu()), nd.array(y, device=nd.cpu())
        start = A._handle.ptr()
        A[:, 2:] = 7.0
        x[:, 2:] = 7.0
        A[1:, :3] = B[2:, 3:]
        x[1:, :3] = y[2:, 3:]
        A[0, :] = B[5, 1:]
        x[0:1, :] = y[5:6, 1:]
        A[:2, :2] = B[:2, :2].permute((1, 0))
        x[:2, :2] = y[:2, :2].T
        A[::2, 4] = -1.0
        x[::2, 4] = -1.0
        A[-1, -2:] = B[:1, :2]
        x[-1, -2:] = y[0, :2]
        assert A._handle.ptr() == start
        np.testing.assert_array_equal(A.numpy(), x)
        np.testing.assert_array_equal(B.numpy(), y)
        """,
        pythonpath="./python",
    )


def test_hw3_process_slice_takes_the_axis_index():
    run_course(
        HW3,
        """
        class _ShapeAndSlices(nd.NDArray):
            def __getitem__(self, idxs):
                idxs = tuple(
                    self.process_slice(s, i) if isinstance(s, slice) else slice(s, s + 1, 1)
                    for i, s in enumerate(idxs)
                )
                return self.shape, idxs

        def ShapeAndSlices(*shape):
            return _ShapeAndSlices(np.ones(shape))

        shape, lhs = ShapeAndSlices(7, 7, 7)[:2, :3, :4]
        assert shape == (7, 7, 7) and lhs == (slice(0, 2, 1), slice(0, 3, 1), slice(0, 4, 1)), lhs
        _, rhs = ShapeAndSlices(4, 5, 6)[-2:, 2, 3:]
        assert rhs == (slice(2, 4, 1), slice(2, 3, 1), slice(3, 6, 1)), rhs
        assert nd.array(np.zeros((5, 3))).process_slice(slice(None), 1) == slice(0, 3, 1)

        # the course's setitem test applies such slices to real arrays
        np.random.seed(0)
        _A = np.random.randn(7, 7, 7).astype(np.float32)
        _B = np.random.randn(4, 5, 6).astype(np.float32)
        _, lhs = ShapeAndSlices(7, 7, 7)[:2, :1, :3]
        A, B = nd.array(_A, device=nd.cpu()), nd.array(_B, device=nd.cpu())
        start = A._handle.ptr()
        A[lhs] = B[rhs]
        _A[lhs] = _B[rhs]
        assert A._handle.ptr() == start
        np.testing.assert_array_equal(A.numpy(), _A)
        """,
        pythonpath="./python",
    )


# --- hw4: convolution, ResNet9, CIFAR-10 helpers -------------------------------------------
CONV_REF = """
def conv_ref(a, w, stride, padding):
    # NHWC input, (K, K, C_in, C_out) kernel, zero padding on H and W
    a = np.pad(a, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    k = w.shape[0]
    ho, wo = (a.shape[1] - k) // stride + 1, (a.shape[2] - k) // stride + 1
    out = np.zeros((a.shape[0], ho, wo, w.shape[3]))
    for i in range(k):
        for j in range(k):
            out += a[:, i : i + stride * ho : stride, j : j + stride * wo : stride] @ w[i, j]
    return out
"""


def test_hw4_resnet9_parameters_and_forward():
    run_course(
        HW4,
        """
        from apps.models import ResNet9
        np.random.seed(0)
        model = ResNet9(device=ndl.cpu(), dtype="float32")
        params = model.parameters()
        assert sum(int(np.prod(p.shape)) for p in params) == 431946
        assert params[0].shape == (7, 7, 3, 16) and params[1].shape == (16,)
        x = np.random.randn(2, 3, 32, 32).astype(np.float32)
        out = model(ndl.Tensor(x, device=ndl.cpu()))
        assert out.shape == (2, 10) and np.isfinite(out.numpy()).all()
        model.eval()
        both = model(ndl.Tensor(x, device=ndl.cpu())).numpy()
        one = model(ndl.Tensor(x[1:], device=ndl.cpu())).numpy()
        np.testing.assert_allclose(one, both[1:], rtol=1e-4, atol=1e-5)
        """,
    )


def test_hw4_nn_conv_forward_backward():
    run_course(
        HW4,
        CONV_REF,
        """
        np.random.seed(0)
        conv = nn.Conv(3, 4, 3, stride=2, device=ndl.cpu())
        np.random.seed(0)
        bw, bb = np.sqrt(6 / 27), 1 / np.sqrt(27)  # kaiming bound on fan_in = C_in K^2
        weight, bias = np.random.rand(3, 3, 3, 4) * 2 * bw - bw, np.random.rand(4) * 2 * bb - bb
        np.testing.assert_allclose(conv.weight.numpy(), weight, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(conv.bias.numpy(), bias, rtol=1e-5, atol=1e-6)

        layers = [(3, 4, 3, 2, 9), (3, 4, 3, 1, 6), (2, 5, 5, 2, 8), (4, 2, 1, 1, 5)]
        for c_in, c_out, k, stride, size in layers:
            conv = nn.Conv(c_in, c_out, k, stride=stride, device=ndl.cpu())
            assert conv.weight.shape == (k, k, c_in, c_out) and conv.bias.shape == (c_out,)
            x = np.random.randn(2, c_in, size, size).astype(np.float32)
            X = ndl.Tensor(x, device=ndl.cpu())
            out = conv(X)  # NCHW in and out, padding K // 2
            want = conv_ref(x.transpose(0, 2, 3, 1), conv.weight.numpy(), stride, k // 2)
            want = (want + conv.bias.numpy()).transpose(0, 3, 1, 2)
            assert out.shape == want.shape, (out.shape, want.shape)
            np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-4)
            c = np.random.randn(*out.shape).astype(np.float32)
            (out * ndl.Tensor(c, device=ndl.cpu())).sum().backward()
            assert X.grad.shape == x.shape and conv.weight.grad.shape == conv.weight.shape
            want = c.sum(axis=(0, 2, 3))
            np.testing.assert_allclose(conv.bias.grad.numpy(), want, rtol=1e-4, atol=1e-4)
        """,
    )


def test_hw4_ops_conv_gradients():
    run_course(
        HW4,
        GRADCHECK,
        CONV_REF,
        """
        np.random.seed(0)
        def T(*shape):
            return ndl.Tensor(np.random.randn(*shape), device=ndl.cpu(), dtype="float64")

        # (N, H, C_in, C_out, K, stride, padding); with stride 2 both (H + 2p - K) % 2 cases
        for n, h, c_in, c_out, k, stride, padding in [
            (2, 5, 3, 2, 3, 1, 1), (2, 6, 2, 3, 3, 2, 1), (1, 7, 2, 2, 3, 2, 0),
            (2, 5, 2, 2, 3, 2, 1), (1, 4, 2, 3, 1, 1, 0),
        ]:
            a, b = T(n, h, h, c_in), T(k, k, c_in, c_out)
            out = ndl.conv(a, b, stride=stride, padding=padding)
            want = conv_ref(a.numpy(), b.numpy(), stride, padding)
            np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-10)
            check_gradients(ndl.conv, a, b, stride=stride, padding=padding, eps=1e-3, tol=1e-7)
        a, b = T(1, 5, 5, 2), T(3, 3, 2, 2)
        want = conv_ref(a.numpy(), b.numpy(), 1, 1)  # ops.conv pads 1 by default
        np.testing.assert_allclose(ndl.conv(a, b).numpy(), want, rtol=1e-10)
        """,
    )


def write_cifar_folder(folder, per_batch=4):
    """Five ``data_batch_*`` files and a ``test_batch`` of random images, as CIFAR-10 ships them."""
    folder.mkdir()
    rng = np.random.RandomState(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.randint(0, 10, per_batch)],
            b"data": rng.randint(0, 256, (per_batch, 3072)).astype(np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)  # the bytes keys are what encoding="bytes" gives
    return folder


def test_hw4_cifar10_dataset_and_simple_ml_helpers(tmp_path):
    folder = write_cifar_folder(tmp_path / "cifar-10-batches-py")
    run_course(
        HW4,
        SOFTMAX_REF,
        f"""
        import pickle
        from simple_ml import *
        from apps.models import ResNet9
        folder = {str(folder)!r}
        """,
        """
        def raw(name):
            with open(f"{folder}/{name}", "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            return batch[b"data"].reshape(-1, 3, 32, 32) / 255.0, np.array(batch[b"labels"])

        X_train, y_train = map(np.concatenate, zip(*[raw(f"data_batch_{i}") for i in range(1, 6)]))
        X_test, y_test = raw("test_batch")
        train = ndl.data.CIFAR10Dataset(folder, train=True)
        test = ndl.data.CIFAR10Dataset(folder, train=False)
        assert len(train) == 20 and len(test) == 4
        x5, y5 = train[5]
        assert isinstance(x5, np.ndarray) and x5.shape == (3, 32, 32) and int(y5) == y_train[5]
        np.testing.assert_allclose(x5, X_train[5], rtol=1e-6)
        Xb, yb = next(iter(ndl.data.DataLoader(train, batch_size=8)))
        assert Xb.dtype == "float32" and Xb.shape == (8, 3, 32, 32) and yb.shape == (8,)

        def forward_stats(model, X, y):
            logits = model(ndl.Tensor(X, device=ndl.cpu(), dtype="float32")).numpy()
            _, loss, err = softmax_ref(logits, y)
            return 1 - err, loss

        np.random.seed(0)
        model = ResNet9(device=ndl.cpu(), dtype="float32")
        before = [p.numpy().copy() for p in model.parameters()]
        model.train()
        ref_acc, ref_loss = forward_stats(model, X_train, y_train)
        # one batch of everything: the epoch's numbers are those of the forward before the step
        loader = ndl.data.DataLoader(train, batch_size=20)
        acc, loss = train_cifar10(
            model, loader, n_epochs=1, optimizer=ndl.optim.Adam, lr=0.001, weight_decay=0.001
        )
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-4)
        np.testing.assert_allclose(acc, ref_acc)
        assert all(not np.allclose(p.numpy(), w) for p, w in zip(model.parameters()[:2], before))

        test_loader = ndl.data.DataLoader(test, batch_size=3)  # batches of 3 and 1
        acc, loss = evaluate_cifar10(model, test_loader)
        assert not model.training
        ref_acc, ref_loss = forward_stats(model, X_test, y_test)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-4)
        np.testing.assert_allclose(acc, ref_acc)
        again = epoch_general_cifar10(test_loader, model)
        np.testing.assert_allclose(again, (acc, loss), rtol=1e-6)
        """,
    )
