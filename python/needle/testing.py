"""Gradient checking: autograd gradients against central differences.

``gradcheck`` is the tool every op test uses, and the one to reach for when writing a new op.
"""

import numpy

from .autograd import Tensor, TensorTuple

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(RuntimeError):
    """An analytic gradient disagrees with the numerical one."""


def _outputs(out):
    """The output(s) of ``fn`` as a list of Tensors."""
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, TensorTuple):
        return list(out.tuple())
    if isinstance(out, (tuple, list)) and all(isinstance(o, Tensor) for o in out):
        return list(out)
    raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, got {type(out)}")


def _projection(fn, inputs, directions):
    """sum_k <fn(*inputs)[k], directions[k]> in float64."""
    # The graph is recorded (no no_grad()): fn may itself call backward (grad of grad).
    outs = _outputs(fn(*inputs))
    return sum(float(numpy.dot(o.numpy().astype(numpy.float64).ravel(), v.ravel()))
               for o, v in zip(outs, directions))


def _leaf(values, like, requires_grad=False):
    """A fresh compact leaf holding ``values`` on ``like``'s device, in ``like``'s dtype."""
    return Tensor(values.astype(like.dtype), device=like.device, dtype=like.dtype,
                  requires_grad=requires_grad)


def _analytic(fn, inputs, rng):
    """Random output directions and the autograd gradient of the projection per input."""
    leaves = [_leaf(x.numpy(), x, x.requires_grad) if isinstance(x, Tensor) else x
              for x in inputs]
    outs = _outputs(fn(*leaves))
    directions = [numpy.asarray(rng.standard_normal(o.shape)) for o in outs]
    live = [(o, v) for o, v in zip(outs, directions) if o.requires_grad]
    total = None
    if len(live) == 1:
        total = live[0][0]
        total.backward(_leaf(live[0][1], total), create_graph=False)
    elif live:
        # Several outputs: backpropagate the scalar sum of their projections.
        for o, v in live:
            term = (o * _leaf(v, o)).sum()
            total = term if total is None else total + term
        total.backward(create_graph=False)
    grads = []
    for x, leaf in zip(inputs, leaves):
        if not (isinstance(x, Tensor) and x.requires_grad):
            grads.append(None)
            continue
        grad = getattr(leaf, "grad", None) if total is not None else None
        grads.append(numpy.zeros(x.shape) if grad is None
                     else grad.numpy().astype(numpy.float64).reshape(x.shape))
    return directions, grads


def _fail(message, raise_exception):
    if raise_exception:
        raise GradcheckError(message)
    return False


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
              random_direction=False, seed=0):
    """Check the autograd gradients of ``fn`` against central differences.

    The output of ``fn`` (a Tensor, or a tuple/TensorTuple of Tensors) is projected on a
    random direction ``v`` to a scalar ``L = sum(fn(*inputs) * v)``.  For every input Tensor
    that requires a gradient, the autograd gradient of ``L`` is compared element by element
    with ``(L(x + eps e_j) - L(x - eps e_j)) / (2 eps)``, evaluated on fresh compact copies of
    the inputs (perturbing a broadcast view would move many elements at once) and summed in
    float64.  An element passes when ``|analytic - numeric| <= atol + rtol * |numeric|``.

    With ``random_direction=True`` (for large inputs, JAX ``check_grads`` style) all inputs
    are moved at once along one random direction ``d`` and the single directional derivative
    ``(L(x + eps d) - L(x - eps d)) / (2 eps)`` is compared with ``sum_i <grad_i, d_i>``.

    Use float64 inputs for the default tolerances; with float32, raise ``eps`` (~1e-3) and
    the tolerances (~1e-2).  Non-Tensor inputs are passed to ``fn`` unchanged.  The global
    NumPy random state is not touched (``seed`` drives a private generator).

    Args:
        fn: function of ``inputs`` returning a Tensor or a tuple of Tensors.
        *inputs: its arguments; the Tensors among them with ``requires_grad`` are checked.
        eps: finite-difference step.
        atol, rtol: absolute and relative tolerance.
        raise_exception: raise ``GradcheckError`` on failure (else return False).
        random_direction: check one random directional derivative instead of every element.
        seed: seed of the random output projection and direction.

    Returns:
        True when every checked gradient agrees.

    Raises:
        GradcheckError: naming the input index, the worst element, and both values.

    Example:
        >>> import numpy as np, needle as ndl
        >>> from needle.testing import gradcheck
        >>> x = ndl.Tensor(np.random.randn(3, 4), dtype="float64")
        >>> w = ndl.Tensor(np.random.randn(4, 2), dtype="float64")
        >>> gradcheck(lambda x, w: ndl.tanh(x @ w), x, w)
        True
    """
    rng = numpy.random.default_rng(seed)
    directions, grads = _analytic(fn, inputs, rng)
    values = [x.numpy().astype(numpy.float64) if isinstance(x, Tensor) else None for x in inputs]
    checked = [i for i, g in enumerate(grads) if g is not None]

    def loss(shifted):
        args = [_leaf(shifted[i], x, x.requires_grad) if isinstance(x, Tensor) else x
                for i, x in enumerate(inputs)]
        return _projection(fn, args, directions)

    if random_direction:
        steps = {i: rng.standard_normal(values[i].shape) for i in checked}
        plus = [v + eps * steps[i] if i in steps else v for i, v in enumerate(values)]
        minus = [v - eps * steps[i] if i in steps else v for i, v in enumerate(values)]
        numeric = (loss(plus) - loss(minus)) / (2 * eps)
        analytic = sum(float(numpy.sum(grads[i] * steps[i])) for i in checked)
        if abs(analytic - numeric) > atol + rtol * abs(numeric):
            return _fail(f"gradcheck: directional derivative along a random direction over "
                         f"inputs {checked}: analytic {analytic:.8g} vs numeric {numeric:.8g}",
                         raise_exception)
        return True

    for i in checked:
        numeric = numpy.zeros(values[i].shape)
        flat = numeric.reshape(-1)
        for j in range(flat.size):
            shifted = list(values)
            shifted[i] = values[i].copy()
            shifted[i].reshape(-1)[j] += eps
            up = loss(shifted)
            shifted[i].reshape(-1)[j] -= 2 * eps
            flat[j] = (up - loss(shifted)) / (2 * eps)
        excess = numpy.abs(grads[i] - numeric) - (atol + rtol * numpy.abs(numeric))
        if excess.size and excess.max() > 0:
            worst = numpy.unravel_index(int(numpy.argmax(excess)), excess.shape)
            bad = int((excess > 0).sum())
            return _fail(f"gradcheck: input {i} (shape {values[i].shape}): {bad} of {excess.size} "
                         f"elements differ; worst at index {tuple(int(k) for k in worst)}: "
                         f"analytic {grads[i][worst]:.8g} vs numeric {numeric[worst]:.8g} "
                         f"(atol={atol}, rtol={rtol})", raise_exception)
    return True
