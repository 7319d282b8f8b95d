"""``plqa bench``: latency, cost ratios and PLQ-map throughput on CPU or CUDA (see ``plqa_nb.bench``)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..backbones import DEFAULT_BACKBONE, FACENET_RANDOM, available_backbones
from ..batch import atomic_write_bytes
from . import VERBS
from .common import add_detector_option, positive_int


def _sizes(text: str) -> list[int]:
    sizes = [int(s) for s in text.split(",") if s.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("batch sizes must be positive integers, e.g. 1,8,64")
    return sizes


def register(sub) -> None:
    p = sub.add_parser("bench", help=VERBS["bench"],
                       description="Median per-face latencies at batch 1, plq_over_fwd_bwd, serfiq_head_speedup "
                                   "and PLQ maps/s over batch sizes, on the astronaut's aligned crop. Prints a "
                                   "markdown table; --json writes every figure.")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run (default cpu)")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=[*available_backbones(), FACENET_RANDOM],
                   help=f"network (default {DEFAULT_BACKBONE}; facenet-random: FaceNet size, random weights, "
                        "timing only)")
    p.add_argument("--json", type=Path, default=None, help="write the full result to this JSON file")
    p.add_argument("--quick", action="store_true", help="1 timed call, no warm-up, m=10, batch sizes 1,2 (smoke test)")
    p.add_argument("--batch-sizes", type=_sizes, default=None,
                   help="comma-separated throughput batch sizes (default 1..64 on CPU, 1..512 on CUDA)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per measurement (default 7)")
    p.add_argument("--m", type=int, default=None, help="SER-FIQ stochastic passes (default 100)")
    p.add_argument("--autocast", action="store_true", help="run the measured calls under bfloat16 autocast")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default torch's; 1 gives steadier CPU figures on a busy machine)")
    p.add_argument("--scaling", type=Path, nargs="+", default=None, metavar="INPUT",
                   help="instead: `plqa explain` over these photos serially, with --workers 1 … --max-workers and "
                        "serially again: files/s, efficiency, peak memory of the client and per worker")
    p.add_argument("--max-workers", type=int, default=os.cpu_count() or 1,
                   help="--scaling: the most workers (default: the CPU count)")
    p.add_argument("--scaling-out", type=Path, default=Path("results/bench-scaling"),
                   help="--scaling: where the runs write (replaced; default results/bench-scaling)")
    p.add_argument("--batch-size", type=int, default=8, help="--scaling: files per batch (default 8)")
    p.add_argument("--rounds", type=positive_int, default=1,
                   help="--scaling: run the serial run and the workers' runs this many times in turn and judge the "
                        "floors by the median of the rounds' ratios (default 1)")
    add_detector_option(p)
    p.add_argument("--ui", type=Path, default=None, metavar="TIMINGS",
                   help="instead: the page-latency table of the browser test's timings file (make bench-ui): "
                        "each step's seconds against its goal, with the machine's CPU count and load")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch  # the heavy part, once the options are accepted

    from ..bench import format_scaling, format_table, format_ui_timings, run_benchmark, scaling_table

    def log(msg: str) -> None:
        print(f"plqa bench: {msg}", file=sys.stderr)

    if args.ui is not None:
        print(format_ui_timings(json.loads(args.ui.read_text())))
        return 0
    if args.scaling is not None:
        result = scaling_table(list(map(str, args.scaling)), args.scaling_out, args.max_workers, args.batch_size,
                               args.detector, args.rounds, log)
        table = format_scaling(result)
    else:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        result = run_benchmark(args.device, args.backbone, quick=args.quick, batch_sizes=args.batch_sizes,
                               repeats=args.repeats, m=args.m, autocast=args.autocast, log=log)
        table = format_table(result)
    if args.json is not None:
        atomic_write_bytes(args.json, (json.dumps(result, indent=2) + "\n").encode())
    print(table)
    return 0
