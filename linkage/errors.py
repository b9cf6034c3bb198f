"""Errors raised by the linkage library, each naming what failed and where."""

from __future__ import annotations


class LinkageError(Exception):
    """Base class for every error the linkage library raises on purpose."""


class FieldError(LinkageError, ValueError):
    """A single value could not be understood.

    ``field`` is the canonical column, ``value`` the offending text (only ever
    shown to the person who holds the file), ``reason`` says what to do.
    """

    def __init__(self, field: str, reason: str, value: str | None = None):
        self.field = field
        self.reason = reason
        self.value = value
        super().__init__(f"{field}: {reason}")


class InputError(LinkageError):
    """A problem located in an input file: file, row (1-based, header is row 1), column."""

    def __init__(self, file: str, reason: str, row: int | None = None, column: str | None = None):
        self.file = file
        self.row = row
        self.column = column
        self.reason = reason
        where = file
        if row is not None:
            where += f" 行{row}"
        if column:
            where += f" 列「{column}」"
        super().__init__(f"{where}: {reason}")
