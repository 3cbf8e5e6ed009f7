"""`pytest --doctest-glob='*.md' docs`: the guides import the in-tree needle and apps, as the
tests do (tests/conftest.py)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (ROOT, os.path.join(ROOT, "python")):
    if path not in sys.path:
        sys.path.insert(0, path)
