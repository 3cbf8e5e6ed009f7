"""needle.init: course formulas, one global-RNG draw per call, device/dtype/requires_grad."""

import math

import numpy as np
import pytest

import needle as ndl
from needle import init


def _state():
    """The global RNG's position (key array and index): equal states mean equal draws."""
    _, key, pos, *_ = np.random.get_state()
    return key.tobytes(), pos


@pytest.mark.parametrize(
    "name, make, reference",
    [
        (
            "rand",
            lambda d: init.rand(3, 4, low=-2.0, high=5.0, device=d),
            lambda: np.random.rand(3, 4) * 7 - 2,
        ),
        (
            "randn",
            lambda d: init.randn(3, 4, mean=1.0, std=3.0, device=d),
            lambda: np.random.randn(3, 4) * 3 + 1,
        ),
        (
            "xavier_uniform",
            lambda d: init.xavier_uniform(5, 7, gain=1.5, device=d),
            lambda: (np.random.rand(5, 7) * 2 - 1) * 1.5 * math.sqrt(6 / 12),
        ),
        (
            "xavier_normal",
            lambda d: init.xavier_normal(5, 7, gain=0.5, device=d),
            lambda: np.random.randn(5, 7) * 0.5 * math.sqrt(2 / 12),
        ),
        (
            "kaiming_uniform",
            lambda d: init.kaiming_uniform(5, 7, device=d),
            lambda: (np.random.rand(5, 7) * 2 - 1) * math.sqrt(6 / 5),
        ),
        (
            "kaiming_uniform_shape",
            lambda d: init.kaiming_uniform(18, 36, shape=(3, 3, 2, 4), device=d),
            lambda: (np.random.rand(3, 3, 2, 4) * 2 - 1) * math.sqrt(6 / 18),
        ),
        (
            "kaiming_normal",
            lambda d: init.kaiming_normal(5, 7, device=d),
            lambda: np.random.randn(5, 7) * math.sqrt(2) / math.sqrt(5),
        ),
    ],
)
def test_random_initialisers_follow_course_draws(device, name, make, reference):
    np.random.seed(42)
    t = make(device)
    after = _state()
    np.random.seed(42)
    expected = reference()
    assert _state() == after, "exactly the reference's draws"
    assert t.shape == expected.shape and t.dtype == "float32" and t.device == device
    assert not t.requires_grad
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_factories_and_options(device):
    t = init.constant(2, 3, c=4.5, device=device, dtype="float64", requires_grad=True)
    assert t.dtype == "float64" and t.requires_grad and t.shape == (2, 3)
    np.testing.assert_array_equal(t.numpy(), 4.5)
    np.testing.assert_array_equal(init.ones(2, device=device).numpy(), [1, 1])
    np.testing.assert_array_equal(init.zeros(1, 2, device=device).numpy(), [[0, 0]])
    like = init.ones_like(t)
    assert like.shape == (2, 3) and like.dtype == "float64" and like.device == device
    assert not like.requires_grad
    np.testing.assert_array_equal(init.zeros_like(t).numpy(), 0)


def test_randb_and_one_hot(device):
    np.random.seed(0)
    b = init.randb(50, 40, p=0.3, device=device)
    np.random.seed(0)
    np.testing.assert_array_equal(b.numpy().astype(bool), np.random.rand(50, 40) <= 0.3)
    labels = ndl.Tensor(np.array([2, 0, 1, 2]), device=device)
    oh = init.one_hot(3, labels, device=device)
    np.testing.assert_array_equal(oh.numpy(), np.eye(3)[[2, 0, 1, 2]])
    assert oh.shape == (4, 3) and oh.device == device
    np.testing.assert_array_equal(
        init.one_hot(4, np.array([[1], [3]]), device=device).numpy(), np.eye(4)[[[1], [3]]]
    )


def test_default_device_and_bad_nonlinearity():
    t = init.rand(2)
    assert t.device == (ndl.cpu() if ndl.cpu().enabled() else ndl.default_device())
    with pytest.raises(ValueError, match="nonlinearity"):
        init.kaiming_uniform(3, 4, nonlinearity="tanh")
