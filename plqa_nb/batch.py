"""Batch runs over folders: one CSV row per input, atomic outputs, resume after a kill.

Rules (shared by every verb that walks files):
* each input yields exactly one row; an ``InputError`` becomes a row with status ``error``
  and the run goes on; no traceback unless ``debug``;
* every output file is written to a temporary name and renamed, so a killed run leaves
  either the old file, the complete new one, or nothing;
* rows are appended (flushed, fsync'ed) as files finish; a rerun into the same folder
  skips files whose row is ``ok`` and whose outputs exist, and retries the others;
  ``overwrite=True`` starts the table afresh and replaces outputs.
"""
from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .errors import InputError, NumericalError
from .images import iter_image_files


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def atomic_save_npz(path: str | os.PathLike, **arrays) -> None:
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_save_png(path: str | os.PathLike, rgb) -> None:
    import cv2

    ok, enc = cv2.imencode(".png", rgb[..., ::-1])
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    atomic_write_bytes(path, enc.tobytes())


def atomic_save_figure(path: str | os.PathLike, fig, dpi: int = 110) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def atomic_save_csv(path: str | os.PathLike, rows: Sequence[dict], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(path, buf.getvalue().encode())


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
    exist are kept and reported by ``done``; anything else is dropped so it is redone.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str], overwrite: bool = False,
                 output_columns: Sequence[str] = ("output",), key: Callable[[dict], str] | None = None):
        self.path = Path(path)
        self.columns = list(columns)
        self.key = key or (lambda row: row["file"])
        self.output_columns = [c for c in output_columns if c in self.columns]
        self.done: dict[str, dict] = {}
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
        if body and not text.endswith("\n"):
            body = body[:-1]  # a line cut by a kill
        kept = []
        for row in body:
            rec = dict(zip(self.columns, row))
            if len(row) == len(self.columns) and rec.get("status") == "ok" and all(
                    not rec[c] or (self.path.parent / rec[c]).exists() for c in self.output_columns):
                kept.append(rec)
        self.done = {self.key(r): r for r in kept}
        if len(self.done) != len(rows) - 1 or not text.endswith("\n"):
            atomic_save_csv(self.path, list(self.done.values()), self.columns)

    def append(self, rows: Iterable[dict]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
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
    total: int
    skipped: int
    ok: int
    errors: int
    table: Path


def run_batch(inputs: Sequence[str | os.PathLike], table: ResultTable, prepare: Callable[[Path], Any],
              compute: Callable[[list[tuple[Path, Any]]], list[dict]], batch_size: int = 8,
              debug: bool = False, desc: str = "plqa") -> BatchSummary:
    """Walk ``inputs`` (files and folders), prepare each file, compute in batches, append rows.

    ``prepare(file)`` may raise InputError (→ an error row). ``compute(items)`` gets
    [(file, prepared)] and returns one row per item (with status/output set); if it fails
    for a batch, each item is retried alone so one bad face cannot sink its neighbours.
    """
    from tqdm import tqdm

    files = iter_image_files(list(inputs))
    todo = [f for f in files if str(f) not in table.done]
    ok = errors = 0
    bar = tqdm(total=len(todo), desc=desc, unit="file", file=sys.stderr, disable=None)

    def report(exc: BaseException) -> None:
        if debug:
            traceback.print_exception(exc, file=sys.stderr)

    def flush(batch: list[tuple[Path, Any, float]]) -> None:
        nonlocal ok, errors
        if not batch:
            return
        t0 = time.perf_counter()
        try:
            rows = compute([(f, p) for f, p, _ in batch])
            share = (time.perf_counter() - t0) / len(batch)
            for row, (_, _, tp) in zip(rows, batch):
                row["seconds"] = f"{tp + share:.3f}"
        except Exception as exc:  # isolate the failing item
            report(exc)
            rows = []
            for f, p, tp in batch:
                t1 = time.perf_counter()
                try:
                    row = compute([(f, p)])[0]
                    row["seconds"] = f"{tp + time.perf_counter() - t1:.3f}"
                except Exception as exc1:
                    report(exc1)
                    row = error_row(str(f), exc1, tp + time.perf_counter() - t1)
                rows.append(row)
        table.append(rows)
        for r in rows:
            ok += r.get("status") == "ok"
            errors += r.get("status") != "ok"
        bar.update(len(batch))

    pending: list[tuple[Path, Any, float]] = []
    for f in todo:
        t0 = time.perf_counter()
        try:
            pending.append((f, prepare(f), time.perf_counter() - t0))
        except Exception as exc:
            report(exc)
            row = error_row(str(f), exc, time.perf_counter() - t0)
            table.append([row])
            errors += 1
            bar.update(1)
            if not isinstance(exc, InputError):
                tqdm.write(row["error"], file=sys.stderr)
        if len(pending) >= batch_size:
            flush(pending)
            pending = []
    flush(pending)
    bar.close()
    return BatchSummary(total=len(files), skipped=len(files) - len(todo), ok=ok, errors=errors, table=table.path)
