"""The ``plqa`` command: one verb per module in ``plqa_nb/commands``."""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import FolderLockedError, ModelUnavailableError

VERBS = ("explain", "quality", "calibrate", "bench", "experiment", "compare", "evaluate", "app")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plqa", description="Pixel-level face image quality (Terhörst et al.)")
    sub = parser.add_subparsers(dest="verb", required=True)
    for verb in VERBS:
        importlib.import_module(f".commands.{verb}", __package__).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")  # the verbs only write figures to files; chosen here, never on import
    args = build_parser().parse_args(argv)
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
