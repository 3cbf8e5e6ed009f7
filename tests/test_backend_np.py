"""The op and autograd tests again under ``NEEDLE_BACKEND=np`` (plain NumPy arrays)."""

import os
import subprocess
import sys

import pytest

import needle as ndl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(ndl.BACKEND == "np", reason="already running in NumPy mode")
def test_op_tests_pass_in_numpy_mode():
    env = dict(os.environ, NEEDLE_BACKEND="np")
    cmd = [sys.executable, "-m", "pytest", "tests/ops", "tests/test_autograd.py", "-q", "-x",
           "-p", "no:cacheprovider"]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
