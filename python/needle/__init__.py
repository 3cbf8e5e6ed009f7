"""needle: a small, readable and fast deep-learning framework."""

from . import autograd, backend_ndarray, ops
from .autograd import Tensor, TensorTuple, Value, enable_grad, grad, no_grad
from .backend_selection import BACKEND, Device, all_devices, cpu, cpu_numpy, cuda, default_device
from .ops import *  # noqa: F401,F403
from . import init  # noqa: E402
from .init import ones, ones_like, zeros, zeros_like  # noqa: E402
from . import data, nn, optim  # noqa: E402
from .serialization import load, save  # noqa: E402
from .testing import gradcheck  # noqa: E402
