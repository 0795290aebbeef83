"""The study layer: every multi-run command (sweeps, comparisons, strategy studies) runs its units of work through
one engine on an Optuna storage (see the docs' Study engine page)."""
from .compare import compare as compare, load_compare_config as load_compare_config
from .engine import Unit as Unit, WorkQueue as WorkQueue
from .storage import Heartbeat as Heartbeat
from .sweep import sweep as sweep
