"""The course's ``simple_ml`` helpers: hw1's MNIST functions, hw4's CIFAR-10 and PTB loops.

The CIFAR-10 helpers are thin wrappers over ``apps.engine.run_epoch``, the loop that
``python -m apps.train`` uses too.
"""

import importlib
import os
import sys

if not __package__:  # `import simple_ml` with apps/ on sys.path, as the course's tests do
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

import numpy as np

import needle as ndl
import needle.nn as nn
from apps.datasets import read_idx
from apps.engine import run_epoch

__all__ = [
    "parse_mnist",
    "softmax_loss",
    "nn_epoch",
    "loss_err",
    "epoch_general_cifar10",
    "train_cifar10",
    "evaluate_cifar10",
    "epoch_general_ptb",
    "train_ptb",
    "evaluate_ptb",
]


# --- hw1 ------------------------------------------------------------------------------------


def parse_mnist(image_filename, label_filename):
    """Read gzipped MNIST idx files: ``X`` float32 ``(N, 784)`` in [0, 1], ``y`` uint8 ``(N,)``."""
    images = read_idx(image_filename)
    X = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
    return X, read_idx(label_filename).astype(np.uint8)


def softmax_loss(Z, y_one_hot):
    """Mean over rows of ``log sum exp(Z) - sum(Z * y_one_hot)`` (Tensors in, scalar Tensor out)."""
    log_sum = ndl.log(ndl.exp(Z).sum(axes=(1,)))
    return (log_sum.sum() - (Z * y_one_hot).sum()) / Z.shape[0]


def _one_hot(y, k):
    out = np.zeros((y.shape[0], k), dtype=np.float32)
    out[np.arange(y.shape[0]), y] = 1
    return out


def nn_epoch(X, y, W1, W2, lr=0.1, batch=100):
    """One SGD epoch of ``relu(X W1) W2`` with softmax loss, in order, in minibatches of ``batch``.

    Returns new (detached) ``(W1, W2)`` Tensors.
    """
    for start in range(0, X.shape[0], batch):
        Xb = ndl.Tensor(X[start : start + batch])
        yb = y[start : start + batch]
        Z = ndl.relu(Xb @ W1) @ W2
        loss = softmax_loss(Z, ndl.Tensor(_one_hot(yb, W2.shape[1])))
        loss.backward()
        W1 = ndl.Tensor(W1.realize_cached_data() - lr * W1.grad.realize_cached_data())
        W2 = ndl.Tensor(W2.realize_cached_data() - lr * W2.grad.realize_cached_data())
    return W1, W2


def loss_err(h, y):
    """Softmax loss and error rate of logits ``h`` (a Tensor) against labels ``y``."""
    y_one_hot = _one_hot(y, h.shape[-1])
    return softmax_loss(h, ndl.Tensor(y_one_hot)).numpy(), np.mean(h.numpy().argmax(axis=1) != y)


# --- hw4: CIFAR-10 --------------------------------------------------------------------------


def epoch_general_cifar10(dataloader, model, loss_fn=nn.SoftmaxLoss(), opt=None):  # noqa: B008
    """One pass over ``dataloader``: train when ``opt`` is given, else evaluate.

    Returns ``(average accuracy, average loss)`` over all samples.
    """
    np.random.seed(4)
    params = model.parameters()
    device = params[0].device if params else None  # batches follow the model to its device
    result = run_epoch(model, dataloader, loss_fn, opt, device=device, nonfinite="keep")
    return result.accuracy, result.loss


def train_cifar10(
    model,
    dataloader,
    n_epochs=1,
    optimizer=ndl.optim.Adam,
    lr=0.001,
    weight_decay=0.001,
    loss_fn=nn.SoftmaxLoss,
):
    """Train ``n_epochs``; returns ``(accuracy, loss)`` of the last epoch."""
    np.random.seed(4)
    opt = optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    acc, loss = None, None
    for _ in range(n_epochs):
        acc, loss = epoch_general_cifar10(dataloader, model, loss_fn(), opt)
    return acc, loss


def evaluate_cifar10(model, dataloader, loss_fn=nn.SoftmaxLoss):
    """Evaluate on ``dataloader``; returns ``(accuracy, loss)``."""
    np.random.seed(4)
    return epoch_general_cifar10(dataloader, model, loss_fn(), None)


# --- hw4: Penn Treebank language model ------------------------------------------------------


def _detach_state(h):
    """The recurrent state cut from the graph (a tuple for the LSTM)."""
    if h is None:
        return None
    if isinstance(h, tuple):
        return tuple(x.detach() for x in h)
    return h.detach()


def epoch_general_ptb(data, model, seq_len=40, loss_fn=nn.SoftmaxLoss(), opt=None,  # noqa: B008
                      clip=None, device=None, dtype="float32"):  # fmt: skip
    """One pass over ``data`` (a ``batchify`` array ``(nbatch, B)``) in chunks of ``seq_len``
    rows: train when ``opt`` is given (gradients clipped to norm ``clip``), else evaluate.
    The hidden state is carried from chunk to chunk, detached.

    Returns ``(average accuracy, average loss)`` over all predicted tokens.
    """
    np.random.seed(4)
    model.train() if opt is not None else model.eval()
    h, total_loss, correct, count = None, 0.0, 0, 0
    for i in range(0, data.shape[0] - 1, seq_len):
        x, y = ndl.data.get_batch(data, i, seq_len, device=device, dtype=dtype)
        logits, h = model(x, _detach_state(h))
        loss = loss_fn(logits, y)
        if opt is not None:
            opt.reset_grad()
            loss.backward()
            if clip is not None:
                opt.clip_grad_norm(clip)
            opt.step()
        n = y.shape[0]
        total_loss += float(loss.numpy()) * n
        correct += int((logits.numpy().argmax(axis=1) == y.numpy()).sum())
        count += n
        h = _detach_state(h)
    return correct / max(count, 1), total_loss / max(count, 1)


def train_ptb(model, data, seq_len=40, n_epochs=1, optimizer=ndl.optim.SGD, lr=4.0,
              weight_decay=0.0, loss_fn=nn.SoftmaxLoss, clip=None, device=None,
              dtype="float32"):  # fmt: skip
    """Train ``n_epochs`` on ``data``; returns ``(accuracy, loss)`` of the last epoch."""
    np.random.seed(4)
    opt = optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    acc, loss = None, None
    for _ in range(n_epochs):
        acc, loss = epoch_general_ptb(data, model, seq_len, loss_fn(), opt, clip, device, dtype)
    return acc, loss


def evaluate_ptb(model, data, seq_len=40, loss_fn=nn.SoftmaxLoss, device=None,
                 dtype="float32"):  # fmt: skip
    """Evaluate on ``data``; returns ``(accuracy, loss)``."""
    np.random.seed(4)
    return epoch_general_ptb(data, model, seq_len, loss_fn(), None, None, device, dtype)

