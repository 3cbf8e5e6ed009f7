"""Reverse-mode automatic differentiation: Value, Tensor, TensorTuple, Op and backward.

A ``Tensor`` is a node of a computation graph: a leaf (``op is None``) or the output of an
``Op`` applied to input tensors.  Forward values are computed eagerly.  ``backward()``
walks the graph in reverse topological order and asks each op for the gradient of its
inputs; gradients are built from needle ops, so they are Tensors that can be
differentiated again (grad of grad).
"""

import gc
import weakref
from contextlib import contextmanager
from typing import List, Optional, Tuple, Union

import numpy

from .backend_selection import Device, NDArray, array_api, default_device

_GRAD_ENABLED = True
# The strided backend's array class: for it the common two-input case has its device and
# dtype compared inline (no call); other inputs go through the backend's check_compatible.
_STRIDED = getattr(array_api, "NDArray", None)


@contextmanager
def no_grad():
    """Inside this context ops record no graph: every result is a constant leaf."""
    global _GRAD_ENABLED
    previous, _GRAD_ENABLED = _GRAD_ENABLED, False
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


@contextmanager
def enable_grad():
    """Record the graph again inside a ``no_grad()`` block (as ``torch.enable_grad``)."""
    global _GRAD_ENABLED
    previous, _GRAD_ENABLED = _GRAD_ENABLED, True
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


def __getattr__(name):
    # The course's ``TENSOR_COUNTER`` (how many Values are alive; its tests read it to check
    # that training loops do not keep graphs) is counted when it is read, from the collector's
    # list of objects.  A count kept by ``Value.__del__`` would run Python code whenever a
    # tensor is freed: slower, and a Ctrl-C arriving there is printed and lost.
    if name == "TENSOR_COUNTER":
        return sum(1 for obj in gc.get_objects() if issubclass(type(obj), Value))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_grad_enabled():
    return _GRAD_ENABLED


class Op:
    """An operator: ``compute`` on backend arrays, ``gradient`` in needle ops."""

    def __call__(self, *args):
        raise NotImplementedError()

    def compute(self, *args: Tuple[NDArray]):
        """The forward value from the inputs' backend arrays."""
        raise NotImplementedError()

    def gradient(self, out_grad: "Value", node: "Value") -> Union["Value", Tuple["Value"]]:
        """The partial adjoint for each input, given the output's adjoint ``out_grad``.

        An entry may be None for an input that does not require a gradient.
        """
        raise NotImplementedError()

    def gradient_as_tuple(self, out_grad: "Value", node: "Value") -> Tuple["Value"]:
        """``gradient`` as a tuple, whatever the op returned."""
        output = self.gradient(out_grad, node)
        if isinstance(output, tuple):
            return output
        if isinstance(output, list):
            return tuple(output)
        return (output,)


class Value:
    """A node of the graph (the common base of Tensor and TensorTuple)."""

    op: Optional[Op]
    inputs: List["Value"]
    cached_data: NDArray
    requires_grad: bool
    # Hooks run when backward() has set this leaf's .grad (register_post_accumulate_grad_hook).
    _grad_hooks = ()

    def realize_cached_data(self):
        """The node's backing array (the live storage object), computed once."""
        if self.cached_data is not None:
            return self.cached_data
        self.cached_data = self.op.compute(*[x.realize_cached_data() for x in self.inputs])
        return self.cached_data

    def is_leaf(self):
        return self.op is None

    def _init(self, op, inputs, *, num_outputs=1, cached_data=None, requires_grad=None):
        if requires_grad is None:
            requires_grad = any(x.requires_grad for x in inputs)
        self.op = op
        self.inputs = inputs
        self.num_outputs = num_outputs
        self.cached_data = cached_data
        self.requires_grad = requires_grad

    @classmethod
    def make_const(cls, data, requires_grad=False):
        """A leaf around an existing backend array (or a Value's data)."""
        value = cls.__new__(cls)
        if isinstance(data, Value):
            data = data.realize_cached_data()
        value._init(None, [], cached_data=data, requires_grad=requires_grad)
        return value

    @classmethod
    def make_from_op(cls, op: Op, inputs: List["Value"]):
        return _make_from_op(cls, op, inputs)


# The path from an op call to its kernel runs for every op of every step: it is written for
# speed (no generator expressions, the compute inputs read straight from ``cached_data``).
def _make_from_op(cls, op, inputs):
    if len(inputs) == 2:
        a, b = inputs
        a = a.realize_cached_data() if a.cached_data is None else a.cached_data
        b = b.realize_cached_data() if b.cached_data is None else b.cached_data
        if not (
            a.__class__ is _STRIDED
            and b.__class__ is _STRIDED
            and a._device is b._device
            and a._handle.dtype == b._handle.dtype
        ):
            _check_compatible(op, inputs)
    elif len(inputs) > 2:
        _check_compatible(op, inputs)
    if _GRAD_ENABLED:
        for x in inputs:
            if x.requires_grad:
                value = _new_value(cls)
                value._init(op, inputs, requires_grad=True)
                value.realize_cached_data()
                return value
    # Nothing upstream needs a gradient: a constant leaf, no graph recorded (``_init``
    # written out).
    if len(inputs) == 2:
        data = op.compute(a, b)
    else:
        data = op.compute(*[x.realize_cached_data() if x.cached_data is None else x.cached_data
                            for x in inputs])
    value = _new_value(cls)
    value.op = None
    value.inputs = []
    value.num_outputs = 1
    value.cached_data = data
    value.requires_grad = False
    return value


_new_value = object.__new__


def _check_compatible(op, inputs):
    """All tensor inputs of one op must share a device and a dtype (as the backend says)."""
    first = inputs[0].cached_data
    if first is None:
        first = inputs[0].realize_cached_data()
    for x in inputs[1:]:
        data = x.cached_data
        if data is None:
            data = x.realize_cached_data()
        if isinstance(data, tuple) or isinstance(first, tuple):
            continue
        array_api.check_compatible(type(op).__name__, first, data)


class TensorOp(Op):
    """An op whose output is a Tensor."""

    def __call__(self, *args):
        return _make_from_op(Tensor, self, args)


class TensorTupleOp(Op):
    """An op whose output is a TensorTuple."""

    def __call__(self, *args):
        return TensorTuple.make_from_op(self, args)


class TensorTuple(Value):
    """A tuple of arrays as one graph node (the output of split, the input of stack)."""

    def __len__(self):
        return len(self.realize_cached_data())

    def __getitem__(self, index: int):
        return ops.tuple_get_item(self, index)

    def tuple(self):
        return tuple(self[i] for i in range(len(self)))

    def __repr__(self):
        return "needle.TensorTuple" + str(self.tuple())

    def __str__(self):
        return self.__repr__()

    def __add__(self, other):
        if not isinstance(other, TensorTuple) or len(self) != len(other):
            raise ValueError("TensorTuple + needs another TensorTuple of the same length")
        return ops.make_tuple(*[self[i] + other[i] for i in range(len(self))])

    def detach(self):
        return TensorTuple.make_const(self.realize_cached_data())

    @property
    def device(self):
        return array_api.device_of(self.realize_cached_data()[0]) if len(self) else default_device()


class Tensor(Value):
    """An n-dimensional array that records the operations applied to it."""

    grad: "Tensor"
    # (weakref to the output, its out_grad, weakref to the node) for a gradient that a
    # graph-less backward pass produced; see backward().
    _grad_source = None

    def __init__(
        self, array, *, device: Optional[Device] = None, dtype=None, requires_grad=True, **kwargs
    ):
        if isinstance(array, Tensor):
            if device is None:
                device = array.device
            if dtype is None:
                dtype = array.dtype
            if device == array.device and dtype == array.dtype:
                cached_data = array.realize_cached_data()
            else:
                cached_data = array_api.array_from(array.numpy(), device, dtype)
        else:
            cached_data = array_api.array_from(array, device, dtype)
        self._init(None, [], cached_data=cached_data, requires_grad=requires_grad)

    @staticmethod
    def make_from_op(op: Op, inputs: List["Value"]):
        return _make_from_op(Tensor, op, inputs)

    @staticmethod
    def make_const(data, requires_grad=False):
        return Value.make_const.__func__(Tensor, data, requires_grad=requires_grad)

    # --- data ---------------------------------------------------------------------------
    @property
    def data(self):
        return self.detach()

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data must be set to a Tensor, got {type(value).__name__}")
        if value.dtype != self.dtype:
            raise TypeError(f"Tensor.data: dtype {value.dtype} does not match {self.dtype}")
        self.cached_data = value.realize_cached_data()

    def detach(self):
        """A constant leaf sharing this tensor's storage."""
        return Tensor.make_const(self.realize_cached_data())

    @property
    def shape(self):
        data = self.cached_data
        shape = (self.realize_cached_data() if data is None else data).shape
        return shape if shape.__class__ is tuple else tuple(shape)

    @property
    def dtype(self):
        return self.realize_cached_data().dtype

    @property
    def device(self):
        return array_api.device_of(self.realize_cached_data())

    @property
    def ndim(self):
        return len(self.shape)

    def numpy(self):
        return array_api.to_numpy(self.realize_cached_data())

    def __array__(self, dtype=None, copy=None):
        out = numpy.asarray(self.numpy())
        return out if dtype is None else out.astype(dtype)

    def item(self):
        return self.numpy().item()

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return "needle.Tensor(" + str(self.realize_cached_data()) + ")"

    def __str__(self):
        return self.realize_cached_data().__str__()

    # --- backward -----------------------------------------------------------------------
    def backward(self, out_grad: Optional["Tensor"] = None, create_graph: bool = False):
        """Set ``.grad`` of every node this tensor depends on.

        ``out_grad`` defaults to ones of this tensor's shape.  Each call overwrites the
        ``.grad`` fields it reaches (the course's semantics).  As in PyTorch, the gradients
        are computed without recording a graph unless ``create_graph=True``; then they are
        Tensors built from ops and can be differentiated again.

        The course's grad-of-grad idiom still works with the default: calling ``backward()``
        on a gradient from a graph-less pass (``y.backward(); x.grad.backward()``) first redoes
        that pass with ``create_graph=True`` (while its output ``y`` is alive), then
        differentiates the recorded gradient.
        """
        source = self._grad_source
        if source is not None:
            self._backward_from_source(source, out_grad)
            return
        if out_grad is None:
            out_grad = _full_like(self, 1.0)
        if create_graph:
            compute_gradient_of_variables(self, out_grad)
        else:
            with no_grad():
                compute_gradient_of_variables(self, out_grad, source=(self, out_grad))

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(self)`` each time ``backward()`` has set this leaf's ``.grad`` (as
        PyTorch's method of that name).  The hook may read or replace ``self.grad``; its
        return value is ignored.  Hooks run in the order they were registered, as soon as the
        pass has summed the leaf's gradient, while it goes on through the rest of the graph.
        ``needle.grad`` sets no ``.grad`` and runs no hooks.

        Returns a handle whose ``remove()`` unregisters the hook.

        Raises:
            RuntimeError: the tensor is not a leaf that requires a gradient.
        """
        if not (self.is_leaf() and self.requires_grad):
            raise RuntimeError(
                "register_post_accumulate_grad_hook: only a leaf tensor that requires a "
                f"gradient has one (this one: leaf={self.is_leaf()}, "
                f"requires_grad={self.requires_grad})"
            )
        global _ANY_GRAD_HOOKS
        _ANY_GRAD_HOOKS = True
        self._grad_hooks = self._grad_hooks + (hook,)
        return _HookHandle(self, hook)

    def _backward_from_source(self, source, out_grad):
        """Differentiate a gradient that a graph-less backward pass produced (see backward)."""
        output_ref, root_grad, node_ref = source
        output, node = output_ref(), node_ref()
        if output is None or node is None:
            raise RuntimeError(
                "backward: this gradient was computed by backward() without a graph and the "
                "tensors it came from are gone; use backward(create_graph=True) to "
                "differentiate gradients"
            )
        with enable_grad():  # (also when called inside no_grad(): the pass must be recorded)
            compute_gradient_of_variables(output, root_grad)
            node.grad.backward(out_grad, create_graph=True)

    # --- operators (the graph shapes follow the course: a - b is add(a, negate(b))) -----
    def __add__(self, other):
        if isinstance(other, Tensor):
            return _make_from_op(Tensor, ops.EWiseAdd(), (self, other))
        return ops.AddScalar(other)(self)

    def __mul__(self, other):
        if isinstance(other, Tensor):
            return _make_from_op(Tensor, ops.EWiseMul(), (self, other))
        return ops.MulScalar(other)(self)

    def __pow__(self, other):
        if isinstance(other, Tensor):
            return ops.EWisePow()(self, other)
        return ops.PowerScalar(other)(self)

    def __rpow__(self, other):
        return ops.exp(self * float(numpy.log(other)))

    def __sub__(self, other):
        if isinstance(other, Tensor):
            return ops.EWiseAdd()(self, ops.Negate()(other))
        return ops.AddScalar(-other)(self)

    def __rsub__(self, other):
        return ops.AddScalar(other)(ops.Negate()(self))

    def __truediv__(self, other):
        if isinstance(other, Tensor):
            return ops.EWiseDiv()(self, other)
        return ops.DivScalar(other)(self)

    def __rtruediv__(self, other):
        return ops.MulScalar(other)(ops.PowerScalar(-1)(self))

    def __matmul__(self, other):
        return ops.MatMul()(self, other)

    def matmul(self, other):
        return ops.MatMul()(self, other)

    def __rmatmul__(self, other):
        return ops.MatMul()(other, self)

    def __neg__(self):
        return ops.Negate()(self)

    def __getitem__(self, index):
        return ops.get_item(self, index)

    def sum(self, axes=None, keepdims=False):
        out = ops.Summation(axes)(self)
        if keepdims:
            out = out.reshape(_kept_shape(self.shape, axes))
        return out

    def broadcast_to(self, shape):
        return ops.BroadcastTo(shape)(self)

    def reshape(self, shape):
        return ops.Reshape(shape)(self)

    def transpose(self, axes=None):
        return ops.Transpose(axes)(self)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def relu(self):
        return ops.relu(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def sqrt(self):
        return ops.sqrt(self)

    __radd__ = __add__
    __rmul__ = __mul__


def _kept_shape(shape, axes):
    if axes is None:
        return (1,) * len(shape)
    axes = (axes,) if isinstance(axes, int) else axes
    axes = {a % len(shape) for a in axes}
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _full_like(tensor, value):
    return Tensor.make_const(array_api.full_like(tensor.realize_cached_data(), value))


def compute_gradient_of_variables(output_tensor, out_grad, source=None):
    """Reverse-mode differentiation: set ``.grad`` on every node ``output_tensor`` depends on.

    ``source`` (output, out_grad), given by a graph-less ``backward``, is remembered by each
    gradient so that the course's ``x.grad.backward()`` can redo the pass with a graph.
    """
    if source is not None:
        source = (weakref.ref(source[0]), source[1])
    hooks = _ANY_GRAD_HOOKS  # (a pass in a program without hooks does not look for them)
    for node, node_grad in _reverse_pass(output_tensor, out_grad):
        node.grad = node_grad
        # (The output's own gradient is the caller's out_grad: left as it is.)
        if source is not None and node is not output_tensor and isinstance(node_grad, Tensor):
            node_grad._grad_source = (*source, weakref.ref(node))
        if hooks and node._grad_hooks:
            for hook in node._grad_hooks:
                hook(node)


_ANY_GRAD_HOOKS = False  # set for good by the first register_post_accumulate_grad_hook


class _HookHandle:
    """What ``register_post_accumulate_grad_hook`` returns: ``remove()`` unregisters."""

    def __init__(self, tensor, hook):
        self._tensor, self._hook = weakref.ref(tensor), hook

    def remove(self):
        tensor = self._tensor()
        if tensor is not None and self._hook in tensor._grad_hooks:
            hooks = list(tensor._grad_hooks)
            hooks.remove(self._hook)
            tensor._grad_hooks = tuple(hooks)


def grad(output, inputs, out_grad=None):
    """The gradients of ``output`` with respect to each of ``inputs``, as a list.

    Like ``torch.autograd.grad``: no ``.grad`` field is set, and the walk stops at ``inputs``
    (their own inputs are not visited).  The gradients are recorded as a graph unless inside
    ``no_grad()``.  An input that ``output`` does not depend on gets None.
    """
    if out_grad is None:
        out_grad = _full_like(output, 1.0)
    wanted = {id(x) for x in inputs}
    found = {}
    for node, node_grad in _reverse_pass(output, out_grad, stop=wanted):
        if id(node) in wanted:
            found[id(node)] = node_grad
    return [found.get(id(x)) for x in inputs]


def formula_gradient(formula, inputs, directions):
    """The gradients, with respect to ``inputs``, of sum_k <formula(*inputs)[k], directions[k]>.

    How a fused gradient op differentiates the formula it computes (second derivatives):
    ``formula`` writes that computation in needle ops and returns a Tensor or a tuple of them.
    Its graph is recorded even inside ``no_grad()`` (it is what is differentiated); the
    returned gradients are recorded as the caller's mode says.
    """
    with enable_grad():
        values = formula(*inputs)
        values = values if isinstance(values, tuple) else (values,)
        total = None
        for value, direction in zip(values, directions):
            term = ops.summation(value * direction)
            total = term if total is None else total + term
    return tuple(grad(total, list(inputs)))


def _reverse_pass(output, out_grad, stop=()):
    """Yield (node, its summed gradient) in reverse topological order from ``output``.

    Nodes whose ``id`` is in ``stop`` are treated as leaves: the pass does not go past them.
    """
    partials = {output: [out_grad]}
    for node in reversed(find_topo_sort([output], stop)):
        node_partials = partials.pop(node, None)
        if node_partials is None:
            continue
        node_grad = sum_node_list(node_partials)
        yield node, node_grad
        if node.op is None or id(node) in stop:
            continue
        in_grads = node.op.gradient_as_tuple(node_grad, node)
        _check_gradients(node, in_grads)
        for inp, in_grad in zip(node.inputs, in_grads):
            if in_grad is not None and inp.requires_grad:
                partials.setdefault(inp, []).append(in_grad)


def _check_gradients(node, in_grads):
    """Each op must return one gradient per input, shaped like that input (STYLE R2)."""
    if len(in_grads) != len(node.inputs):
        raise RuntimeError(
            f"{type(node.op).__name__}.gradient returned {len(in_grads)} gradients for "
            f"{len(node.inputs)} inputs"
        )
    for i, (inp, grad) in enumerate(zip(node.inputs, in_grads)):
        if grad is None or not isinstance(inp, Tensor) or not isinstance(grad, Tensor):
            continue
        if grad.shape != inp.shape:
            raise RuntimeError(
                f"{type(node.op).__name__}.gradient returned {grad.shape} for input {i} of "
                f"shape {inp.shape}"
            )


def find_topo_sort(node_list: List[Value], stop=()) -> List[Value]:
    """Nodes in post-order depth-first order: every input before its consumers.

    The inputs of a node whose ``id`` is in ``stop`` are not visited.
    """
    visited = set()
    topo_order = []
    for node in node_list:
        _topo_sort_dfs(node, visited, topo_order, stop)
    return topo_order


def _topo_sort_dfs(root, visited, topo_order, stop=()):
    # Iterative post-order DFS (deep graphs must not hit Python's recursion limit).
    if root in visited:
        return
    stack = [(root, iter(() if id(root) in stop else root.inputs))]
    visited.add(root)
    while stack:
        node, children = stack[-1]
        for child in children:
            if child not in visited:
                visited.add(child)
                stack.append((child, iter(() if id(child) in stop else child.inputs)))
                break
        else:
            stack.pop()
            topo_order.append(node)


def sum_node_list(node_list):
    """Sum a list of gradient Tensors with needle ops (so the sum stays differentiable)."""
    total = node_list[0]
    for node in node_list[1:]:
        total = total + node
    return total


from . import ops  # noqa: E402  (ops import the classes above)
