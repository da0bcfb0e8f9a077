"""Errors meant for users: the CLI prints them without a traceback and exits non-zero."""
from __future__ import annotations

import sys


class UserError(Exception):
    """A problem the user can fix (bad input file, bad parameter). Message says where and what to do."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 column: str | None = None, hint: str | None = None):
        self.file, self.row, self.column, self.hint = file, row, column, hint
        where = ", ".join(p for p in (
            f"file {file}" if file else "",
            f"row {row}" if row is not None else "",
            f"column {column}" if column else "",
        ) if p)
        text = f"{where}: {message}" if where else message
        if hint:
            text += f" ({hint})"
        super().__init__(text)


def one_line(exc: BaseException) -> str:
    """An exception's text on one line (DuckDB's messages span several)."""
    return " ".join(str(exc).split())


def warn(command: str, message: str) -> None:
    """A warning from a `crm` sub-command: one line on stderr, the run goes on."""
    print(f"crm {command}: warning: {message}", file=sys.stderr)


class LockedError(UserError):
    exit_code = 3
