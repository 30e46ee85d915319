"""medstore: medical training data from teacher LLMs, with every step in an event log."""

__version__ = "0.1.0"
