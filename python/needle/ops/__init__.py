"""needle's operators: one class per op with compute() and gradient(), plus its function."""

from .ops_mathematic import *  # noqa: F401,F403
from .ops_movement import *  # noqa: F401,F403
from .ops_logarithmic import *  # noqa: F401,F403
from .ops_tuple import *  # noqa: F401,F403
from .geometry import *  # noqa: F401,F403
from .ops_conv import *  # noqa: F401,F403
from .ops_pool import *  # noqa: F401,F403
from .ops_norm import *  # noqa: F401,F403
from .ops_sequence import *  # noqa: F401,F403
