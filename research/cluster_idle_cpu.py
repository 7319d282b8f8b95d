"""What a local cluster costs while it waits: the CPU of `--workers N`'s processes with no task to run.

    python research/cluster_idle_cpu.py --workers 2 --seconds 10 --repeats 3

Starts the cluster that ``plqa_nb.scale.cluster_client`` starts, once with Dask's default event-loop tick and
memory-monitor intervals and once with the package's (``scale.LOCAL_CLUSTER_CONFIG``), in turn ``--repeats`` times.
Each time it waits 2 s, then counts the CPU seconds of this process (client, scheduler, nannies) and of its child
processes (workers) over ``--seconds``, and prints a markdown table of the cores used (CPU seconds per second).
"""
from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import dask
import distributed  # noqa: F401 (puts Dask's distributed defaults into dask.config)
import psutil

from plqa_nb.scale import LOCAL_CLUSTER_CONFIG, cluster_client

INTERVALS = ("distributed.admin.tick.interval", "distributed.worker.memory.monitor-interval")


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User and system CPU seconds of ``processes`` so far."""
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def idle_cores(workers: int, seconds: float) -> float:
    """Cores used by a local cluster of ``workers`` with nothing to do, over ``seconds``."""
    with cluster_client(workers, None, 1):
        time.sleep(2)  # let the workers finish starting
        me = psutil.Process()
        processes = [me, *me.children(recursive=True)]
        before = cpu_seconds(processes)
        time.sleep(seconds)
        return (cpu_seconds(processes) - before) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    dask_defaults = {key: dask.config.get(key) for key in INTERVALS}
    cores: dict[str, list[float]] = {"Dask's defaults": [], "plqa_nb's": []}
    for _ in range(args.repeats):
        with mock.patch.dict(LOCAL_CLUSTER_CONFIG, dask_defaults):
            cores["Dask's defaults"].append(idle_cores(args.workers, args.seconds))
        cores["plqa_nb's"].append(idle_cores(args.workers, args.seconds))
    print(f"{args.workers} idle workers, {args.seconds:g} s, {args.repeats} times in turn\n")
    print("| tick and memory-monitor intervals | cores used (each time) | median |")
    print("|---|---|---:|")
    for name, values in cores.items():
        config = dask_defaults if name.startswith("Dask") else {k: LOCAL_CLUSTER_CONFIG[k] for k in INTERVALS}
        label = f"{name} ({', '.join(str(config[k]) for k in INTERVALS)})"
        print(f"| {label} | {', '.join(f'{v:.3f}' for v in values)} | {statistics.median(values):.3f} |")


if __name__ == "__main__":
    main()
