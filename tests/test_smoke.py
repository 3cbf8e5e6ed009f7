"""A tiny, fast first test: needle imports, a small forward and backward work."""

import numpy as np

import needle as ndl


def test_import_forward_backward():
    x = ndl.Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), dtype="float32")
    w = ndl.Tensor(np.array([[1.0], [-1.0]]), dtype="float32")
    loss = ndl.relu(x @ w + 2.0).sum()
    loss.backward()
    assert loss.numpy() == np.float32(2.0)  # relu(x @ w + 2) = [[1], [1]]
    np.testing.assert_allclose(w.grad.numpy(), [[4.0], [6.0]])
    np.testing.assert_allclose(x.grad.numpy(), [[1.0, -1.0], [1.0, -1.0]])
