"""`crm` command line: thin wrappers over crmlib functions.

Each sub-command lives in its own module, which exposes ``register(subparsers)``; the parser it adds
sets ``func`` (called with the parsed args, returns an exit code). Errors meant for users
(:class:`crmlib.errors.UserError`) are printed without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError

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


if __name__ == "__main__":
    sys.exit(main())
