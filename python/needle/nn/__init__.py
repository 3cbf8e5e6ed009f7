"""Neural-network modules: Module, Parameter, layers, and the model summary."""

from .nn_basic import *  # noqa: F401,F403
from .nn_conv import *  # noqa: F401,F403
from .nn_pool import *  # noqa: F401,F403
from .nn_summary import summary  # noqa: F401
from .nn_sequence import *  # noqa: F401,F403
