"""Optimizers (SGD, Adam), learning-rate schedules and gradient clipping.

Updates run on the parameters' raw arrays and replace them (``p.cached_data = new``): no
graph is recorded and ``p.grad`` is never modified in place.  Optimizer state
(momentum/moment buffers, step count) round-trips through ``state_dict()`` /
``load_state_dict()``, so a resumed run continues exactly.
"""

import math
from typing import Any, Dict, Iterable

import numpy as np

from .autograd import Tensor
from .backend_selection import array_api

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "clip_grad_norm",
    "LRScheduler",
    "StepLR",
    "CosineAnnealingLR",
    "OneCycleLR",
]


def _as_array(value: Any, like):
    """``value`` (Tensor, NDArray or NumPy array) as a backend array on ``like``'s device/dtype."""
    if isinstance(value, Tensor):
        value = value.numpy()
    return Tensor(np.asarray(value), device=like.device, dtype=like.dtype).realize_cached_data()


def _cast(array, dtype):
    return array if array.dtype == dtype else array.astype(dtype)


class Optimizer:
    """Holds a list of parameters; subclasses implement ``step``."""

    def __init__(self, params: Iterable[Tensor]):
        self.params = list(params)

    def step(self):
        raise NotImplementedError()

    def reset_grad(self):
        """Forget every parameter's gradient (``p.grad = None``)."""
        for p in self.params:
            p.grad = None

    zero_grad = reset_grad

    def clip_grad_norm(self, max_norm=0.25):
        """Scale the gradients so their global L2 norm is at most ``max_norm``."""
        return clip_grad_norm(self.params, max_norm)

    # --- state ------------------------------------------------------------------------
    _hyper: tuple = ()
    _buffers: tuple = ()

    def state_dict(self) -> Dict[str, Any]:
        """Hyper-parameters, step counters and per-parameter buffers (keyed by position)."""
        state = {name: getattr(self, name) for name in self._hyper}
        index = {id(p): str(i) for i, p in enumerate(self.params)}
        for name in self._buffers:
            state[name] = {
                index[id(p)]: Tensor.make_const(buf) for p, buf in getattr(self, name).items()
            }
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (buffers land on each parameter's device)."""
        expected = set(self._hyper) | set(self._buffers)
        if set(state) != expected:
            raise KeyError(
                f"{type(self).__name__}.load_state_dict: expected keys {sorted(expected)}, "
                f"got {sorted(state)}"
            )
        for name in self._hyper:
            setattr(self, name, state[name])
        for name in self._buffers:
            buffers = {}
            for key, value in state[name].items():
                i = int(key)
                if not 0 <= i < len(self.params):
                    raise KeyError(
                        f"{type(self).__name__}.load_state_dict: {name} entry {key} but only "
                        f"{len(self.params)} parameters"
                    )
                p = self.params[i]
                array = _as_array(value, p)
                if tuple(array.shape) != p.shape:
                    raise ValueError(
                        f"{type(self).__name__}.load_state_dict: {name}[{key}] has shape "
                        f"{tuple(array.shape)}, parameter {i} has shape {p.shape}"
                    )
                buffers[p] = array
            setattr(self, name, buffers)


class SGD(Optimizer):
    """Stochastic gradient descent with the course's damped momentum and L2 weight decay.

    For each parameter p with gradient ∇p (u starts at 0):
        g = ∇p + weight_decay·p
        u ← momentum·u + (1 − momentum)·g
        p ← p − lr·u
    (the (1 − momentum) damping is the course's definition, not PyTorch's).
    """

    _hyper = ("lr", "momentum", "weight_decay")
    _buffers = ("u",)

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(params)
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.u = {}

    def step(self):
        for p in self.params:
            if getattr(p, "grad", None) is None:
                continue
            data = p.realize_cached_data()
            grad = _cast(p.grad.realize_cached_data(), data.dtype)
            if self.weight_decay:
                grad = grad + data * self.weight_decay
            if self.momentum:
                previous = self.u.get(p)
                if previous is None:
                    update = grad * (1 - self.momentum)
                else:
                    update = previous * self.momentum + grad * (1 - self.momentum)
                self.u[p] = update
            else:
                update = grad
            p.cached_data = data - update * self.lr


def _sqrt(array):
    # NDArray's sqrt is a plain kernel; ** 0.5 would call pow (~15x slower on the CPU backend).
    return array_api.sqrt(array)


def _shared_device_dtype(datas):
    """(device, dtype) of arrays that all share one, else None (no flat update for them)."""
    device_of = array_api.device_of
    device, dtype = device_of(datas[0]), datas[0].dtype
    if any(device_of(d) != device or d.dtype != dtype for d in datas):
        return None
    return device, dtype


def _reserve_flat_buffers(params, copies):
    """Put ``copies`` buffers of the parameters' total size into the backend's buffer pool
    (allocated and released: the CPU pool maps large ones with their pages filled), so that
    the first step's flat buffers are reused ones."""
    if not params:
        return
    datas = [p.realize_cached_data() for p in params]
    shared = _shared_device_dtype(datas)
    if shared is None or "adam_step" not in shared[0].__dict__:
        return
    device, dtype = shared
    total = sum(d.size for d in datas)
    buffers = [device.empty((total,), dtype) for _ in range(copies)]
    del buffers  # back to the pool


def _adam_update(m, v, step_size, correction2, eps):
    """step_size·m / (√(v / correction2) + eps), step_size = lr / (1 − β₁ᵗ)."""
    return m * step_size / (_sqrt(v / correction2) + eps)


class Adam(Optimizer):
    """Adam with bias correction; weight decay is added to the gradient (L2, not decoupled).

    With step count t (incremented once per ``step()``) and m, v starting at 0:
        g = ∇p + weight_decay·p
        m ← β₁·m + (1 − β₁)·g;        v ← β₂·v + (1 − β₂)·g²
        m̂ = m / (1 − β₁ᵗ);            v̂ = v / (1 − β₂ᵗ)
        p ← p − lr·m̂ / (√v̂ + eps)

    When every parameter has a gradient and all share one device and dtype (the usual
    training step), the update runs once over flat buffers holding all parameters and their
    moments (a dozen kernel calls instead of a dozen per parameter); the values are the same.
    """

    _hyper = ("lr", "beta1", "beta2", "eps", "weight_decay", "t")
    _buffers = ("m", "v")

    def __init__(self, params, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(params)
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weight_decay = weight_decay
        self.t = 0
        self.m = {}
        self.v = {}
        # The flat update's buffers (parameters, gradient, two moments, old and new) exist
        # from the start: the first step does not pay for fresh memory.
        _reserve_flat_buffers(self.params, copies=7)

    # m and v read as {parameter: array}; while the flat buffers are in use they are views.
    @property
    def m(self):
        return self._moments(0)

    @m.setter
    def m(self, value):
        self._unflatten()
        self._m = value

    @property
    def v(self):
        return self._moments(1)

    @v.setter
    def v(self, value):
        self._unflatten()
        self._v = value

    def _moments(self, which):
        flat = self.__dict__.get("_flat")
        if flat is None:
            return self._m if which == 0 else self._v
        buf = flat["m"] if which == 0 else flat["v"]
        return {p: buf[o : o + n].reshape(p.shape) for p, o, n in flat["slots"]}

    def _unflatten(self):
        """Back to per-parameter moment dicts (views of the flat buffers)."""
        if self.__dict__.get("_flat") is not None:
            m, v = self._moments(0), self._moments(1)
            self._flat = None
            self._m, self._v = m, v

    def step(self):
        self.t += 1
        if self._flat_step():
            return
        self._unflatten()
        b1, b2 = self.beta1, self.beta2
        correction1 = 1 - b1**self.t
        correction2 = 1 - b2**self.t
        for p in self.params:
            if getattr(p, "grad", None) is None:
                continue
            data = p.realize_cached_data()
            grad = _cast(p.grad.realize_cached_data(), data.dtype)
            if self.weight_decay:
                grad = grad + data * self.weight_decay
            m, v = self._m.get(p), self._v.get(p)
            m = grad * (1 - b1) if m is None else m * b1 + grad * (1 - b1)
            v = grad * grad * (1 - b2) if v is None else v * b2 + grad * grad * (1 - b2)
            self._m[p], self._v[p] = m, v
            p.cached_data = data - _adam_update(m, v, self.lr / correction1, correction2, self.eps)

    def _flat_step(self):
        """The update over flat buffers; False (nothing done) when it does not apply."""
        if not self.params:
            return False
        datas = []
        for p in self.params:
            if getattr(p, "grad", None) is None:
                return False
            datas.append(p.realize_cached_data())
        shared = _shared_device_dtype(datas)
        if shared is None:
            return False
        device, dtype = shared
        flat = self.__dict__.get("_flat")
        if flat is None or len(flat["slots"]) != len(self.params):
            flat = self._flatten(datas, device, dtype)
        slots, data = flat["slots"], flat["data"]
        # Parameters whose array was replaced from outside (load_state_dict, p.data = ...)
        # are copied into the flat copy again.
        for (p, o, n), mine in zip(slots, flat["assigned"]):
            if p.cached_data is not mine:
                data[o : o + n] = p.cached_data.reshape((n,))
        grads = [_cast(p.grad.realize_cached_data(), dtype) for p in self.params]
        # Gradients that already lie one after another (needle.distributed's bucket, in the
        # parameters' order) are read in place; others are packed.
        grad = array_api.flat_view(grads)
        if grad is None:
            grad = array_api.concat_flat(grads)
        b1, b2 = self.beta1, self.beta2
        step_size, correction2 = self.lr / (1 - b1**self.t), 1 - b2**self.t
        if "adam_step" in device.__dict__:  # the backend's one-pass kernel
            hyper = [step_size, b1, b2, correction2, self.eps, self.weight_decay]
            m, v = device.empty(data.shape, dtype), device.empty(data.shape, dtype)
            new_data = device.empty(data.shape, dtype)
            device.adam_step(data._handle, grad._handle, flat["m"]._handle, flat["v"]._handle,
                             hyper, new_data._handle, m._handle, v._handle)
            data = new_data
        else:
            if self.weight_decay:
                grad = grad + data * self.weight_decay
            m = flat["m"] * b1 + grad * (1 - b1)
            v = flat["v"] * b2 + grad * grad * (1 - b2)
            data = data - _adam_update(m, v, step_size, correction2, self.eps)
        flat["m"], flat["v"], flat["data"] = m, v, data
        pieces = array_api.split_flat(data, flat["shapes"])
        for p, piece in zip(self.params, pieces):
            p.cached_data = piece
        flat["assigned"] = pieces
        return True

    def _flatten(self, datas, device, dtype):
        """Flat parameter and moment buffers, the moments from the per-parameter dicts."""
        slots, offset = [], 0
        for p, d in zip(self.params, datas):
            slots.append((p, offset, d.size))
            offset += d.size
        data = array_api.concat_flat(datas)
        m = device.full((offset,), 0.0, dtype)
        v = device.full((offset,), 0.0, dtype)
        for p, o, n in slots:
            for flat_buf, moments in ((m, self._m), (v, self._v)):
                if moments.get(p) is not None:
                    moment = array_api.compact(_cast(moments[p], dtype))
                    flat_buf[o : o + n] = moment.reshape((n,))
        flat = {"slots": slots, "shapes": [d.shape for d in datas], "data": data, "m": m,
                "v": v, "assigned": datas}
        self._flat = flat
        return flat


def _sum_of_squares(array) -> float:
    return float(np.asarray((array * array).sum()))


def clip_grad_norm(parameters: Iterable[Tensor], max_norm: float, eps: float = 1e-6) -> float:
    """Scale all gradients by min(1, max_norm / (‖g‖ + eps)), ‖g‖ the global L2 norm.

    Gradients are replaced by scaled copies (never changed in place).  Parameters without
    a gradient are skipped.  Returns the norm before clipping.
    """
    if max_norm < 0:
        raise ValueError(f"clip_grad_norm: max_norm must be >= 0, got {max_norm}")
    params = [p for p in parameters if getattr(p, "grad", None) is not None]
    total = math.sqrt(sum(_sum_of_squares(p.grad.realize_cached_data()) for p in params))
    scale = max_norm / (total + eps)
    if scale < 1:
        for p in params:
            p.grad = Tensor.make_const(p.grad.realize_cached_data() * scale)
    return total


class LRScheduler:
    """Sets ``optimizer.lr`` from the number of ``step()`` calls so far.

    ``base_lr`` is the optimizer's learning rate at construction; ``last_epoch`` counts the
    steps taken; call ``step()`` once per epoch (or per batch, for OneCycleLR).
    """

    def __init__(self, optimizer: Optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0
        self.optimizer.lr = self.get_lr()

    def get_lr(self) -> float:
        raise NotImplementedError()

    def step(self) -> None:
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr()

    def get_last_lr(self) -> float:
        return self.optimizer.lr

    def state_dict(self) -> Dict[str, Any]:
        return {"base_lr": self.base_lr, "last_epoch": self.last_epoch}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.base_lr = state["base_lr"]
        self.last_epoch = state["last_epoch"]
        self.optimizer.lr = self.get_lr()


class StepLR(LRScheduler):
    """lr = base_lr · gamma^⌊epoch / step_size⌋."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer)

    def get_lr(self):
        return self.base_lr * self.gamma ** (self.last_epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr − eta_min)·(1 + cos(π·epoch / T_max)) / 2 (held after T_max)."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer)

    def get_lr(self):
        t = min(self.last_epoch, self.T_max)
        return (
            self.eta_min
            + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
        )


class OneCycleLR(LRScheduler):
    """The one-cycle policy (PyTorch's cosine variant), stepped once per batch.

    Starts at max_lr / div_factor, rises to max_lr over the first pct_start·total_steps − 1
    steps, then falls to max_lr / (div_factor·final_div_factor) at step total_steps − 1,
    each phase along a half cosine: lr = end + (start − end)·(1 + cos(π·pct)) / 2.
    Raises ValueError when stepped beyond total_steps.
    """

    def __init__(
        self,
        optimizer,
        max_lr: float,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
    ):
        if total_steps < 2:
            raise ValueError(f"OneCycleLR: total_steps must be >= 2, got {total_steps}")
        if not 0 < pct_start < 1:
            raise ValueError(f"OneCycleLR: pct_start must be in (0, 1), got {pct_start}")
        self.max_lr = max_lr
        self.total_steps = total_steps
        self.initial_lr = max_lr / div_factor
        self.min_lr = self.initial_lr / final_div_factor
        self.phase_end = float(pct_start * total_steps) - 1
        super().__init__(optimizer)

    @staticmethod
    def _anneal(start, end, pct):
        return end + (start - end) * (1 + math.cos(math.pi * pct)) / 2

    def get_lr(self):
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(
                f"OneCycleLR: stepped {t} times, more than total_steps={self.total_steps}"
            )
        if self.phase_end > 0 and t <= self.phase_end:
            return self._anneal(self.initial_lr, self.max_lr, t / self.phase_end)
        start, last = max(self.phase_end, 0.0), self.total_steps - 1
        return self._anneal(self.max_lr, self.min_lr, min((t - start) / (last - start), 1.0))
