"""Training checkpoints: model tensors (parameters and BatchNorm running statistics), optimizer
state, epoch, RNG states and history, written with ``needle.save``: NumPy arrays in an ``.npz``
archive plus the structure and plain values as JSON.  Loading one reads data only
(``allow_pickle=False``): it never runs code.  Files of the old pickle format are refused
without being unpickled.

Model tensors come from ``Module.state_dict()`` (parameters and buffers such as BatchNorm's
``running_mean``).  Optimizer state comes from ``Optimizer.state_dict()`` (per-parameter
buffers keyed by the parameter's position).
"""

import importlib
import os
import sys

if not __package__:  # `import checkpoint` with apps/ on sys.path, as the course's tests do
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

import numpy as np

import needle as ndl

FORMAT = "needle-train-checkpoint/2"


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
    """Write ``payload`` atomically (temporary file in the same folder, fsync, rename): a crash
    at any moment leaves the previous checkpoint whole."""
    ndl.save(dict(payload, format=FORMAT), path)


def load(path):
    """Read a checkpoint written by ``save`` (data only: nothing in it is run).

    Raises:
        FileNotFoundError: no such file.  ValueError: not a training checkpoint of this
        version (old pickle checkpoints included: they are not unpickled).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    payload = ndl.load(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else None
        raise ValueError(f"{path} is not a training checkpoint of format {FORMAT} (found {found})")
    return payload
