"""Shared fixtures: every test that takes ``device`` runs on each enabled backend."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import needle as ndl  # noqa: E402

DEVICES = ndl.all_devices()


def _device_id(device):
    return repr(device).rstrip("()")


@pytest.fixture(params=DEVICES, ids=[_device_id(d) for d in DEVICES])
def device(request):
    return request.param


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    yield
