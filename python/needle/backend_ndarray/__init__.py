"""Strided n-dimensional arrays over pluggable backends (NumPy, C++, CUDA).

The package is the NDArray mode's array API (``needle.backend_selection.array_api``): the
course's names, and the functions the op layer calls (``api.py``).
"""

# ndarray.py first: it loads fused.py and api.py at its end, once NDArray exists.
from .ndarray import NDArray  # noqa: I001
from .api import *  # noqa: F401,F403
from .api import __all__ as _api_names
from .conv import *  # noqa: F401,F403  (conv/pool kernels the conv and pool ops call)
from .sequence import *  # noqa: F401,F403  (the recurrent-step and embedding kernels)
from .devices import BackendDevice, all_devices, cpu, cpu_numpy, cuda, default_device
from .strides import broadcast_shapes

__all__ = [
    *_api_names, "BackendDevice", "NDArray", "all_devices", "broadcast_shapes", "cpu",
    "cpu_numpy", "cuda", "default_device",
]
