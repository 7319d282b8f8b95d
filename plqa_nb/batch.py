"""Batch runs over folders: one CSV row per input, atomic outputs, resume after a kill.

Rules (shared by every verb that walks files):
* rows must hold only the table's columns (an unknown key is an error, never silently dropped);
* each input yields one row (several with ``multi_row``, written together); an ``InputError``
  becomes a single row with status ``error`` and the run goes on; no traceback unless ``debug``;
* every output file is written to a temporary ``.plqa-tmp-<16 hex digits>-<file name>`` beside it
  and renamed, so a killed run leaves either the old file, the complete new one, or nothing, plus
  at worst such a temporary, which the next run into the folder removes (``output_lock``);
* one writer per output folder: a verb holds ``output_lock`` (an flock on ``.plqa.lock``, released
  by the OS however the process ends) for its whole run; a second run stops with ``FolderLockedError``;
* a step writes each input's files through ``write_output``: at once, or, in an overlapped serial run
  (``run_batch``), on a writer thread that appends a batch's rows only once its files are written;
* rows are appended (flushed, fsync'ed) as files finish; a rerun into the same folder
  skips files whose row is ``ok`` and whose outputs exist, and retries the others;
  ``overwrite=True`` starts the table afresh and replaces outputs.

``process_files`` turns a batch of files into its rows (wherever it runs: here, or on a Dask worker, see
``plqa_nb.scale``); ``RowWriter`` is the run's one writer of rows; ``run_batch`` joins them in this process,
with ``overlap`` on threads (``prepare_files`` on two, ``compute_prepared``, ``write_batch``).
"""
from __future__ import annotations

import csv
import functools
import io
import itertools
import os
import re
import secrets
import sys
import threading
import time
import traceback
import warnings
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .errors import FolderLockedError, InputError, NumericalError
from .images import encode_png, iter_image_files

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None

TMP_PREFIX = ".plqa-tmp-"
TMP_PATTERN = re.compile(re.escape(TMP_PREFIX) + r"[0-9a-f]{16}-(?P<target>.+)", re.DOTALL)
LOCK_NAME = ".plqa.lock"
PREPARE_AHEAD = 2  # batches an overlapped run prepares, each on its own thread, while it computes one


def temporary_path(path: Path) -> Path:
    """A fresh temporary name for ``path``'s atomic write: ``.plqa-tmp-<16 hex digits>-<name>`` beside it."""
    return path.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}-{path.name}"


def is_temporary(name: str, target: str | None = None) -> bool:
    """True for a name made by ``temporary_path`` (for the file ``target`` only, when given)."""
    m = TMP_PATTERN.fullmatch(name)
    return m is not None and target in (None, m["target"])


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save_npz(path: str | os.PathLike, compress: bool = True, **arrays) -> None:
    """``arrays`` as an .npz at ``path`` (atomically): deflated with ``compress``, else stored as they are."""
    import numpy as np

    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_save_png(path: str | os.PathLike, rgb) -> None:
    """uint8 RGB [H, W, 3] as a PNG (``images.encode_png``) at ``path``, atomically."""
    atomic_write_bytes(path, encode_png(rgb))


def atomic_save_figure(path: str | os.PathLike, fig, dpi: int = 110) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def atomic_save_csv(path: str | os.PathLike, rows: Sequence[dict], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="raise", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def remove_stale_temporaries(folder: str | os.PathLike, target: str | None = None) -> int:
    """Delete the temporaries that killed runs left under ``folder`` (recursively; with ``target``, only
    that file's, in ``folder`` itself); returns how many. Only names made by ``temporary_path`` go: a
    user's ``notes.tmp`` stays. Call it holding the folder's ``output_lock``, when no write is in flight."""
    folder = Path(folder)
    found = folder.glob(f"{TMP_PREFIX}*") if target is not None else folder.rglob(f"{TMP_PREFIX}*")
    stale = [p for p in found if is_temporary(p.name, target) and p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


@contextmanager
def output_lock(out: str | os.PathLike, single_file: bool = False) -> Iterator[Path]:
    """Hold the one-writer lock of an output folder, after removing its stale temporaries; yields the folder.

    ``out`` is the folder (created if missing); with ``single_file`` it is an output file (``plqa quality``'s
    CSV, ``plqa calibrate``'s JSON): its parent folder is locked and only that file's temporaries are removed.
    The lock is an flock on ``<folder>/.plqa.lock``, which holds the holder's pid and command line while it
    runs; the OS drops the lock when the process ends, even by ``kill -9``, so it never goes stale. Raises
    ``FolderLockedError``, naming the folder and the other process, when another process holds it.
    """
    out = Path(out)
    folder = out.parent if single_file else out
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is None:
            warnings.warn(f"no flock on this platform: nothing stops a second run into {folder}", stacklevel=3)
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 4096).decode(errors="replace").strip() or "pid unknown"
                raise FolderLockedError(f"{folder} is in use by another plqa run ({holder}); wait for it to "
                                        "finish or choose another output folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv)}\n".encode())
        try:
            removed = remove_stale_temporaries(folder, out.name if single_file else None)
            if removed:
                print(f"plqa: removed {removed} stale temporary file(s) of an interrupted run from {folder}",
                      file=sys.stderr)
            yield folder
        finally:
            os.ftruncate(fd, 0)  # an ended run leaves an empty lock file: reruns leave the folder as it was
    finally:
        os.close(fd)  # releases the flock


def output_stem(file: Path, root: Path) -> Path:
    """Unique, stable relative name for a file's outputs: its path under ``root``, suffix kept."""
    try:
        rel = file.resolve().relative_to(root)
    except ValueError:
        rel = Path(file.name)
    return rel


def common_root(files: Sequence[Path]) -> Path:
    """The deepest folder containing every file (resolved)."""
    parents = [str(f.resolve().parent) for f in files]
    return Path(os.path.commonpath(parents)) if parents else Path.cwd()


class ResultTable:
    """A results CSV keyed by ``file`` with append-as-you-go and resume.

    Rows already ``ok`` whose outputs (``output_columns``, relative to the CSV's folder)
    exist are kept and reported by ``done`` (by ``key``) and ``done_files``; anything else is
    dropped so it is redone. With ``multi_row`` a file may have several rows: it counts as done
    only when all its rows are, and a write cut by a kill drops the whole last file's rows.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], overwrite: bool = False,
                 output_columns: Sequence[str] = ("output",), key: Callable[[dict], str] | None = None,
                 multi_row: bool = False):
        self.path = Path(path)
        self.columns = list(columns)
        self.key = key or (lambda row: row["file"])
        self.output_columns = [c for c in output_columns if c in self.columns]
        self.done: dict[str, dict] = {}
        self.done_files: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if overwrite or not self.path.exists():
            atomic_save_csv(self.path, [], self.columns)
            return
        text = self.path.read_text(errors="replace")
        rows = list(csv.reader(io.StringIO(text)))
        header, body = (rows[0], rows[1:]) if rows else (None, [])
        if header != self.columns:
            raise ValueError(f"{self.path} was written with other columns ({header}); use --overwrite or "
                             "another output folder")
        cut = bool(body) and not text.endswith("\n")
        if cut:
            body = body[:-1]  # a line cut by a kill
        recs = [dict(zip(self.columns, row)) for row in body]
        bad = {r.get("file") for r, row in zip(recs, body)
               if len(row) != len(self.columns) or r.get("status") != "ok" or not all(
                   not r[c] or (self.path.parent / r[c]).exists() for c in self.output_columns)}
        if multi_row and cut and recs:
            bad.add(recs[-1]["file"])  # its rows may continue in the cut line
        kept = [r for r in recs if r.get("file") not in bad]
        if not multi_row:
            kept = list({self.key(r): r for r in kept}.values())
        self.done = {self.key(r): r for r in kept}
        self.done_files = {r["file"] for r in kept}
        if len(kept) != len(rows) - 1 or cut:
            atomic_save_csv(self.path, kept, self.columns)

    def append(self, rows: Iterable[dict]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="raise", lineterminator="\n")
        w.writerows(rows)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())


def error_row(file: str, exc: BaseException, seconds: float = 0.0) -> dict:
    """A result row for a failed input; unexpected exceptions are labelled as internal errors."""
    if isinstance(exc, InputError):
        msg = str(exc)
    elif isinstance(exc, NumericalError):
        msg = f"{file}: {exc}"
    else:
        msg = f"{file}: internal error {type(exc).__name__}: {exc}"
    msg = " ".join(msg.split())  # one line per row
    return {"file": file, "status": "error", "error": msg, "seconds": f"{seconds:.3f}"}


@dataclass
class BatchSummary:
    """Files in all, already done, ok and failed in this run; the table; the wall seconds from the first batch to
    the last row (after a serial run's model load; a cluster's workers load theirs within them); the seconds a
    serial run's step spent per stage (its ``seconds``, if it keeps them; the stages overlap)."""
    total: int
    skipped: int
    ok: int
    errors: int
    table: Path
    wall_s: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)


_TIMED = threading.Lock()  # the += of ``timed``, from any thread


@contextmanager
def timed(seconds: Counter[str], stage: str) -> Iterator[None]:
    """Add the block's wall seconds to ``seconds[stage]`` (blocks on several threads add up)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        with _TIMED:
            seconds[stage] += time.perf_counter() - t0


@dataclass
class BatchRows:
    """What one batch of files yields: its rows in file order, and lines for stderr (unexpected failures; their
    tracebacks with ``debug``). Plain data, so a worker process can send it back."""
    rows: list[dict]
    notes: list[str]


_deferred = threading.local()  # .writes: the list ``write_output`` queues into on this thread, if any


def write_output(file: str | os.PathLike, write: Callable[..., None], *args, **kwargs) -> None:
    """Write an output file of the input ``file``: ``write(*args, **kwargs)`` now, or, while this thread computes
    a batch of an overlapped serial run (``run_batch``), on the run's writer thread before the batch's rows are
    appended. A step's ``compute`` writes its files through this."""
    writes = getattr(_deferred, "writes", None)
    if writes is None:
        write(*args, **kwargs)
    else:
        writes.append((str(file), functools.partial(write, *args, **kwargs)))


@contextmanager
def deferred_writes() -> Iterator[list[tuple[str, Callable[[], None]]]]:
    """Queue the ``write_output`` calls of this thread, as (input file, write), instead of running them (nested:
    the inner block has a queue of its own)."""
    outer = getattr(_deferred, "writes", None)
    _deferred.writes = writes = []
    try:
        yield writes
    finally:
        _deferred.writes = outer


def _keeping_writes_if_done(compute: Callable[[list[tuple[Path, Any]]], list[dict]],
                            items: list[tuple[Path, Any]]) -> list[dict]:
    """``compute(items)``; inside ``deferred_writes`` its queued writes join this thread's queue only if it
    returns (a failed call leaves none behind)."""
    outer = getattr(_deferred, "writes", None)
    if outer is None:
        return compute(items)
    with deferred_writes() as writes:
        rows = compute(items)
    outer.extend(writes)
    return rows


def traceback_note(exc: BaseException) -> str:
    """The traceback of ``exc`` as one note for stderr (what ``--debug`` prints)."""
    return "".join(traceback.format_exception(exc)).rstrip()


@dataclass
class PreparedBatch:
    """One batch after ``prepare``: the files in order, the prepared ones as (file, prepared, seconds), the rows
    of those that failed by file, and notes for stderr."""
    files: list[Path]
    items: list[tuple[Path, Any, float]]
    failed: dict[str, list[dict]]
    notes: list[str]

    def fail(self, file: str | os.PathLike, exc: BaseException, seconds: float, debug: bool) -> list[dict]:
        """The error row of ``file`` (``error_row``), its note unless an ``InputError`` (with its traceback when
        ``debug``)."""
        row = error_row(str(file), exc, seconds)
        if debug:
            self.notes.append(traceback_note(exc))
        if not isinstance(exc, InputError):
            self.notes.append(row["error"])
        return [row]


def prepare_files(files: Sequence[Path], prepare: Callable[[Path], Any], debug: bool = False) -> PreparedBatch:
    """``prepare(file)`` each file; one that raises (InputError or not) gets its error row."""
    batch = PreparedBatch(list(files), [], {}, [])
    for f in files:
        t0 = time.perf_counter()
        try:
            batch.items.append((f, prepare(f), time.perf_counter() - t0))
        except Exception as exc:
            batch.failed[str(f)] = batch.fail(f, exc, time.perf_counter() - t0, debug)
    return batch


def compute_prepared(batch: PreparedBatch, compute: Callable[[list[tuple[Path, Any]]], list[dict]],
                     debug: bool = False) -> dict[str, list[dict]]:
    """The rows of the batch's prepared files by file (``seconds`` a float for now), from ``compute`` of them all
    or, if that fails, of each alone; the failed files' rows are added. Inside ``deferred_writes`` only the writes
    of the calls that succeeded stay queued."""
    rows_of = dict(batch.failed)
    if not batch.items:
        return rows_of
    t0 = time.perf_counter()
    try:
        rows = _keeping_writes_if_done(compute, [(f, p) for f, p, _ in batch.items])
        share = (time.perf_counter() - t0) / len(batch.items)
        prep = {str(f): tp for f, _, tp in batch.items}
        for row in rows:
            row["seconds"] = prep[row["file"]] + share
            rows_of.setdefault(row["file"], []).append(row)
        return rows_of
    except Exception as exc:  # isolate the failing item
        if debug:
            batch.notes.append(traceback_note(exc))
    for f, p, tp in batch.items:
        t1 = time.perf_counter()
        try:
            item_rows = _keeping_writes_if_done(compute, [(f, p)])
            for row in item_rows:
                row["seconds"] = tp + time.perf_counter() - t1
        except Exception as exc1:
            item_rows = batch.fail(f, exc1, tp + time.perf_counter() - t1, debug)
        rows_of[str(f)] = item_rows
    return rows_of


def batch_rows(batch: PreparedBatch, rows_of: dict[str, list[dict]]) -> BatchRows:
    """The batch's rows in file order, ``seconds`` formatted."""
    rows = [row for f in batch.files for row in rows_of.get(str(f), [])]
    for row in rows:
        row["seconds"] = f"{float(row['seconds']):.3f}"
    return BatchRows(rows, batch.notes)


def process_files(files: Sequence[Path], prepare: Callable[[Path], Any],
                  compute: Callable[[list[tuple[Path, Any]]], list[dict]], debug: bool = False) -> BatchRows:
    """Prepare each file, compute the prepared ones together, and return their rows in file order.

    ``prepare(file)`` may raise InputError (→ an error row). ``compute(items)`` gets [(file, prepared)] and
    returns the items' rows (status/output set, ``file`` = str(file); several per item for a ``multi_row``
    table); if it fails for the batch, each item is retried alone so one bad face cannot sink its neighbours.
    ``seconds`` of a row: its file's preparation plus its share of the compute.
    """
    batch = prepare_files(files, prepare, debug)
    return batch_rows(batch, compute_prepared(batch, compute, debug))


def pending_files(inputs: Sequence[str | os.PathLike], table: ResultTable) -> tuple[list[Path], list[Path]]:
    """(every image file under ``inputs``, those the table does not hold as done), in walking order."""
    files = iter_image_files(list(inputs))
    return files, [f for f in files if str(f) not in table.done_files]


class RowWriter:
    """The one writer of a run's rows: appends each batch's rows to the table, prints its notes, counts files
    ok and failed, and moves one progress bar over ``total`` files. Use as a context manager."""

    def __init__(self, table: ResultTable, total: int, desc: str):
        from tqdm import tqdm

        self.table, self.ok, self.errors = table, 0, 0
        self.start = time.perf_counter()
        self._write = tqdm.write
        self.bar = tqdm(total=total, desc=desc, unit="file", file=sys.stderr, disable=None)

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def add(self, batch: BatchRows) -> None:
        for note in batch.notes:
            self._write(note, file=sys.stderr)
        if not batch.rows:
            return
        self.table.append(batch.rows)
        files = {r["file"] for r in batch.rows}
        failed = {r["file"] for r in batch.rows if r.get("status") != "ok"}
        self.ok += len(files - failed)
        self.errors += len(failed)
        self.bar.update(len(files))

    def summary(self, files: Sequence[Path], todo: Sequence[Path]) -> BatchSummary:
        return BatchSummary(total=len(files), skipped=len(files) - len(todo), ok=self.ok, errors=self.errors,
                            table=self.table.path, wall_s=time.perf_counter() - self.start)


def chunks(items: Sequence[Path], size: int) -> Iterator[list[Path]]:
    """Consecutive slices of ``items`` of ``size`` (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"batch size must be ≥ 1, not {size}")
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def write_batch(batch: PreparedBatch, rows_of: dict[str, list[dict]], writes: list[tuple[str, Callable[[], None]]],
                debug: bool = False) -> BatchRows:
    """Run a batch's queued writes (``deferred_writes``) in order and return its rows (``batch_rows``): a file
    whose write fails gets its error row instead of its rows; each write's seconds count to its file."""
    failed: set[str] = set()
    for file, write in writes:
        if file in failed:  # its other files are not written, as when compute fails for it
            continue
        t0 = time.perf_counter()
        try:
            write()
        except Exception as exc:
            failed.add(file)
            before = float(rows_of[file][0]["seconds"]) if rows_of.get(file) else 0.0
            rows_of[file] = batch.fail(file, exc, before + time.perf_counter() - t0, debug)
            continue
        for row in rows_of.get(file, []):
            row["seconds"] = float(row["seconds"]) + time.perf_counter() - t0
    return batch_rows(batch, rows_of)


def run_batch(inputs: Sequence[str | os.PathLike], table: ResultTable, prepare: Callable[[Path], Any],
              compute: Callable[[list[tuple[Path, Any]]], list[dict]], batch_size: int = 8,
              debug: bool = False, desc: str = "plqa", overlap: bool = False, computes: int = 1,
              pending: tuple[list[Path], list[Path]] | None = None) -> BatchSummary:
    """Walk ``inputs`` (files and folders), skip the files the table holds as done, and process the others in
    batches of ``batch_size`` files in this process (``process_files``), appending each batch's rows in file
    order. Counts in the summary are per file. ``pending``: ``pending_files(inputs, table)`` where the caller has
    walked them already (a walk stats every file: 0.5 s for 10 000).

    ``overlap``: ``PREPARE_AHEAD`` threads prepare the next batches (one each; on 2 cores MTCNN leaves room for a
    second detection beside the first), ``computes`` threads compute them, and one runs the writes ``compute``
    queued with ``write_output`` and then appends each batch's rows, in the batches' order, so that rows still
    follow their files. Every thread keeps the caller's niceness: helpers niced below the network's thread starved
    when other busy processes shared the machine (docs/results/benchmark.md). The rows and files are those of a
    run without ``overlap`` (up to ``seconds``);
    ``prepare`` must be safe to run on several threads at once and beside ``compute``, and ``compute`` too where
    ``computes`` > 1.
    """
    files, todo = pending if pending is not None else pending_files(inputs, table)
    with RowWriter(table, len(todo), desc) as writer:
        if overlap:
            _run_overlapped(chunks(todo, batch_size), writer, prepare, compute, debug, computes)
        else:
            for batch in chunks(todo, batch_size):
                writer.add(process_files(batch, prepare, compute, debug))
    return writer.summary(files, todo)


def _run_overlapped(batches: Iterator[list[Path]], writer: RowWriter, prepare: Callable[[Path], Any],
                    compute: Callable[[list[tuple[Path, Any]]], list[dict]], debug: bool, computes: int) -> None:
    """``run_batch``'s threads (see there)."""
    def compute_when_prepared(prepared: Future) -> tuple[PreparedBatch, dict[str, list[dict]], list]:
        batch = prepared.result()
        with deferred_writes() as writes:
            return batch, compute_prepared(batch, compute, debug), writes

    def finish(batch: PreparedBatch, rows_of: dict[str, list[dict]], writes: list) -> None:
        writer.add(write_batch(batch, rows_of, writes, debug))

    with ThreadPoolExecutor(PREPARE_AHEAD, "plqa-prepare") as preparer, \
            ThreadPoolExecutor(computes, "plqa-compute") as computer, \
            ThreadPoolExecutor(1, "plqa-write") as output:
        computed: deque[Future] = deque()  # in the batches' order

        def submit(n: int) -> None:
            for b in itertools.islice(batches, n):
                computed.append(computer.submit(compute_when_prepared, preparer.submit(prepare_files, b, prepare,
                                                                                        debug)))

        submit(PREPARE_AHEAD + computes - 1)
        written = None
        try:
            while computed:
                batch, rows_of, writes = computed.popleft().result()
                submit(1)
                if written is not None:
                    written.result()  # one batch at a time waits for its writes; re-raises the writer's error
                written = output.submit(finish, batch, rows_of, writes)
        except BaseException:  # an error or Ctrl-C: the batches not started yet are dropped, not computed
            for f in computed:
                f.cancel()
            raise
        if written is not None:
            written.result()
