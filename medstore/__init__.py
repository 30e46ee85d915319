"""medstore: medical training data from teacher LLMs, with every step in an event log."""

from medstore.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
