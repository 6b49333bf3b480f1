"""astrogen: simulate, learn, generate and validate astrophysical images and fields."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("astrogen")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
