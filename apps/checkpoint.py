"""Training checkpoints: model tensors (parameters and BatchNorm running statistics), optimizer
state, epoch, RNG states and history, in one pickle of NumPy arrays and plain Python values.

Model tensors come from ``Module.state_dict()`` (parameters and buffers such as BatchNorm's
``running_mean``).  Optimizer state comes from ``Optimizer.state_dict()`` (per-parameter
buffers keyed by the parameter's position).  A checkpoint is a pickle: load only files you
trust (unpickling can run code).
"""

import importlib
import os
import pickle
import sys

if not __package__:  # `import checkpoint` with apps/ on sys.path, as the course's tests do
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

import numpy as np

import needle as ndl

FORMAT = "needle-train-checkpoint/1"


def _to_numpy(value):
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def model_state(model):
    """``{name: np.ndarray}`` of the model's parameters and buffers (``Module.state_dict``)."""
    return {name: t.numpy().copy() for name, t in model.state_dict().items()}


def load_model_state(model, state):
    """Copy ``state`` (from ``model_state``) into ``model`` in place; Parameters keep identity.

    Raises:
        ValueError: when the tensor names or shapes differ (a different architecture).
    """
    try:
        model.load_state_dict(state, strict=True)
    except KeyError as exc:
        raise ValueError(f"checkpoint does not fit the model: {exc.args[0]}") from None


def optimizer_state(opt):
    """``opt.state_dict()`` with every Tensor turned into a NumPy array (picklable anywhere)."""

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return _to_numpy(value).copy() if isinstance(value, ndl.Tensor) else value

    return plain(opt.state_dict())


def load_optimizer_state(opt, state):
    """Restore ``optimizer_state`` output into an optimizer over the same parameters.

    Raises:
        ValueError: when the state does not fit (another optimizer or model).
    """
    try:
        opt.load_state_dict(state)
    except KeyError as exc:
        raise ValueError(f"optimizer state does not fit: {exc.args[0]}") from None


def save(path, payload):
    """Write ``payload`` atomically (a crash mid-write never leaves a truncated checkpoint)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump(dict(payload, format=FORMAT), f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def load(path):
    """Read a checkpoint written by ``save``.

    Raises:
        FileNotFoundError: no such file.  ValueError: not a training checkpoint.
    """
    with open(path, "rb") as f:
        try:
            payload = pickle.load(f)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not ours"
            raise ValueError(f"{path} is not a training checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a training checkpoint ({FORMAT})")
    return payload
