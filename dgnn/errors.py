"""Exceptions that the CLI turns into exit codes: user input (2), failed runs (1)."""


class DgnnError(Exception):
    """Base class of every error dgnn raises on purpose."""


class ConfigError(DgnnError, ValueError):
    """Bad user input: a config key, an override, a file. The CLI prints one line and exits 2.

    key: the dotted config key the message starts with, when it was raised after validation (building a run), so
    that the CLI can add where that key was set (the file and line, or the override)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


class SimulationFailed(DgnnError, RuntimeError):
    """A run that cannot go on (a state turned non-finite). The CLI exits 1."""


class DiskFull(SimulationFailed):
    """The disk under a run's files is full: what was written before stays readable and resumable. The CLI exits 1."""
