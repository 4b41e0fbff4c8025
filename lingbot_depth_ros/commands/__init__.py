"""Subcommands of the lingbot-depth CLI, one module each (see cli.py)."""
