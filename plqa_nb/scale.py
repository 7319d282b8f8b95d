"""Runs over whole datasets: the verbs' one entry point, in this process or on a Dask cluster.

A verb hands ``run_files`` a *step factory*: a picklable callable without arguments that builds an object with
``prepare(file)`` and ``compute(items)`` (see ``batch.process_files``), i.e. the model and where outputs go.

* ``run_files`` walks the files first: with none left to do it returns without a model or a cluster.
* Without ``workers`` or ``scheduler`` the factory is called once here and ``batch.run_batch`` runs the files,
  preparing the next two batches and writing the last one's files on threads beside the compute (``overlap``),
  and computing two batches at once where the step is ``concurrent``: dask is not imported.
* With ``workers=N`` a ``distributed.LocalCluster`` of N worker processes (``TASK_THREADS`` tasks at a time each)
  starts, and the machine's cores are split between them for torch; with ``scheduler=ADDRESS`` the run joins an
  existing cluster (e.g. ``dask-jobqueue``'s, see docs/cluster.md). The files go to the workers in batches of
  ``batch_size``; each worker builds the step once per configuration and keeps it (``worker_step``) and writes
  its per-face files itself (atomically, as in a serial run). A worker runs one network pass at a time; its other task
  threads prepare the next batch and write the last one's files meanwhile (``run_batch_on_worker``). This process
  stays the one writer of the table: it holds the folder lock (the verb's ``output_lock``) and appends the batches'
  rows in file order, so the table is the serial run's, except for the ``seconds`` column. At most
  ``WINDOW_PER_THREAD`` batches per worker thread are in flight or waiting to be written, so the client's memory does
  not grow with the dataset.
* If a worker dies, the scheduler runs its batches again on another worker (up to dask's
  ``distributed.scheduler.allowed-failures``, then the run stops with ``KilledWorker``); a batch's rows are
  written once, when its result arrives. A killed client leaves the table as a killed serial run does, and a
  rerun resumes it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import secrets
import sys
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

from .batch import (BatchRows, BatchSummary, ResultTable, RowWriter, chunks, compute_prepared, deferred_writes,
                    pending_files, prepare_files, remove_stale_temporaries, run_batch, write_batch)

WINDOW_PER_THREAD = 4  # batches in flight or unwritten per worker thread (at least MIN_WINDOW in all)
MIN_WINDOW = 8
CACHED_STEPS = 2  # steps (models) a worker keeps, most recently used first
SERIAL_COMPUTES = 2  # batches a serial run computes at once where its step is ``concurrent`` (see ``Step``)
TASK_THREADS = 2  # Dask threads of a local cluster's worker: one batch is prepared while another's network runs
# The local cluster's Dask settings. Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also fixes
# glibc's mmap threshold at 128 KiB: every batch's tensors are then mapped and faulted in anew (11x the page faults,
# 50 % more CPU per file); unset (docs/cluster.md says how on a cluster of one's own). The workers' statistical
# profiler (the dashboard's Profile page) and the system monitor every 0.5 s took 5 % of a worker's CPU samples
# (py-spy): the profiler is off and the monitor samples every 5 s. Every server's event-loop tick (every 20 ms) and
# the memory monitors of workers and nannies (every 100 ms) kept an idle 2-worker cluster at 0.09 cores, 0.01 with
# both every second (docs/results/benchmark.md).
LOCAL_CLUSTER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                        "distributed.worker.profile.enabled": False, "distributed.admin.system-monitor.interval": "5s",
                        "distributed.admin.tick.interval": "1s", "distributed.worker.memory.monitor-interval": "1s"}


class Step(Protocol):
    """What a verb runs on each file (``prepare``) and on each batch of prepared files (``compute``). A step may
    keep ``seconds`` (a Counter of seconds by stage, e.g. with ``batch.timed``): a serial run reports them in its
    summary's ``stage_seconds``; and ``concurrent``: True where two batches may compute at once on threads and gain
    from it (a reentrant network, ``Explainer.reentrant``, on the CPU), so that a serial run does
    (``SERIAL_COMPUTES``); and ``compute_bound``: True where the compute dwarfs preparing the files (the analyses'
    many passes per face), so that a serial run gives torch every core instead of ``serial_threads``."""

    def prepare(self, file: Path) -> Any: ...

    def compute(self, items: list[tuple[Path, Any]]) -> list[dict]: ...


StepFactory = Callable[[], Step]


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def serial_threads(computes: int = 1) -> int:
    """torch's threads in a serial run by default, with ``computes`` batches computed at once: the available cores
    but one, which is left to the threads that prepare the next batches (``batch.run_batch``'s overlap), shared
    between the computes; at least one. On 2 cores torch's own 2 threads spin beside the helpers: ``plqa explain``
    went from 25.6 to 34.6 files/s with YuNet, 12.7 to 13.3 with MTCNN (docs/results/benchmark.md)."""
    return max(1, (available_cores() - 1) // computes)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block, restored after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_files(inputs: Sequence[str | os.PathLike], table: ResultTable, make_step: StepFactory, batch_size: int = 8,
              debug: bool = False, desc: str = "plqa", workers: int | None = None, scheduler: str | None = None,
              threads: int | None = None, outputs: str | os.PathLike | None = None) -> BatchSummary:
    """Process every image file under ``inputs`` that ``table`` does not hold as done; see the module docstring.
    With none left, no step is built (no model loaded) and no cluster started.

    ``workers`` (≥ 1) and ``scheduler`` exclude each other. ``threads``: torch threads per worker, or of this
    process in a serial run (default: with ``workers``, the available cores split between them; in a serial run
    ``serial_threads``, shared by its computes, or every core for a ``compute_bound`` step, and restored afterwards;
    on an existing cluster torch's own setting, which dask's nanny makes 1). ``outputs``: the folder the workers
    write their files into; after a cluster run the temporaries that a worker killed inside a write left there are
    removed (the caller holds its ``output_lock``).
    """
    if workers is not None and scheduler is not None:
        raise ValueError("give either workers (a local cluster) or scheduler (an existing one), not both")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be ≥ 1, not {workers}")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be ≥ 1, not {threads}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be ≥ 1, not {batch_size}")
    files, todo = pending_files(inputs, table)
    if not todo:  # nothing left (a finished run resumed, or no image): no model to load, no cluster to start
        return BatchSummary(total=len(files), skipped=len(files), ok=0, errors=0, table=table.path)
    if workers is None and scheduler is None:
        step = make_step()
        computes = SERIAL_COMPUTES if getattr(step, "concurrent", False) else 1
        if threads is None:
            threads = available_cores() if getattr(step, "compute_bound", False) else serial_threads(computes)
        with torch_threads(threads):
            summary = run_batch(inputs, table, step.prepare, step.compute, batch_size=batch_size, debug=debug,
                                desc=desc, overlap=True, computes=computes, pending=(files, todo))
        summary.stage_seconds = dict(getattr(step, "seconds", {}))
        return summary
    if workers is not None and threads is None:
        threads = max(1, available_cores() // workers)
    with cluster_client(workers, scheduler, threads) as client, RowWriter(table, len(todo), desc) as writer:
        _run_on_cluster(client, todo, writer, make_step, batch_size, debug, threads)
    if outputs is not None:
        removed = remove_stale_temporaries(outputs)
        if removed:
            print(f"plqa: removed {removed} temporary file(s) that killed workers left in {outputs}", file=sys.stderr)
    return writer.summary(files, todo)


@contextmanager
def cluster_client(workers: int | None, scheduler: str | None, threads: int | None) -> Iterator:
    """A ``distributed.Client`` of a new LocalCluster of ``workers`` processes or of the cluster at ``scheduler``,
    closed on exit; prints the dashboard's address when one is up (it needs bokeh)."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler is not None:
        client = Client(scheduler)
    else:
        # torch gets the threads (the nanny would otherwise set OMP_NUM_THREADS=1); a failed task's error reaches
        # the client, which reports it: the workers' own logs stay quiet
        with dask.config.set(LOCAL_CLUSTER_CONFIG):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=TASK_THREADS, processes=True,
                                   silence_logs=logging.CRITICAL, dashboard_address=":0",
                                   env={"OMP_NUM_THREADS": str(threads)})
            client = Client(cluster)
    try:
        # without bokeh the scheduler still answers on the dashboard's port, with a page asking for bokeh
        if importlib.util.find_spec("bokeh") and "dashboard" in client.scheduler_info().get("services", {}):
            print(f"plqa: Dask dashboard at {client.dashboard_link}", file=sys.stderr)
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_on_cluster(client, todo: list[Path], writer: RowWriter, make_step: StepFactory, batch_size: int,
                    debug: bool, threads: int | None) -> None:
    """Submit the batches of ``todo`` through a sliding window and hand their rows to ``writer`` in file order."""
    from distributed import as_completed

    key = hashlib.sha256(pickle.dumps(make_step)).hexdigest()  # the configuration: what the worker caches by
    run = secrets.token_hex(8)  # task names of this run only
    # the factory travels once, as a task's result the workers share (and recompute if every copy is lost)
    factory = client.submit(_identity, make_step, key=f"plqa-step-{run}", pure=False)
    batches = list(chunks(todo, batch_size))
    index: dict[str, int] = {}
    done: dict[int, BatchRows] = {}
    submitted = written = 0
    running = as_completed()

    def submit_more() -> None:
        nonlocal submitted
        limit = max(MIN_WINDOW, WINDOW_PER_THREAD * sum(client.nthreads().values()))
        while submitted < len(batches) and submitted - written < limit:
            fut = client.submit(run_batch_on_worker, key, factory, batches[submitted], debug, threads,
                                key=f"plqa-batch-{run}-{submitted}", pure=False)
            index[fut.key] = submitted
            running.add(fut)
            submitted += 1

    submit_more()
    for fut in running:
        done[index.pop(fut.key)] = fut.result()  # re-raises a failed batch (KilledWorker after repeated deaths)
        fut.release()
        while written in done:
            writer.add(done.pop(written))
            written += 1
        submit_more()
    factory.release()


def _identity(x):
    return x


_steps: OrderedDict[str, Step] = OrderedDict()
_steps_lock = threading.Lock()
_network_lock = threading.Lock()  # one batch's compute at a time in a worker process


def worker_step(key: str, make_step: StepFactory, threads: int | None) -> Step:
    """This process's step for the configuration ``key``, built on first use and kept (``CACHED_STEPS`` of
    them); sets torch's threads first when ``threads`` is given."""
    with _steps_lock:
        if key not in _steps:
            if threads is not None:
                import torch

                torch.set_num_threads(threads)
            _steps[key] = make_step()
            while len(_steps) > CACHED_STEPS:
                _steps.popitem(last=False)
        _steps.move_to_end(key)
        return _steps[key]


def run_batch_on_worker(key: str, make_step: StepFactory, files: list[Path], debug: bool,
                        threads: int | None) -> BatchRows:
    """A worker's task: the rows of one batch of files, as ``batch.process_files`` gives them with this worker's
    step. Only the compute (the network pass) holds the worker's ``_network_lock``: the files are prepared before
    it and the outputs written after it, so that on a worker with several task threads the network of one batch
    runs while the next is prepared, as in a serial run (``batch.run_batch``'s overlap)."""
    step = worker_step(key, make_step, threads)
    batch = prepare_files(files, step.prepare, debug)
    with deferred_writes() as writes, _network_lock:
        rows_of = compute_prepared(batch, step.compute, debug)
    return write_batch(batch, rows_of, writes, debug)
