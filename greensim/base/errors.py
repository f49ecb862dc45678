"""Exception hierarchy. Every message names the field, the bad value and the fix."""

__all__ = [
    "GreensimError",
    "ConfigError",
    "ProfileError",
    "TraceError",
    "SimulationInvariantError",
]


class GreensimError(Exception):
    """Base class of every error greensim raises on purpose (CLI exit code 2)."""


class ConfigError(GreensimError):
    """The experiment description is invalid."""


class ProfileError(GreensimError):
    """A GPU, model or performance profile is unknown or inconsistent."""


class TraceError(GreensimError):
    """A request trace is missing columns or holds invalid values."""


class SimulationInvariantError(GreensimError):
    """The engine reached a state that must be impossible (a bug, not bad input)."""
