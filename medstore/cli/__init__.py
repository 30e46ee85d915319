"""The command line: thin click commands over the library. Errors are one line and exit non-zero.

Commands are plugins: every module of this package registers its commands through the
``register_commands`` hook, as a third-party package would, and the group loads them the first
time it is asked for one. So no module imports the CLI back, and none can be dropped by an
import cycle.
"""

from medstore.cli.group import cli

__all__ = ["cli"]
