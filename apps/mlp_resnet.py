"""The course's hw2 MLP ResNet for MNIST: ResidualBlock, MLPResNet, epoch, train_mnist."""

import importlib
import os
import sys

if not __package__:  # `import mlp_resnet` with apps/ on sys.path, as the course's tests do
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

import numpy as np

import needle as ndl
import needle.nn as nn

__all__ = ["ResidualBlock", "MLPResNet", "epoch", "train_mnist"]


def ResidualBlock(dim, hidden_dim, norm=nn.BatchNorm1d, drop_prob=0.1):
    """``relu(x + norm(Linear(drop(relu(norm(Linear(x)))))))``, built in execution order."""
    return nn.Sequential(
        nn.Residual(
            nn.Sequential(
                nn.Linear(dim, hidden_dim),
                norm(hidden_dim),
                nn.ReLU(),
                nn.Dropout(drop_prob),
                nn.Linear(hidden_dim, dim),
                norm(dim),
            )
        ),
        nn.ReLU(),
    )


def MLPResNet(
    dim, hidden_dim=100, num_blocks=3, num_classes=10, norm=nn.BatchNorm1d, drop_prob=0.1
):
    """Linear -> ReLU -> ``num_blocks`` ResidualBlocks (hidden ``hidden_dim // 2``) -> Linear."""
    return nn.Sequential(
        nn.Linear(dim, hidden_dim),
        nn.ReLU(),
        *[ResidualBlock(hidden_dim, hidden_dim // 2, norm, drop_prob) for _ in range(num_blocks)],
        nn.Linear(hidden_dim, num_classes),
    )


def epoch(dataloader, model, opt=None):
    """One pass (train when ``opt`` is given); returns ``(error rate, mean loss)`` over samples."""
    np.random.seed(4)
    loss_fn = nn.SoftmaxLoss()
    model.train(opt is not None)
    errors, loss_sum, seen = 0, 0.0, 0
    for X, y in dataloader:
        X = X.reshape((X.shape[0], -1))
        logits = model(X)
        loss = loss_fn(logits, y)
        if opt is not None:
            opt.reset_grad()
            loss.backward()
            opt.step()
        n = X.shape[0]
        errors += int((logits.numpy().argmax(axis=1) != y.numpy()).sum())
        loss_sum += float(loss.numpy()) * n
        seen += n
    return errors / seen, loss_sum / seen


def train_mnist(
    batch_size=100,
    epochs=10,
    optimizer=ndl.optim.Adam,
    lr=0.001,
    weight_decay=0.001,
    hidden_dim=100,
    data_dir="data",
):
    """Train ``MLPResNet(784, hidden_dim)`` on MNIST in ``data_dir``.

    Returns ``(train_err, train_loss, test_err, test_loss)`` of the last epoch.
    """
    np.random.seed(4)

    def dataset(prefix):
        return ndl.data.MNISTDataset(
            os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"),
            os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"),
        )

    train_loader = ndl.data.DataLoader(dataset("train"), batch_size, shuffle=True)
    test_loader = ndl.data.DataLoader(dataset("t10k"), batch_size)
    model = MLPResNet(784, hidden_dim)
    opt = optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        train_err, train_loss = epoch(train_loader, model, opt)
    test_err, test_loss = epoch(test_loader, model)
    return train_err, train_loss, test_err, test_loss
