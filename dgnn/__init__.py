"""dgnn: deep glial-neural networks. The names users import; everything else lives in its module."""
from .analysis import summarize as summarize
from .config import Config as Config, load_config as load_config
from .errors import ConfigError as ConfigError, SimulationFailed as SimulationFailed
from .model import register_vector_field as register_vector_field
from .simulation import Simulation as Simulation, resume as resume, run as run
from .solvers import solve as solve
from .traces import read_trace as read_trace
from .version import __version__ as __version__
