"""Errors a person can act on: every user-facing failure raises a subclass of `AstrogenError`.

The CLI prints the message on one line and exits with status 2; the message names what is wrong
and where (file, dataset, index, config key).
"""


class AstrogenError(Exception):
    """Base class of all errors caused by the user's input or environment."""


class InputFileError(AstrogenError):
    """A file is missing, unreadable, or not in the expected format."""


class DataError(AstrogenError):
    """Array contents are unusable: wrong shape, NaN/inf, inconsistent lengths, out of domain."""


class ConfigError(AstrogenError):
    """A configuration key or value is unknown or invalid."""


class UnknownNameError(ConfigError):
    """A name (simulator, transform, ...) is not registered."""
