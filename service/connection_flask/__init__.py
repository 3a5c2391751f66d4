"""connection-flask: the registry DAQ applications publish connections to and look up in."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("connection-flask")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
