"""``python -m medbench`` runs the command-line interface."""

from medbench.cli import entry

entry()
