"""Checkpoints: ``needle.save(obj, path)`` / ``needle.load(path)``.

``obj`` is a (nested) dict, list or tuple of Tensors, NDArrays, NumPy arrays and plain
scalars (int, float, bool, str, None) — a model's ``state_dict()``, an optimizer's, or a
dict holding both plus an epoch counter.  The file is a NumPy ``.npz`` archive: each
array is one member (dtype kept), and one JSON member describes the structure.  Loading
uses ``allow_pickle=False``: a checkpoint holds data only, never code.
"""

import json
import os
import tempfile
import zipfile
from typing import Any

import numpy as np

from . import backend_selection
from .autograd import Tensor
from .backend_selection import NDArray

__all__ = ["save", "load"]

_META = "__needle_checkpoint__"
_FORMAT = 1


def _encode(obj: Any, arrays: dict):
    """The JSON description of ``obj``; arrays are added to ``arrays`` as members."""
    if isinstance(obj, Tensor):
        name = f"a{len(arrays)}"
        arrays[name] = obj.numpy()
        return {
            "kind": "tensor",
            "member": name,
            "device": repr(obj.device).rstrip("()"),
            "requires_grad": bool(obj.requires_grad),
        }
    if isinstance(obj, (NDArray, np.ndarray, np.generic)):
        name = f"a{len(arrays)}"
        kind = (
            "ndarray" if isinstance(obj, NDArray) and not isinstance(obj, np.ndarray) else "numpy"
        )
        arrays[name] = np.asarray(obj.numpy() if kind == "ndarray" else obj)
        entry = {"kind": kind, "member": name}
        if kind == "ndarray":
            entry["device"] = repr(obj.device).rstrip("()")
        if isinstance(obj, np.generic):
            entry["scalar"] = True
        return entry
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"kind": "value", "value": obj}
    if isinstance(obj, dict):
        items = []
        for key, value in obj.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise TypeError(f"save: dict keys must be str or int, got {key!r}")
            items.append([key, _encode(value, arrays)])
        return {"kind": "dict", "items": items}
    if isinstance(obj, (list, tuple)):
        return {"kind": type(obj).__name__, "items": [_encode(v, arrays) for v in obj]}
    raise TypeError(
        f"save: cannot store an object of type {type(obj).__name__} (only Tensors, arrays, "
        "numbers, strings, None and dicts/lists/tuples of them)"
    )


def _device_named(name, device):
    if device is not None:
        return device
    factory = getattr(backend_selection, name, None)
    if factory is not None and factory().enabled():
        return factory()
    return backend_selection.default_device()


def _decode(entry: dict, members, device):
    kind = entry["kind"]
    if kind == "value":
        return entry["value"]
    if kind == "dict":
        return {key: _decode(value, members, device) for key, value in entry["items"]}
    if kind in ("list", "tuple"):
        items = [_decode(value, members, device) for value in entry["items"]]
        return items if kind == "list" else tuple(items)
    array = members[entry["member"]]
    if kind == "numpy":
        return array[()] if entry.get("scalar") else array
    target = _device_named(entry["device"], device)
    if kind == "tensor":
        return Tensor(
            array, device=target, dtype=str(array.dtype), requires_grad=entry["requires_grad"]
        )
    if kind == "ndarray":
        return Tensor(array, device=target, dtype=str(array.dtype)).realize_cached_data()
    raise ValueError(f"load: unknown entry kind {kind!r}")


def save(obj: Any, path) -> None:
    """Write ``obj`` (nested dicts/lists/tuples of Tensors, arrays and scalars) to ``path``.

    The file is written whole or not at all (a temporary file is renamed into place).
    Raises TypeError for objects it cannot store.
    """
    arrays = {}
    meta = json.dumps({"format": _FORMAT, "root": _encode(obj, arrays)})
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{_META: np.array(meta)}, **arrays)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it the checkpoint
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load(path, device=None) -> Any:
    """Read what ``save`` wrote.

    Tensors come back with their dtype on their saved device when it is enabled here (else
    the default device), or on ``device`` when given.  Raises FileNotFoundError for a
    missing file and ValueError naming the file when it is not a needle checkpoint.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no checkpoint file {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"load: {path!r} is a directory, not a checkpoint file")
    with open(path, "rb") as f:
        head = f.read(2)
    if head[:1] == b"\x80":  # a pickle stream (protocol 2 and later): never unpickled
        raise ValueError(
            f"load: {path!r} is a pickle (an old checkpoint format?); needle does not unpickle "
            "files, since that can run code"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            members = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"load: {path!r} is not a readable .npz checkpoint ({e})") from None
    if _META not in members:
        raise ValueError(f"load: {path!r} is an .npz file but not a needle checkpoint")
    meta = json.loads(str(members.pop(_META)))
    if meta.get("format") != _FORMAT:
        raise ValueError(
            f"load: {path!r} has checkpoint format {meta.get('format')}, expected {_FORMAT}"
        )
    return _decode(meta["root"], members, device)
