"""Module, Parameter and the basic layers (course layouts, seeded like the course).

A ``Module`` finds its parameters, sub-modules and buffers by walking its attributes in
insertion order, through lists, tuples and dicts; names are dotted attribute paths
(``"modules.0.weight"``), which ``state_dict()``/``load_state_dict()`` use.
Layers build their forward pass from a handful of needle ops; statistics kept outside the
graph (BatchNorm running mean/variance) are updated on raw arrays, so no graph grows.
"""

import math
import numbers
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np

from .. import init, ops
from ..autograd import Tensor, is_grad_enabled

__all__ = [
    "Module",
    "Parameter",
    "Identity",
    "Linear",
    "Flatten",
    "ReLU",
    "Tanh",
    "Sigmoid",
    "Sequential",
    "SoftmaxLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm1d",
    "Dropout",
    "Residual",
]


class Parameter(Tensor):
    """A Tensor that a Module reports from ``parameters()`` (its trainable weights)."""


def _items(value: Any):
    """``(key, item)`` pairs inside ``value``: a Module's attributes, a dict's items, a list's
    or tuple's entries by index; None for anything else."""
    if isinstance(value, Module):
        return vars(value).items()
    if isinstance(value, dict):
        return value.items()
    if isinstance(value, (list, tuple)):
        return enumerate(value)
    return None


def _walk(value: Any, prefix: str, kinds: tuple, into_modules: bool, entered=None):
    """Yield (dotted name, object) for objects of ``kinds`` inside ``value``.

    Containers (list, tuple, dict) are entered; a Module is entered only when
    ``into_modules`` (else it is yielded if it is one of ``kinds``, and not entered), and
    only once (a module holding a reference back to its parent does not loop).
    """
    if isinstance(value, kinds):
        yield prefix, value
        if not (into_modules and isinstance(value, Module)):
            return
    if isinstance(value, Module):
        entered = set() if entered is None else entered
        if not into_modules or id(value) in entered:
            return
        entered.add(id(value))
    items = _items(value)
    if items is None:
        return
    for key, item in items:
        name = f"{prefix}.{key}" if prefix else str(key)
        yield from _walk(item, name, kinds, into_modules, entered)


def _array_like(value: Any, target: Tensor):
    """``value`` (Tensor, NDArray or NumPy array) as a backend array like ``target``'s."""
    if isinstance(value, Tensor):
        value = value.numpy()
    array = np.asarray(value)
    return Tensor(array, device=target.device, dtype=target.dtype).realize_cached_data()


class Module:
    """Base class of every layer and model: parameters, sub-modules, buffers, train/eval.

    Subclasses set attributes in ``__init__`` (after ``super().__init__()``) and implement
    ``forward``; calling the module calls ``forward``.
    """

    def __init__(self):
        self.training = True

    # --- discovery --------------------------------------------------------------------
    def named_parameters(self) -> Iterator[Tuple[str, Parameter]]:
        """(dotted name, Parameter) in attribute order; a shared Parameter appears once."""
        seen = set()
        for name, value in _walk(self, "", (Parameter,), into_modules=True):
            if id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def parameters(self) -> List[Parameter]:
        """Every Parameter of this module and its sub-modules, in attribute order."""
        return [p for _, p in self.named_parameters()]

    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        """The direct sub-modules (also those held in lists, tuples and dicts)."""
        for key, value in self.__dict__.items():
            yield from _walk(value, key, (Module,), into_modules=False)

    def children(self) -> List["Module"]:
        return [m for _, m in self.named_children()]

    def named_modules(self) -> Iterator[Tuple[str, "Module"]]:
        """This module (name ``""``) and every sub-module, depth first, each once."""
        seen = set()
        for name, value in _walk(self, "", (Module,), into_modules=True):
            if id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def modules(self) -> List["Module"]:
        return [m for _, m in self.named_modules()]

    def register_buffer(self, name: str, tensor: Tensor) -> None:
        """Keep ``tensor`` as attribute ``name``: state saved in ``state_dict`` but not trained."""
        self.__dict__.setdefault("_buffer_names", [])
        if name not in self._buffer_names:
            self._buffer_names.append(name)
        setattr(self, name, tensor)

    def named_buffers(self) -> Iterator[Tuple[str, Tensor]]:
        for prefix, module in self.named_modules():
            for name in module.__dict__.get("_buffer_names", ()):
                yield (f"{prefix}.{name}" if prefix else name), getattr(module, name)

    # --- mode -------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode for this module and every sub-module (Dropout on, batch stats)."""
        for _, module in self.named_modules():
            module.training = mode
        return self

    def eval(self) -> "Module":
        """Evaluation mode for this module and every sub-module."""
        return self.train(False)

    # --- state ------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, Tensor]":
        """Parameters then buffers by dotted name, as constant Tensors sharing their data.

        Optimizers and BatchNorm replace (never mutate) the arrays, so the result is a
        snapshot of the current values.
        """
        state = OrderedDict()
        for name, tensor in list(self.named_parameters()) + list(self.named_buffers()):
            state[name] = Tensor.make_const(tensor.realize_cached_data())
        return state

    def load_state_dict(self, state_dict: Dict[str, Any], strict: bool = True):
        """Copy values (Tensors, NDArrays or NumPy arrays) into parameters and buffers.

        The tensors keep their identity (optimizers holding them see the new values), device
        and dtype.  Raises KeyError listing missing/unexpected names when ``strict`` and
        ValueError naming the entry when a shape differs.  Returns (missing, unexpected).
        """
        own = OrderedDict(list(self.named_parameters()) + list(self.named_buffers()))
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, target in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            shape = tuple(np.shape(value.numpy() if isinstance(value, Tensor) else value))
            if shape != target.shape:
                raise ValueError(
                    f"load_state_dict: {name!r} has shape {shape}, "
                    f"the module expects {target.shape}"
                )
            target.cached_data = _array_like(value, target)
        return missing, unexpected

    # --- calling and printing ---------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        """The arguments shown inside the parentheses of ``repr``."""
        return ""

    def _repr_children(self):
        return list(self.named_children())

    def __repr__(self):
        children = self._repr_children()
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [head]
        for name, child in children:
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {text}")
        return "\n".join(lines) + "\n)"


class Identity(Module):
    """Returns its input."""

    def forward(self, x):
        return x


class Linear(Module):
    """y = x @ weight + bias.

    Args:
        in_features, out_features: sizes of the last axis of input and output.
        bias: add a learned bias.
    Shape:
        input ``(*, in_features)``, output ``(*, out_features)``.
    Parameters (course layout and draws, in this order):
        ``weight (in_features, out_features)`` = kaiming_uniform(in, out);
        ``bias (1, out_features)`` = kaiming_uniform(out, 1) reshaped (fan_in = out_features).
    Raises:
        ValueError when the input's last axis is not ``in_features``.
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype="float32"):
        super().__init__()
        for arg, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"Linear: {arg} must be a positive int, got {arg}={value!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(
            init.kaiming_uniform(in_features, out_features, device=device, dtype=dtype)
        )
        self.bias = None
        if bias:
            b = init.kaiming_uniform(out_features, 1, device=device, dtype=dtype)
            self.bias = Parameter(b.reshape((1, out_features)))

    def forward(self, X: Tensor) -> Tensor:
        shape = X.shape
        if not shape or shape[-1] != self.in_features:
            raise ValueError(
                f"Linear: expected input with last axis {self.in_features} (in_features), "
                f"got shape {shape}"
            )
        if len(shape) > 2:  # one 2-D GEMM instead of a batched one
            out = X.reshape((math.prod(shape[:-1]), shape[-1])) @ self.weight
            out = out.reshape((*shape[:-1], self.out_features))
        else:
            out = X @ self.weight
        if self.bias is not None:
            out = ops.bias_add(out, self.bias)
        return out

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Flatten(Module):
    """``(B, d1, d2, ...)`` → ``(B, d1·d2·...)``."""

    def forward(self, X: Tensor) -> Tensor:
        if X.ndim < 1:
            raise ValueError(f"Flatten: input needs a batch axis, got shape {X.shape}")
        return X.reshape((X.shape[0], math.prod(X.shape[1:])))


class ReLU(Module):
    """max(x, 0) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(x)


class Tanh(Module):
    """tanh(x) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.tanh(x)


class Sigmoid(Module):
    """1 / (1 + exp(-x)) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        sigmoid = getattr(ops, "sigmoid", None)
        if sigmoid is not None:
            return sigmoid(x)
        return (ops.exp(-x) + 1) ** -1


class _ModuleTuple(tuple):
    """Sequential's ``modules`` attribute: the course's tuple of layers.

    The attribute shadows ``Module.modules()`` on a Sequential; calling it still gives
    that method's result, so ``seq.modules()`` works like on any other Module.
    """

    def __new__(cls, items, owner=None):
        obj = super().__new__(cls, items)
        obj._owner_modules = owner.named_modules if owner is not None else None
        return obj

    def __call__(self):
        return [m for _, m in self._owner_modules()]


class Sequential(Module):
    """Applies ``modules`` (a tuple attribute, course name) in order."""

    def __init__(self, *modules):
        super().__init__()
        self.modules = _ModuleTuple(modules, self)

    def forward(self, x):
        for module in self.modules:
            x = module(x)
        return x

    def __len__(self):
        return len(self.modules)

    def __getitem__(self, index):
        return self.modules[index]

    def __iter__(self):
        return iter(self.modules)

    def _repr_children(self):
        return [(str(i), m) for i, m in enumerate(self.modules)]


class SoftmaxLoss(Module):
    """Mean cross-entropy of integer labels under softmax(logits).

    Shape: ``logits (N, K)``, ``y (N,)`` of class indices (any numeric dtype) → ``()``.
    loss = mean_i [ logsumexp_k(logits[i, k]) − logits[i, y_i] ].
    """

    def forward(self, logits: Tensor, y) -> Tensor:
        if logits.ndim != 2 or len(y) != logits.shape[0]:
            raise ValueError(
                f"SoftmaxLoss: expected logits (N, K) and labels (N,), got {logits.shape} "
                f"and {tuple(np.shape(y.numpy() if isinstance(y, Tensor) else y))}"
            )
        y_one_hot = init.one_hot(logits.shape[1], y, device=logits.device, dtype=logits.dtype)
        return ops.softmax_cross_entropy(logits, y_one_hot)


class _BatchNorm(Module):
    """Normalisation by batch statistics over all axes but the channel axis 1."""

    def __init__(self, dim, eps=1e-5, momentum=0.1, device=None, dtype="float32"):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.momentum = momentum
        self.weight = Parameter(init.ones(dim, device=device, dtype=dtype))
        self.bias = Parameter(init.zeros(dim, device=device, dtype=dtype))
        self.register_buffer("running_mean", init.zeros(dim, device=device, dtype=dtype))
        self.register_buffer("running_var", init.ones(dim, device=device, dtype=dtype))

    def _check(self, x, ndim):
        if x.ndim != ndim or x.shape[1] != self.dim:
            raise ValueError(
                f"{type(self).__name__}: expected a {ndim}-d input with {self.dim} channels "
                f"on axis 1, got shape {x.shape}"
            )

    def _normalize(self, x: Tensor) -> Tensor:
        if self.training:
            # One graph node (ops.batch_norm); the batch statistics it computed feed the
            # running averages.
            op = ops.BatchNormTrain(self.eps)
            out = op(x, self.weight, self.bias)
            out.realize_cached_data()
            self._update_running(op.batch_mean, op.batch_var)
            return out
        # Fixed statistics: one per-channel affine pass, x·scale + (bias − mean·scale).
        inv_std = (self.running_var.realize_cached_data() + self.eps) ** -0.5
        neg_mean = -self.running_mean.realize_cached_data()
        if not (is_grad_enabled() and (self.weight.requires_grad or self.bias.requires_grad)):
            # Nothing to differentiate: scale and shift as plain arrays (inference).
            scale = self.weight.realize_cached_data() * inv_std
            shift = self.bias.realize_cached_data() + neg_mean * scale
            return ops.channel_affine(x, Tensor.make_const(scale), Tensor.make_const(shift))
        scale = self.weight * Tensor.make_const(inv_std)
        return ops.channel_affine(x, scale, self.bias + Tensor.make_const(neg_mean) * scale)

    def _update_running(self, mean, var) -> None:
        # running <- (1 - momentum) * running + momentum * batch, on raw arrays: no graph.
        m = self.momentum
        for buffer, stat in ((self.running_mean, mean), (self.running_var, var)):
            old = buffer.realize_cached_data()
            new = old * (1 - m) + stat * m
            # The buffer keeps its dtype (NumPy mode would promote it with a float64 batch).
            buffer.cached_data = new if new.dtype == old.dtype else new.astype(old.dtype)

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of ``(N, dim)`` inputs.

    Training: y = weight·(x − μ)/√(σ² + eps) + bias with the batch mean μ and biased
    variance σ² over axis 0; running ← (1 − momentum)·running + momentum·batch statistic
    (biased variance, as the course).  Eval: the running statistics replace μ and σ².
    Shape: ``(N, dim)`` → ``(N, dim)``.  Parameters ``weight``/``bias`` ``(dim,)``;
    buffers ``running_mean``/``running_var`` ``(dim,)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        self._check(x, 2)
        return self._normalize(x)


class BatchNorm2d(_BatchNorm):
    """BatchNorm1d over the channels of an NCHW input (statistics over N, H and W).

    Shape: ``(N, dim, H, W)`` → same.  Equivalent to moving C last, flattening to
    ``(N·H·W, dim)`` and applying BatchNorm1d, without the transposes.
    """

    def forward(self, x: Tensor) -> Tensor:
        self._check(x, 4)
        return self._normalize(x)


class LayerNorm1d(Module):
    """y = weight·(x − mean)/√(var + eps) + bias over the last axis (biased variance).

    Shape: ``(*, dim)`` → same.  Parameters ``weight`` ones, ``bias`` zeros, ``(dim,)``.
    """

    def __init__(self, dim, eps=1e-5, device=None, dtype="float32"):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = Parameter(init.ones(dim, device=device, dtype=dtype))
        self.bias = Parameter(init.zeros(dim, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"LayerNorm1d: expected last axis {self.dim}, got shape {x.shape}")
        axis = x.ndim - 1
        stat_shape = (*x.shape[:-1], 1)
        mean = x.sum((axis,)) / self.dim
        centered = x + (-mean).reshape(stat_shape).broadcast_to(x.shape)
        var = (centered * centered).sum((axis,)) / self.dim
        inv_std = ((var + self.eps) ** -0.5).reshape(stat_shape).broadcast_to(x.shape)
        affine_shape = (1,) * (x.ndim - 1) + (self.dim,)
        weight = self.weight.reshape(affine_shape).broadcast_to(x.shape)
        bias = self.bias.reshape(affine_shape).broadcast_to(x.shape)
        return centered * inv_std * weight + bias

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}"


class Dropout(Module):
    """Inverted dropout: in training y = x·mask/(1 − p), mask ~ Bernoulli(1 − p); eval: y = x.

    Draws one ``np.random.rand(*x.shape)`` per training forward (course order).
    """

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        mask = init.randb(*x.shape, p=1 - self.p, device=x.device, dtype=x.dtype)
        if self.p == 1.0:
            return x * mask
        return x * mask / (1 - self.p)

    def extra_repr(self):
        return f"p={self.p}"


class Residual(Module):
    """fn(x) + x."""

    def __init__(self, fn: Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x) + x
