"""Training applications built on needle: models, training loop, command-line trainer."""

import os
import sys

# `python -m apps.train` from the repository root must find the in-tree package (the course's
# apps do `sys.path.append("./python")`); an installed needle takes precedence.
_PYTHON_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python")
try:
    import needle  # noqa: F401
except ImportError:
    if os.path.isdir(_PYTHON_DIR) and _PYTHON_DIR not in sys.path:
        sys.path.insert(0, _PYTHON_DIR)
