"""pgautomator: the remote agent and client package for the pgautomator extension."""

__version__ = "0.1.0"
