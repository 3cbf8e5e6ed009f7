"""``summary(model, input_shape)``: per-layer output shape, parameters, multiply-accumulates, and
the receptive field and jump of every convolution and pooling layer.

The model is run once on a dummy input (in eval mode, so BatchNorm statistics and the global
NumPy RNG are untouched) with every module's ``forward`` wrapped to record what it saw.
Conv and pool layers describe themselves: ``layer.geometry(input_shape)`` returns the
``ConvGeometry`` or ``PoolGeometry`` they run, and the costs follow from it:

- Conv (``N, C_in, *S_in -> N, C_out, *S_out``, kernel ``K``, ``groups``): the geometry's
  ``flops / 2`` = N * C_out * prod(S_out) * (C_in / groups) * prod(K) multiply-accumulates;
  the bias adds are not counted.
- ConvTranspose (an ``adjoint`` geometry): those of the conv it transposes,
  N * C_in * prod(S_in) * (C_out / groups) * prod(K).
- Linear ``(..., in) -> (..., out)``: MACs = prod(output shape) * in.
- Everything else (BatchNorm, activations, pooling, shuffles) counts 0 MACs.

Receptive field ``r`` and jump ``j`` (the input-pixel distance between neighbouring outputs,
i.e. the effective stride) follow a tensor through the graph: the input has ``r = j = 1``; a
window with kernel ``k``, dilation ``d``, stride ``s`` and input dilation ``l`` (a transposed
conv of stride ``l`` reads an input with ``l - 1`` zeros between samples, ``j / l`` apart) maps
``r' = r + d * (k - 1) * j / l`` and ``j' = j * s / l``; any other op (add, concat, reshape)
takes the largest ``r`` and ``j`` among its inputs, so a residual branch is accounted for.
Both are per spatial axis.
"""

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, List, Optional, Tuple

import numpy as np

from .. import autograd
from ..autograd import Tensor, TensorTuple
from ..ops.geometry import ConvGeometry, PoolGeometry
from .nn_basic import Module, _items

__all__ = ["summary", "ModelSummary", "LayerRow"]


@dataclass
class LayerRow:
    """One module call: ``name`` is the attribute path from the model (``"" `` for the model)."""

    name: str
    kind: str
    depth: int
    leaf: bool
    input_shape: Tuple[int, ...] = ()
    output_shape: Tuple = ()
    params: int = 0
    macs: int = 0
    config: str = ""
    receptive_field: Optional[Tuple] = None
    jump: Optional[Tuple] = None


@dataclass
class ModelSummary:
    """Rows in call order plus totals; ``str()`` gives the printed table."""

    rows: List[LayerRow]
    input_shape: Tuple[int, ...]
    output_shape: Tuple
    total_params: int
    total_macs: int
    param_bytes: int = 0
    extra: dict = field(default_factory=dict)

    def __str__(self):
        return _format(self)

    def row(self, name):
        """The first row whose ``name`` equals ``name`` (``KeyError`` if none)."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)


def _prod(shape):
    return math.prod(int(d) for d in shape)


def _children(value, path):
    """``(path, module)`` for the modules directly reachable from ``value``'s attributes."""
    items = _items(value)
    if items is None:
        return
    for key, child in items:
        # Sequential keeps its layers in a tuple named `modules`: name them 0, 1, ... directly.
        sub = (
            path
            if (key == "modules" and isinstance(value, Module))
            else (f"{path}.{key}" if path else str(key))
        )
        if isinstance(child, Module):
            yield sub, child
        elif isinstance(child, (list, tuple, dict)):
            yield from _children(child, sub)


def _walk_modules(model):
    """Every module of the tree (pre-order) with its path; shared modules keep the first path."""
    names, order, stack = {}, [], [("", model)]
    while stack:
        path, module = stack.pop()
        if id(module) in names:
            continue
        names[id(module)] = path
        order.append(module)
        stack.extend(reversed(list(_children(module, path))))
    return names, order


def _params_of(module):
    seen, total = set(), 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += _prod(p.shape)
    return total


def _is_leaf(module):
    return not any(True for _ in _children(module, ""))


def _geometry(module, in_shape):
    """The ``ConvGeometry``/``PoolGeometry`` a conv or pool layer runs on ``in_shape``, else
    None."""
    describe = getattr(module, "geometry", None)
    if len(in_shape) < 3 or not callable(describe):
        return None
    geom = describe(in_shape)
    return geom if isinstance(geom, (ConvGeometry, PoolGeometry)) else None


def _config(module, geom):
    """``k3 s2 p1 d2 g4``: the layer's own window (a transposed conv's is that of the conv
    it transposes), with the padding as the layer was given it."""
    window = geom.transposed if geom.adjoint else geom

    def fmt(t):
        return str(t[0]) if len(set(t)) == 1 else "x".join(str(v) for v in t)

    parts = [f"k{fmt(window.kernel)}"]
    if any(s != 1 for s in window.stride):
        parts.append(f"s{fmt(window.stride)}")
    pad = _pad_text(getattr(module, "padding", 0), fmt)
    if pad:
        parts.append(f"p{pad}")
    if any(d != 1 for d in window.dilation):
        parts.append(f"d{fmt(window.dilation)}")
    groups = getattr(window, "groups", 1)
    if groups != 1:
        parts.append(f"g{groups}")
    return " ".join(parts)


def _pad_text(padding, fmt):
    """``1`` / ``1x2`` for symmetric per-axis padding, ``(0,1)x(0,1)`` for per-side pairs."""
    if padding is None or isinstance(padding, str):
        return "" if padding in (None, "valid") else padding
    if isinstance(padding, int):
        return str(padding) if padding else ""
    pads = tuple(tuple(p) if isinstance(p, (tuple, list)) else (p, p) for p in padding)
    if all(lo == hi == 0 for lo, hi in pads):
        return ""
    if all(lo == hi for lo, hi in pads):
        return fmt(tuple(lo for lo, _ in pads))
    return "x".join(f"({lo},{hi})" for lo, hi in pads)


def _macs(module, geom, in_shape, out_shape):
    if isinstance(geom, ConvGeometry):
        return geom.flops // 2
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Linear" and isinstance(weight, Tensor):
        return _prod(out_shape) * int(in_shape[-1])
    return 0


class _FieldTracker:
    """Receptive field and jump per tensor (keyed by id; the tensors are kept alive)."""

    def __init__(self, x, nsp):
        self.nsp = nsp
        one = (Fraction(1),) * nsp
        self.known = {id(x): (one, one)}
        self.alive = [x]

    def resolve(self, t):
        """Largest (r, j) over the graph inputs of ``t``, walking back to known tensors."""
        if id(t) in self.known:
            return self.known[id(t)]
        stack, seen = [t], set()
        while stack:  # iterative post-order: the graph of a real model is deep
            node = stack[-1]
            pending = [i for i in node.inputs if id(i) not in self.known and id(i) not in seen]
            if pending and id(node) not in seen:
                seen.add(id(node))
                stack.extend(pending)
                continue
            stack.pop()
            if id(node) in self.known:
                continue
            found = [self.known[id(i)] for i in node.inputs if self.known.get(id(i))]
            self.known[id(node)] = _combine(found)
            self.alive.append(node)
        return self.known[id(t)]

    def set(self, t, value):
        self.known[id(t)] = value
        self.alive.append(t)


def _combine(found):
    if not found:
        return None
    rf = tuple(max(f[0][a] for f in found) for a in range(len(found[0][0])))
    jump = tuple(max(f[1][a] for f in found) for a in range(len(found[0][1])))
    return rf, jump


def _advance(field_in, geom):
    rf, jump = field_in
    jump = tuple(j / l for j, l in zip(jump, geom.input_dilation))  # samples j / l apart
    rf = tuple(r + d * (k - 1) * j for r, d, k, j in zip(rf, geom.dilation, geom.kernel, jump))
    return rf, tuple(j * s for j, s in zip(jump, geom.stride))


def _shape_of(out):
    if isinstance(out, Tensor):
        return tuple(out.shape)
    if isinstance(out, (tuple, list, TensorTuple)):
        return tuple(_shape_of(o) for o in out)
    return ()


def _first_tensor(args):
    for a in args:
        if isinstance(a, Tensor):
            return a
    return None


def summary(
    model: Module,
    input_shape,
    *,
    device=None,
    dtype="float32",
    print_fn: Optional[Callable[[str], None]] = print,
) -> ModelSummary:
    """Run ``model`` once on an input of ``input_shape`` (batch axis included) and report, per
    module call: output shape, parameters, multiply-accumulates, and for conv/pool layers the
    receptive field and jump (effective stride) in input pixels, with totals.

    Args:
        model: a ``needle.nn.Module``.
        input_shape: full input shape, e.g. ``(1, 3, 32, 32)``; MACs are for this whole batch.
        device, dtype: of the dummy input (use the model's).
        print_fn: called with the formatted table; ``None`` to only return it.

    Returns:
        ``ModelSummary`` with ``.rows`` (``LayerRow`` objects), ``.total_params`` and
        ``.total_macs``; ``str(result)`` is the table.

    Raises:
        TypeError: ``model`` is not a Module.  ValueError: a bad ``input_shape``.
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be a needle.nn.Module, got {type(model).__name__}")
    input_shape = tuple(input_shape)
    if not input_shape or any(not isinstance(d, (int, np.integer)) or d < 1 for d in input_shape):
        raise ValueError(f"summary: input_shape must be positive ints, got {input_shape}")
    names, modules = _walk_modules(model)
    rows: List[LayerRow] = []
    stack: List[int] = []
    x = Tensor(
        np.random.RandomState(0).rand(*input_shape).astype(dtype),
        device=device,
        dtype=dtype,
        requires_grad=True,
    )
    tracker = _FieldTracker(x, max(len(input_shape) - 2, 0))

    def wrap(module):
        original = module.forward

        def forward(*args, **kwargs):
            row = LayerRow(
                names.get(id(module), type(module).__name__),
                type(module).__name__,
                len(stack),
                _is_leaf(module),
            )
            rows.append(row)
            stack.append(id(module))
            try:
                out = original(*args, **kwargs)
            finally:
                stack.pop()
            _record(row, module, _first_tensor(args), out, tracker)
            return out

        return forward

    training = [(m, m.training) for m in modules]
    grad_enabled = autograd._GRAD_ENABLED
    try:
        for m in modules:
            m.forward = wrap(m)
        model.eval()
        autograd._GRAD_ENABLED = True  # the graph is what carries receptive fields past adds
        out = model(x)
    finally:
        autograd._GRAD_ENABLED = grad_enabled
        for m, flag in training:
            m.__dict__.pop("forward", None)
            m.training = flag
    unique = {id(p): p for p in model.parameters()}.values()
    total_params = sum(_prod(p.shape) for p in unique)
    bytes_ = sum(_prod(p.shape) * np.dtype(p.dtype).itemsize for p in unique)
    result = ModelSummary(
        rows, input_shape, _shape_of(out), total_params, sum(r.macs for r in rows if r.leaf), bytes_
    )
    if print_fn is not None:
        print_fn(str(result))
    return result


def _record(row, module, x, out, tracker):
    row.input_shape = tuple(x.shape) if x is not None else ()
    row.output_shape = _shape_of(out)
    if row.leaf:
        row.params = _params_of(module)
    geom = _geometry(module, row.input_shape) if x is not None else None
    if isinstance(out, Tensor) and len(row.output_shape) >= 1:
        row.macs = _macs(module, geom, row.input_shape, row.output_shape) if row.leaf else 0
    if geom is None or not isinstance(out, Tensor) or tracker.nsp != len(geom.kernel):
        return
    row.config = _config(module, geom)
    field_in = tracker.resolve(x)
    if field_in is None:
        return
    field_out = _advance(field_in, geom)
    tracker.set(out, field_out)
    row.receptive_field, row.jump = field_out


def _num(v):
    if isinstance(v, Fraction) and v.denominator != 1:
        return f"{float(v):.3g}"
    return str(int(v))


def _axes(t):
    if t is None:
        return ""
    return _num(t[0]) if len(set(t)) == 1 else "x".join(_num(v) for v in t)


def _format(s: ModelSummary):
    header = ("Layer (type)", "Config", "Output shape", "Params", "MACs", "RF", "Jump")
    lines = []
    for r in s.rows:
        label = "  " * r.depth + (f"{r.name.rsplit('.', 1)[-1]}: " if r.name else "") + r.kind
        shape = str(r.output_shape).replace(" ", "")
        params = f"{r.params:,}" if r.leaf else ""
        macs = f"{r.macs:,}" if r.leaf else ""
        lines.append(
            (label, r.config, shape, params, macs, _axes(r.receptive_field), _axes(r.jump))
        )
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h)
        for i, h in enumerate(header)
    ]
    align = "<<<>>>>"

    def fmt(cols):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cols, align, widths)).rstrip()

    rule = "-" * len(fmt(tuple("x" * w for w in widths)))
    out = [rule, fmt(header), rule, *(fmt(line) for line in lines), rule]
    out.append(f"Input shape: {s.input_shape}   Output shape: {s.output_shape}")
    out.append(f"Total params: {s.total_params:,} ({s.param_bytes / 2**20:.2f} MiB)")
    out.append(f"Total MACs: {s.total_macs:,} ({s.total_macs / 1e6:.2f} M) for this input")
    out.append(rule)
    return "\n".join(out)
