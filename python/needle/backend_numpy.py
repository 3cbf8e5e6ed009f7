"""The plain-NumPy array API used when ``NEEDLE_BACKEND=np`` (the course's early mode)."""

import numpy
from numpy import *  # noqa: F401,F403  (the op layer calls array_api.<numpy function>)

ndarray = numpy.ndarray


class Device:
    """The single device of the NumPy mode."""

    name = "cpu"

    def __repr__(self):
        return "cpu()"

    def __hash__(self):
        return hash("cpu")

    def __eq__(self, other):
        return isinstance(other, Device)

    def enabled(self):
        return True

    def randn(self, *shape, dtype="float32"):
        return numpy.random.randn(*shape).astype(dtype)

    def rand(self, *shape, dtype="float32"):
        return numpy.random.rand(*shape).astype(dtype)

    def one_hot(self, n, i, dtype="float32"):
        return numpy.eye(n, dtype=dtype)[numpy.asarray(i, dtype=numpy.int64)]

    def empty(self, shape, dtype="float32"):
        return numpy.empty(shape, dtype=dtype)

    def full(self, shape, fill_value, dtype="float32"):
        return numpy.full(shape, fill_value, dtype=dtype)


_CPU = Device()


def cpu():
    return _CPU


cpu_numpy = cpu


def cuda():
    return _DisabledDevice()


class _DisabledDevice(Device):
    name = "cuda"

    def __repr__(self):
        return "cuda()"

    def enabled(self):
        return False


def default_device():
    return _CPU


def all_devices():
    return [_CPU]
