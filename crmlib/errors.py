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


class MissingData(UserError):
    """An analysis finds none of the data it stands on (no opportunities, no orders, nobody to rank): it has
    nothing to show for that date. A command run on its own fails with the message, as for any UserError;
    `crm weekly` builds the report's other sections and says in this one which data are missing
    (``what``: the missing data in the report's languages)."""

    what: dict[str, str] = {"zh": "所需数据", "en": "the data it needs"}

    def __init__(self, message: str, *, what: dict[str, str] | None = None, **where):
        super().__init__(message, **where)
        if what is not None:
            self.what = what


def missing_data_kinds() -> set[str]:
    """Class names of :class:`MissingData` and its subclasses (the analyses' own kinds included), to tell such
    a stop from a failure in an executed notebook, where only the exception's name is left."""
    from . import funnel, pyramid, segments  # noqa: F401  (their subclasses register by being defined)

    seen, todo = set(), [MissingData]
    while todo:
        cls = todo.pop()
        seen.add(cls.__name__)
        todo += cls.__subclasses__()
    return seen
