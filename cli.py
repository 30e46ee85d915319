"""Entry point: `python cli.py ...` runs the medstore command line."""

from medstore.cli import cli

if __name__ == "__main__":
    cli()
