"""The op and autograd tests again under ``NEEDLE_BACKEND=np`` (plain NumPy arrays)."""

import os
import subprocess
import sys

import pytest

import needle as ndl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Test files written to be mode-agnostic.  An op test file joins this list once it passes
# under NEEDLE_BACKEND=np (NumPy mode has one device and NumPy's dtype promotion).
FILES = [
    "tests/test_smoke.py",
    "tests/test_autograd.py",
    "tests/test_testing.py",
    "tests/ops/test_ops_mathematic.py",
    "tests/ops/test_ops_movement.py",
    "tests/ops/test_ops_logarithmic.py",
    "tests/ops/test_ops_tuple.py",
    "tests/ops/test_ops_conv.py",
    "tests/ops/test_ops_norm.py",
    "tests/test_optim.py",
    "tests/test_init.py",
    "tests/nn/test_nn_basic.py",
    "tests/ops/test_ops_sequence.py",
    "tests/nn/test_nn_sequence.py",
]


def test_numpy_mode_exports_the_whole_array_api():
    from needle import backend_numpy
    from needle.backend_ndarray import api

    missing = [name for name in api.__all__ if not hasattr(backend_numpy, name)]
    assert not missing, f"backend_numpy lacks {missing}"


@pytest.mark.skipif(ndl.BACKEND == "np", reason="already running in NumPy mode")
def test_op_tests_pass_in_numpy_mode():
    env = dict(os.environ, NEEDLE_BACKEND="np")
    cmd = [sys.executable, "-m", "pytest", *FILES, "-q", "-x", "-p", "no:cacheprovider"]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
