"""The one checking helper op tests share: forward vs a reference, then gradcheck.

    from tests.checks import check_op
    check_op(ndl.tanh, np.tanh, x, device=device)

``check_op`` builds Tensors from NumPy inputs on ``device``, compares ``fn``'s forward
value(s) with ``ref`` on the float64 NumPy inputs, then checks every input gradient with
``needle.testing.gradcheck`` in float64 where the device has it (float32 with looser
tolerances otherwise, e.g. CUDA).  Failures name the output or input and the worst element.
"""

import numpy as np

import needle as ndl
from needle.testing import gradcheck

# Forward tolerances per dtype: (rtol, atol).
FORWARD_TOL = {"float32": (1e-5, 1e-5), "float64": (1e-10, 1e-12)}
# gradcheck settings per dtype: central differences in float64 are good to ~1e-8.
GRAD_TOL = {
    "float64": dict(eps=1e-6, atol=1e-5, rtol=1e-3),
    "float32": dict(eps=1e-3, atol=1e-2, rtol=1e-2),
}


def supports(device, dtype):
    """Whether ``device`` stores ``dtype`` (NumPy mode's device stores everything)."""
    return dtype in getattr(device, "dtypes", ("float32", "float64"))


def grad_dtype(device):
    """The dtype gradients are checked in on ``device``: float64 where it exists."""
    return "float64" if supports(device, "float64") else "float32"


def tensor(x, device, dtype="float32", requires_grad=True):
    """A Tensor holding NumPy array ``x`` on ``device``."""
    return ndl.Tensor(np.asarray(x), device=device, dtype=dtype, requires_grad=requires_grad)


def _as_list(out):
    if isinstance(out, ndl.TensorTuple):
        return list(out.tuple())
    if isinstance(out, (tuple, list)):
        return list(out)
    return [out]


def check_forward(fn, ref, *arrays, device, dtype="float32", rtol=None, atol=None):
    """``fn`` on Tensors of ``arrays`` equals ``ref`` on the float64 arrays; returns the output.

    Non-array arguments are passed to both unchanged.  Shapes must match exactly and the
    output keeps the input dtype.
    """
    default_rtol, default_atol = FORWARD_TOL[dtype]
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    args = [tensor(a, device, dtype) if isinstance(a, np.ndarray) else a for a in arrays]
    ref_args = [a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in arrays]
    out = fn(*args)
    outs, expected = _as_list(out), _as_list(ref(*ref_args))
    assert len(outs) == len(expected), f"{len(outs)} outputs, reference has {len(expected)}"
    for k, (o, e) in enumerate(zip(outs, expected)):
        e = np.asarray(e)
        assert o.shape == e.shape, f"output {k}: shape {o.shape}, reference {e.shape}"
        assert str(o.dtype) == dtype, f"output {k}: dtype {o.dtype}, expected {dtype}"
        if o.device != device:
            raise AssertionError(f"output {k} on {o.device}, inputs on {device}")
        np.testing.assert_allclose(
            o.numpy(), e, rtol=rtol, atol=atol, err_msg=f"forward output {k}"
        )
    return out


def check_grad(fn, *arrays, device, requires_grad=None, random_direction=False, **tol):
    """gradcheck of ``fn`` at ``arrays`` on ``device`` (float64 where supported).

    ``requires_grad`` (one bool per array) marks which array inputs are checked (all by
    default); ``tol`` overrides ``GRAD_TOL`` entries (eps, atol, rtol).
    """
    dtype = grad_dtype(device)
    settings = dict(GRAD_TOL[dtype], **tol)
    flags = iter(requires_grad) if requires_grad is not None else None
    args = []
    for a in arrays:
        if isinstance(a, np.ndarray):
            needs = True if flags is None else next(flags)
            args.append(tensor(a, device, dtype, requires_grad=needs))
        else:
            args.append(a)
    return gradcheck(fn, *args, random_direction=random_direction, **settings)


def check_op(fn, ref, *arrays, device, dtype="float32", grad=True, rtol=None, atol=None,
             requires_grad=None, random_direction=False, **tol):
    """Forward of ``fn`` against ``ref`` in ``dtype``, then (if ``grad``) every gradient."""
    out = check_forward(fn, ref, *arrays, device=device, dtype=dtype, rtol=rtol, atol=atol)
    if grad:
        check_grad(fn, *arrays, device=device, requires_grad=requires_grad,
                   random_direction=random_direction, **tol)
    return out
