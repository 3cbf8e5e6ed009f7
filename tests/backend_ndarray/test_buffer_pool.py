"""The CPU backend's buffer pool: its prefilled arena serves the first large fresh buffers.

Each case runs in a fresh interpreter, since the arena is started once per process (by the
pool's first allocation) and sized from NEEDLE_POOL_RESERVE_MB.
"""

import json
import os
import subprocess
import sys

import pytest

import needle as ndl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.skipif(not ndl.cpu().enabled(), reason="the C++ CPU backend is not built")

SCRIPT = r"""
import json, sys, time
sys.path.insert(0, "python")
import needle as ndl
import needle.backend_ndarray as nd
mod = ndl.cpu().mod
nd.array([1.0], device=ndl.cpu())  # the pool's first allocation starts the arena
deadline = time.time() + 20
while mod.pool_stats()["arena_filled"] < mod.pool_stats()["arena_bytes"] and time.time() < deadline:
    time.sleep(0.01)
before = mod.pool_stats()
big = [nd.empty((256, 1024), device=ndl.cpu()) for _ in range(3)]  # 1 MiB each
big[1][0, 0] = 5.0
after = mod.pool_stats()
print(json.dumps({"before": before, "after": after, "value": float(big[1].numpy()[0, 0])}))
"""


def run(reserve_mb):
    env = dict(os.environ, NEEDLE_POOL_RESERVE_MB=str(reserve_mb))
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_large_fresh_buffers_come_from_the_prefilled_arena():
    r = run(4)
    assert r["before"]["arena_bytes"] == 4 << 20
    assert r["before"]["arena_filled"] == 4 << 20 and r["before"]["arena_used"] == 0
    assert r["after"]["arena_used"] == 3 << 20  # three 1 MiB buffers, one after the other
    assert r["value"] == 5.0


def test_a_full_arena_falls_back_to_fresh_mappings():
    r = run(2)
    assert r["after"]["arena_used"] == 2 << 20  # two fit, the third is mapped anew
    assert r["after"]["fresh_bytes"] - r["before"]["fresh_bytes"] == 3 << 20
    assert r["value"] == 5.0


def test_reserve_zero_turns_the_arena_off():
    r = run(0)
    assert r["after"]["arena_bytes"] == 0 and r["after"]["arena_used"] == 0
    assert r["value"] == 5.0
