"""Training applications built on needle: models, training loop, command-line trainer.

Every module here imports two ways: as ``apps.X`` (``python -m apps.train``,
``from apps.models import ResNet9``) and as a top-level ``X`` once ``apps/`` is on ``sys.path``,
as the course's tests do (``sys.path.append("./apps"); from simple_ml import *``). Modules import
each other absolutely (``from apps.engine import run_epoch``). Each opens with a guard that, for
a top-level import, puts the repository root on ``sys.path`` and swaps itself in ``sys.modules``
for ``apps.X``: ``import models`` then returns the very module ``apps.models``, so there is one
``ResNet9`` class, not two (the top-level copy still runs its body once, and is then dropped).
"""

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
