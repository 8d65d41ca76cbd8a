"""Subcommands of the ``avatar`` CLI, one module each."""
