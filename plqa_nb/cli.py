"""The ``plqa`` command: one verb per module in ``plqa_nb/commands``."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .commands import VERBS
from .errors import FolderLockedError, ModelUnavailableError


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser of every verb, or with ``verb`` of that one only (the others are listed by their help line), so
    that ``plqa --help`` and a run import no other verb's module and its dependencies."""
    parser = argparse.ArgumentParser(prog="plqa", description="Pixel-level face image quality (Terhörst et al.)")
    sub = parser.add_subparsers(dest="verb", required=True)
    for name, line in VERBS.items():
        if verb is None or verb == name:
            importlib.import_module(f".commands.{name}", __package__).register(sub)
        else:
            sub.add_parser(name, help=line)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else "").parse_args(argv)  # the verb comes first: no top-level options
    # the verbs only write figures to files: Agg, chosen here (never on import) without importing matplotlib
    if "matplotlib" in sys.modules:
        sys.modules["matplotlib"].use("Agg")
    else:
        os.environ["MPLBACKEND"] = "Agg"  # read by matplotlib when a verb first imports it
    try:
        return args.func(args)
    except (ModelUnavailableError, FolderLockedError) as exc:
        print(f"plqa {args.verb}: {exc}", file=sys.stderr)
        return 1
    except (ValueError, KeyError, FileNotFoundError) as exc:  # bad arguments, unreadable calibration, ...
        if getattr(args, "debug", False):
            raise
        print(f"plqa {args.verb}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
