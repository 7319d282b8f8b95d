"""Run a command while one CPU-bound process per core spins beside it (`make test-under-load`).

The suite's verdicts must not follow the machine's load: with every core shared by a busy loop, each of the
suite's processes gets about half the CPU it gets on a quiet machine. Prints the command's wall time and the load
average at the end, and exits with the command's status.

    python scripts/under_load.py [--spinners N] -- COMMAND [ARG ...]
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time


def spin() -> None:
    """Busy loop until killed: one core's worth of load."""
    while True:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spinners", type=int, default=os.cpu_count() or 1,
                        help="busy processes beside the command (default: one per core)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.spinners)]
    for p in spinners:
        p.start()
    t0 = time.perf_counter()
    try:
        code = subprocess.call(command)
    finally:
        for p in spinners:
            p.kill()
    minutes, seconds = divmod(time.perf_counter() - t0, 60)
    print(f"under load ({args.spinners} busy processes beside it): {' '.join(command)} exited {code} after "
          f"{minutes:.0f} min {seconds:.0f} s; load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
