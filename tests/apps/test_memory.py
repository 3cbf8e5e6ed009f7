"""Memory stays flat over a long training run: no growth in the buffer pool and no graphs
kept alive from step to step (ResNet9, 2,000 steps, a fresh batch each step)."""

import os
import subprocess
import sys

import pytest

import needle as ndl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LOOP = r"""
import sys
import numpy as np
sys.path.insert(0, "python"); sys.path.insert(0, ".")
import needle as ndl
from apps.models import ResNet9

def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

np.random.seed(0)
model = ResNet9(device=ndl.cpu())
opt = ndl.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = ndl.nn.SoftmaxLoss()
data = ndl.data.NDArrayDataset(np.random.randn(256, 3, 32, 32).astype(np.float32),
                               np.random.randint(0, 10, 256).astype(np.uint8))
loader = ndl.data.DataLoader(data, batch_size=16, shuffle=True)
step, marks = 0, {}
while step < 2000:
    for X, y in loader:
        opt.reset_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
        step += 1
        if step in (200, 2000):
            marks[step] = (rss_mib(), ndl.cpu().mod.pool_stats()["cached_bytes"] / 2**20,
                           ndl.autograd.TENSOR_COUNTER)
        if step == 2000:
            break
print(*marks[200], *marks[2000])
"""


@pytest.mark.skipif(not ndl.cpu().enabled() or not os.path.exists("/proc/self/status"),
                    reason="needs the C++ backend and /proc")
def test_rss_is_flat_over_2000_resnet9_steps():
    result = subprocess.run([sys.executable, "-c", LOOP], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rss0, pool0, live0, rss1, pool1, live1 = map(float, result.stdout.split())
    assert rss1 <= rss0 * 1.05, (rss0, rss1)
    assert pool1 <= pool0 * 1.05 + 1, (pool0, pool1)
    assert live1 <= live0 + 10, (live0, live1)
