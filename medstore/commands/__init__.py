"""CLI commands by area; medstore.cli adds every command a module lists in COMMANDS."""
