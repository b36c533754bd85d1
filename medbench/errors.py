"""medbench's exceptions. The CLI prints any :class:`MedbenchError` as one line and exits 2."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MedbenchError", "UnknownNameError", "BadValueError", "TableError", "ReadOnlyError"]


class MedbenchError(Exception):
    """Base class of every error medbench reports to a user; its message is one line."""


class UnknownNameError(MedbenchError, KeyError):
    """An unknown task, space, device, table, column or architecture; lists the known ones.

    Attributes:
        kind: what was looked up (``"task"``, ``"space"``, ...).
        name: the name that was not found.
        known: the names that exist.
    """

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = ""):
        self.kind = kind
        self.name = name
        self.known = tuple(known)
        listed = ", ".join(self.known) if self.known else "none yet"
        msg = f"unknown {kind} {name!r}; known {kind}s: {listed}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return self.args[0]


class BadValueError(MedbenchError, ValueError):
    """A malformed option value: a bad unit, a negative limit, an impossible combination."""


class TableError(MedbenchError):
    """A missing, corrupted or inconsistent table file or manifest."""


class ReadOnlyError(MedbenchError):
    """SQL that would write, attach, install or read files outside the tables."""
