"""`crm` command line: thin wrappers over crmlib functions.

Each sub-command lives in its own module, which exposes ``register(subparsers)``; the parser it adds
sets ``func`` (called with the parsed args, returns an exit code). Errors meant for users
(:class:`crmlib.errors.UserError`) are printed without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

import duckdb

from .errors import UserError, one_line

# module that registers each sub-command, in the order `crm --help` lists them
COMMAND_MODULES = [
    "crmlib.demo",      # crm demo-data
    "crmlib.load",      # crm load
    "crmlib.master",    # crm resolve, crm dedup
    "crmlib.review",    # crm review export | apply
    "crmlib.quality",   # crm quality
    "crmlib.funnel",    # crm plan
    "crmlib.pyramid",   # crm pyramid
    "crmlib.report",    # crm weekly
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm", description="Customer-information center workspace")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet; other import errors are real bugs
                continue
            raise
        register = getattr(module, "register", None)
        if register:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"crm {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"crm {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # `crm ... | head`: the reader has gone, nothing to say
        return 0
    except OSError as exc:
        if exc.filename is not None:
            # a path the command was given cannot be used: a folder where a file belongs, a missing or
            # read-only folder, a file where a folder belongs
            where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
            print(f"crm {args.command}: error: {where}: {exc.strerror or exc} (check the path: its folder must "
                  "exist and be writable, and a file must not be a folder)", file=sys.stderr)
        else:  # the machine, not a path: disk full, too many open files, ...
            print(f"crm {args.command}: error: {exc.strerror or one_line(exc)} (a problem of this machine: "
                  "check free disk space and memory, then run the command again)", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"crm {args.command}: error: out of memory (close other programs, or lower memory_limit / "
              "threads in params/master.yaml)", file=sys.stderr)
        return 2
    except duckdb.OutOfMemoryException as exc:   # DuckDB: over its memory_limit
        print(f"crm {args.command}: error: DuckDB ran out of memory ({one_line(exc)[:200]}) (raise "
              "memory_limit in params/master.yaml if the machine has room, or lower threads)", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one plain line for the user, the traceback kept for whoever fixes it
        if os.environ.get("CRM_DEBUG"):
            raise
        log = _crash_log(args.command, sys.argv[1:] if argv is None else argv)
        print(f"crm {args.command}: unexpected error ({type(exc).__name__}: {one_line(exc)[:300]}). This is a "
              f"bug in crm, not in your input; please report it with {log} (CRM_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 70


def _crash_log(command: str, argv: list[str]) -> str:
    """Write the current exception's traceback to a file in the temp folder; return its path."""
    import tempfile
    import time
    import traceback

    fd, path = tempfile.mkstemp(prefix=f"crm-{command}-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f"crm {' '.join(map(str, argv))}\n\n{traceback.format_exc()}")
    return path


if __name__ == "__main__":
    sys.exit(main())
