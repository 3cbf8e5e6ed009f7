"""Models for the training apps: the course's ResNet9 and small nets of the wider conv family.

All models take channels-first input ``(N, C, H, W)`` and return logits ``(N, num_classes)``.
``ResNet9`` is the course's network and needs ``(N, 3, 32, 32)``; the others take any channel
count (``in_channels``), the small CNN the ``image_size`` it is built for, and the rest any
spatial size (they end with a global average pool).  Each trains on two CPU cores:

==============  ================================================================  ==========
name            what it exercises                                                  parameters
==============  ================================================================  ==========
``SmallCNN``    3x3 convs + BatchNorm + max-pool (the default model)                 20,586
``ResNet9``     the course's ConvBN stack with two residual blocks                  431,946
``MobileNet``   depthwise-separable blocks (depthwise 3x3, pointwise 1x1)            10,826
``ShuffleNet``  pointwise group convs + channel shuffle + depthwise 3x3               5,098
``ResNeXt``     bottleneck blocks with a grouped 3x3 (cardinality)                   36,522
``DilatedNet``  3x3 convs with dilation 1, 2, 4 (context without downsampling)       23,850
``MLP``         Linear + ReLU only (no BatchNorm/Dropout: data-parallel checks)     109,386
==============  ================================================================  ==========

Every model has an ``input_shape`` attribute (``(C, H, W)`` it is meant for) that the trainer
and ``apps.summary`` use.
"""

import importlib
import os
import sys

if not __package__:  # `import models` with apps/ on sys.path, as the course's tests do
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

import needle as ndl  # noqa: F401  (course code expects `ndl` here)
import needle.nn as nn

__all__ = [
    "ConvBN",
    "ResNet9",
    "SmallCNN",
    "MLP",
    "MobileNet",
    "ShuffleNet",
    "ResNeXt",
    "DilatedNet",
    "GlobalAvgPool",
    "LanguageModel",
    "TextCNN",
    "MODELS",
    "build_model",
    "count_parameters",
]


class ConvBN(nn.Module):
    """Conv (with bias) -> BatchNorm2d -> ReLU (ReLU optional), the course's building block.

    Construction order (conv weight, conv bias, then BatchNorm, which draws nothing) is what
    makes seeded initialization match the course.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        *,
        relu=True,
        device=None,
        dtype="float32",
        **conv_kwargs,
    ):
        super().__init__()
        self.conv = nn.Conv(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            bias=True,
            device=device,
            dtype=dtype,
            **conv_kwargs,
        )
        self.bn = nn.BatchNorm2d(out_channels, device=device, dtype=dtype)
        self.relu = nn.ReLU() if relu else nn.Identity()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class GlobalAvgPool(nn.Module):
    """Average over the spatial axes: ``(N, C, H, W) -> (N, C)``."""

    def forward(self, x):
        n, c, h, w = x.shape
        return x.sum(axes=(2, 3)) / (h * w)


class ResNet9(nn.Module):
    """The course's ResNet9 for ``(N, 3, 32, 32)`` input, 431,946 parameters.

    ConvBN(3,16,k7,s4) -> ConvBN(16,32,k3,s2) -> Residual[ConvBN(32,32,k3) x2]
    -> ConvBN(32,64,k3,s2) -> ConvBN(64,128,k3,s2) -> Residual[ConvBN(128,128,k3) x2]
    -> Flatten -> Linear(128,128) -> ReLU -> Linear(128,10).  Spatial size 32->8->4->4->2->1.
    Layers are built in this order, so ``np.random.seed(0); ResNet9()`` gives the course's
    weights.
    """

    input_shape = (3, 32, 32)

    def __init__(self, device=None, dtype="float32"):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.model = nn.Sequential(
            ConvBN(3, 16, 7, 4, **kw),
            ConvBN(16, 32, 3, 2, **kw),
            nn.Residual(nn.Sequential(ConvBN(32, 32, 3, 1, **kw), ConvBN(32, 32, 3, 1, **kw))),
            ConvBN(32, 64, 3, 2, **kw),
            ConvBN(64, 128, 3, 2, **kw),
            nn.Residual(nn.Sequential(ConvBN(128, 128, 3, 1, **kw), ConvBN(128, 128, 3, 1, **kw))),
            nn.Flatten(),
            nn.Linear(128, 128, **kw),
            nn.ReLU(),
            nn.Linear(128, 10, **kw),
        )

    def forward(self, x):
        return self.model(x)


class SmallCNN(nn.Module):
    """Two conv blocks and a linear classifier: the fast default model (~96 % on the embedded
    MNIST subset after three epochs).

    ConvBN(C,16,k3) -> MaxPool2d(2) -> ConvBN(16,32,k3) -> MaxPool2d(2) -> Flatten
    -> Linear(32 * (H//4) * (W//4), classes); ``image_size`` is ``H`` (square images) or
    ``(H, W)``.
    """

    input_shape = (1, 28, 28)

    def __init__(self, in_channels=1, num_classes=10, image_size=28, device=None, dtype="float32"):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.features = nn.Sequential(
            ConvBN(in_channels, 16, 3, 1, **kw),
            nn.MaxPool2d(2),
            ConvBN(16, 32, 3, 1, **kw),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * (h // 4) * (w // 4), num_classes, **kw)
        )

    def forward(self, x):
        return self.head(self.features(x))


class MLP(nn.Module):
    """Flatten -> Linear(C*H*W, 128) -> ReLU -> Linear(128, 64) -> ReLU -> Linear(64, classes).

    No BatchNorm and no Dropout: its output for a sample does not depend on the rest of the
    batch or on a random draw, so ranks of a data-parallel run compute exactly what one
    process computes (the model ``apps.train --distributed`` is checked with).
    """

    input_shape = (1, 28, 28)

    def __init__(self, in_channels=1, num_classes=10, image_size=28, device=None, dtype="float32"):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * h * w, 128, **kw),
            nn.ReLU(),
            nn.Linear(128, 64, **kw),
            nn.ReLU(),
            nn.Linear(64, num_classes, **kw),
        )

    def forward(self, x):
        return self.model(x)


def depthwise_separable(in_channels, out_channels, stride=1, **kw):
    """MobileNet's block: depthwise 3x3 (groups = channels) + BN + ReLU, then pointwise 1x1 + BN
    + ReLU."""
    return nn.Sequential(
        ConvBN(in_channels, in_channels, 3, stride, groups=in_channels, **kw),
        ConvBN(in_channels, out_channels, 1, 1, **kw),
    )


class MobileNet(nn.Module):
    """A small MobileNet-v1-style net: a stem conv and four depthwise-separable blocks."""

    input_shape = (1, 28, 28)

    def __init__(self, in_channels=1, num_classes=10, width=16, device=None, dtype="float32"):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        w = width
        self.features = nn.Sequential(
            ConvBN(in_channels, w, 3, 1, **kw),
            depthwise_separable(w, 2 * w, 2, **kw),
            depthwise_separable(2 * w, 2 * w, 1, **kw),
            depthwise_separable(2 * w, 4 * w, 2, **kw),
            depthwise_separable(4 * w, 4 * w, 1, **kw),
        )
        self.head = nn.Sequential(GlobalAvgPool(), nn.Linear(4 * w, num_classes, **kw))

    def forward(self, x):
        return self.head(self.features(x))


class ShuffleUnit(nn.Module):
    """ShuffleNet-v1 unit: gconv1x1 -> BN -> ReLU -> shuffle -> dw3x3 -> BN -> gconv1x1 -> BN.

    With ``stride == 1`` and equal widths the unit is residual (``relu(x + branch(x))``);
    otherwise it is a plain downsampling/widening unit (``relu(branch(x))``).
    """

    def __init__(self, in_channels, out_channels, groups=4, stride=1, device=None, dtype="float32"):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        mid = out_channels // 2
        self.residual = stride == 1 and in_channels == out_channels
        self.branch = nn.Sequential(
            ConvBN(in_channels, mid, 1, 1, groups=groups, **kw),
            nn.ChannelShuffle(groups),
            ConvBN(mid, mid, 3, stride, groups=mid, relu=False, **kw),
            ConvBN(mid, out_channels, 1, 1, groups=groups, relu=False, **kw),
        )
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.branch(x)
        return self.relu(x + y if self.residual else y)


class ShuffleNet(nn.Module):
    """A small ShuffleNet-style net: stem conv, then shuffle units (two downsampling)."""

    input_shape = (1, 28, 28)

    def __init__(self, in_channels=1, num_classes=10, groups=4, device=None, dtype="float32"):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.features = nn.Sequential(
            ConvBN(in_channels, 16, 3, 1, **kw),
            ShuffleUnit(16, 32, groups, 2, **kw),
            ShuffleUnit(32, 32, groups, 1, **kw),
            ShuffleUnit(32, 64, groups, 2, **kw),
            ShuffleUnit(64, 64, groups, 1, **kw),
        )
        self.head = nn.Sequential(GlobalAvgPool(), nn.Linear(64, num_classes, **kw))

    def forward(self, x):
        return self.head(self.features(x))


def resnext_block(channels, width, cardinality, **kw):
    """ResNeXt bottleneck: relu(x + [1x1 -> grouped 3x3 (groups=cardinality) -> 1x1](x))."""
    return nn.Sequential(
        nn.Residual(
            nn.Sequential(
                ConvBN(channels, width, 1, 1, **kw),
                ConvBN(width, width, 3, 1, groups=cardinality, **kw),
                ConvBN(width, channels, 1, 1, relu=False, **kw),
            )
        ),
        nn.ReLU(),
    )


class ResNeXt(nn.Module):
    """A small ResNeXt-style net: strided ConvBN stages, each followed by a grouped bottleneck."""

    input_shape = (1, 28, 28)

    def __init__(self, in_channels=1, num_classes=10, cardinality=8, device=None, dtype="float32"):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.features = nn.Sequential(
            ConvBN(in_channels, 32, 3, 2, **kw),
            resnext_block(32, 32, cardinality, **kw),
            ConvBN(32, 64, 3, 2, **kw),
            resnext_block(64, 64, cardinality, **kw),
        )
        self.head = nn.Sequential(GlobalAvgPool(), nn.Linear(64, num_classes, **kw))

    def forward(self, x):
        return self.head(self.features(x))


class DilatedNet(nn.Module):
    """Context by dilation: after one strided conv, 3x3 convs with dilation 1, 2 and 4.

    Padding equals the dilation, so the spatial size is kept and the receptive field grows
    3 -> 7 -> 15 -> 31 input pixels (jump 2) without further downsampling.
    """

    input_shape = (1, 28, 28)

    def __init__(self, in_channels=1, num_classes=10, device=None, dtype="float32"):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.features = nn.Sequential(
            ConvBN(in_channels, 16, 3, 2, **kw),
            ConvBN(16, 32, 3, 1, padding=1, dilation=1, **kw),
            ConvBN(32, 32, 3, 1, padding=2, dilation=2, **kw),
            ConvBN(32, 32, 3, 1, padding=4, dilation=4, **kw),
        )
        self.head = nn.Sequential(GlobalAvgPool(), nn.Linear(32, num_classes, **kw))

    def forward(self, x):
        return self.head(self.features(x))


MODELS = {
    "cnn": SmallCNN,
    "resnet9": ResNet9,
    "mobilenet": MobileNet,
    "shufflenet": ShuffleNet,
    "resnext": ResNeXt,
    "dilated": DilatedNet,
    "mlp": MLP,
}


def build_model(name, in_channels=1, num_classes=10, image_size=28, device=None, dtype="float32"):
    """Construct ``MODELS[name]`` for ``in_channels`` x ``image_size`` input.

    ResNet9 is fixed at 3x32x32 input and 10 classes; ``image_size`` matters only to the
    small CNN (its classifier sees the flattened feature map); the other nets pool globally.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    kw = {"device": device, "dtype": dtype}
    if name == "resnet9":
        if num_classes != 10:
            raise ValueError(f"resnet9 has 10 outputs; the data set has {num_classes} classes")
        return ResNet9(**kw)
    if name in ("cnn", "mlp"):
        return MODELS[name](in_channels, num_classes, image_size, **kw)
    return MODELS[name](in_channels=in_channels, num_classes=num_classes, **kw)


def count_parameters(model):
    """Total number of scalar parameters of ``model``."""
    total = 0
    for p in model.parameters():
        n = 1
        for d in p.shape:
            n *= d
        total += n
    return total


# --- sequence models -----------------------------------------------------------------------------


class LanguageModel(nn.Module):
    """The course's word-level language model: Embedding → RNN, LSTM or GRU → Linear.

    Args:
        embedding_size: width of the word vectors; output_size: vocabulary size;
        hidden_size, num_layers: of the sequence model; seq_model: ``"rnn"``, ``"lstm"`` or
        ``"gru"``; seq_len: kept for the course's signature (the helpers pass it).
    Shape:
        ``x (T, B)`` word indices, ``h`` the sequence model's state (None for zeros) →
        ``(logits (T·B, output_size), h)`` with ``h`` the final state (``(h_n, c_n)`` for
        the LSTM).
    """

    def __init__(self, embedding_size, output_size, hidden_size, num_layers=1, seq_model="rnn",
                 seq_len=40, device=None, dtype="float32"):  # fmt: skip
        super().__init__()
        layers = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
        if seq_model not in layers:
            raise ValueError(f"LanguageModel: seq_model must be one of {list(layers)}, "
                             f"got {seq_model!r}")  # fmt: skip
        self.seq_len, self.hidden_size, self.output_size = seq_len, hidden_size, output_size
        self.embedding = nn.Embedding(output_size, embedding_size, device=device, dtype=dtype)
        self.seq_model = layers[seq_model](
            embedding_size, hidden_size, num_layers=num_layers, device=device, dtype=dtype
        )
        self.linear = nn.Linear(hidden_size, output_size, device=device, dtype=dtype)

    def forward(self, x, h=None):
        steps, batch = x.shape
        out, h = self.seq_model(self.embedding(x), h)
        logits = self.linear(out.reshape((steps * batch, self.hidden_size)))
        return logits, h


class TextCNN(nn.Module):
    """Sentence classification with 1-D convolutions over word embeddings (Kim, 2014).

    Embedding → for each width k: Conv1d(embedding_size, channels, k) → ReLU → max over time
    → concatenated → Dropout → Linear(len(widths)·channels, num_classes).

    Shape: ``x (B, L)`` word indices (L ≥ max(widths)) → logits ``(B, num_classes)``.
    """

    def __init__(self, vocab_size, num_classes, embedding_size=32, channels=32,
                 widths=(2, 3, 4), drop_prob=0.3, seq_len=32, device=None,
                 dtype="float32"):  # fmt: skip
        super().__init__()
        if seq_len < max(widths):
            raise ValueError(f"TextCNN: seq_len={seq_len} is shorter than the widest kernel "
                             f"{max(widths)}")  # fmt: skip
        self.seq_len, self.widths, self.channels = seq_len, tuple(widths), channels
        self.embedding = nn.Embedding(vocab_size, embedding_size, device=device, dtype=dtype)
        self.convs = [
            nn.Conv1d(embedding_size, channels, k, padding=0, device=device, dtype=dtype)
            for k in self.widths
        ]
        self.pools = [nn.MaxPool1d(seq_len - k + 1) for k in self.widths]
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(drop_prob)
        self.linear = nn.Linear(len(self.widths) * channels, num_classes, device=device,
                                dtype=dtype)  # fmt: skip

    def forward(self, x):
        batch, length = x.shape
        if length != self.seq_len:
            raise ValueError(f"TextCNN: expected (B, seq_len={self.seq_len}) indices, "
                             f"got {x.shape}")  # fmt: skip
        words = ndl.ops.permute(self.embedding(x), (0, 2, 1))  # (B, D, L)
        features = [
            pool(self.relu(conv(words))).reshape((batch, self.channels))
            for conv, pool in zip(self.convs, self.pools)
        ]
        joined = ndl.ops.stack(features, 1).reshape((batch, len(features) * self.channels))
        return self.linear(self.dropout(joined))

