"""Selects the array API the op layer runs on, once, from ``NEEDLE_BACKEND``.

``nd`` (the default) runs ops on the strided NDArray; ``np`` runs them on plain NumPy
arrays (the course's early homework mode: ``cached_data`` is a ``numpy.ndarray`` and
float64 inputs stay float64).
"""

import os

BACKEND = os.environ.get("NEEDLE_BACKEND", "nd")

if BACKEND == "nd":
    from . import backend_ndarray as array_api
    from .backend_ndarray import (
        BackendDevice as Device,
    )
    from .backend_ndarray import (
        all_devices,
        cpu,
        cpu_numpy,
        cuda,
        default_device,
    )

    NDArray = array_api.NDArray
elif BACKEND == "np":
    from . import backend_numpy as array_api
    from .backend_numpy import Device, all_devices, cpu, cpu_numpy, cuda, default_device

    NDArray = array_api.ndarray
else:
    raise RuntimeError(f"NEEDLE_BACKEND must be 'nd' or 'np', got {BACKEND!r}")
