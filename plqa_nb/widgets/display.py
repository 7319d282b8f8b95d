"""Showing things in a notebook: HTML tables, a progress bar, and rendering into an Output widget."""
from __future__ import annotations

import html
from typing import Any, Callable, Sequence

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from IPython.core.formatters import DisplayFormatter
from IPython.display import HTML, display

from .settings import strict_mode

_FORMATTER = DisplayFormatter()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if np.isnan(value) else f"{value:.4g}"
    return html.escape(str(value))


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def table_html(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A list-of-dicts table as an HTML table: floats with 4 significant digits, numbers right-aligned, text
    left-aligned (set on every cell: the notebook's own style right-aligns them all)."""
    if not rows:
        return "<p><i>no rows</i></p>"
    cols = list(columns or rows[0])
    numeric = {c: all(_numeric(r[c]) for r in rows if c in r) for c in cols}

    def style(c: str) -> str:
        return f"text-align:{'right' if numeric[c] else 'left'};padding:2px 8px"

    head = "".join(f"<th style='{style(c)}'>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td style='{style(c)}'>{_cell(r.get(c, ''))}</td>" for c in cols)
                   + "</tr>" for r in rows)
    return f"<table style='border-collapse:collapse;font-size:12px'><tr>{head}</tr>{body}</table>"


def show_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> None:
    """Display a list-of-dicts table in the notebook."""
    display(HTML(table_html(rows, columns)))


def progress_bar(description: str = "faces") -> tuple[w.IntProgress, Callable[[int, int], None]]:
    """An ipywidgets progress bar and the ``progress(done, total)`` callback that moves it."""
    bar = w.IntProgress(value=0, min=0, max=1, description=description)

    def progress(done: int, total: int) -> None:
        bar.max = max(total, 1)
        bar.value = done
        bar.bar_style = "success" if done >= total else ""

    return bar, progress


def output_item(item: Any) -> dict:
    """A displayable (plotly Figure, IPython HTML, …) as a notebook output dict for ``Output.outputs``."""
    if isinstance(item, go.Figure):
        data = pio.renderers["plotly_mimetype"].to_mimebundle(item.to_dict())
    else:
        data, _ = _FORMATTER.format(item)
    return {"output_type": "display_data", "data": data, "metadata": {}}


def render_into(output: w.Output, produce: Callable[[], Sequence[Any]]) -> None:
    """Replace an Output widget's content by the items ``produce()`` returns, or by the error (re-raised in
    strict mode, ``settings.strict_mode``).

    It sets ``output.outputs`` instead of capturing with ``with output:``: that works from any callback,
    and headless executors (nbclient) have no captured output to sync back to the kernel while a cell
    runs, which can stall them.
    """
    try:
        outs = tuple(output_item(item) for item in produce())
    except Exception as exc:  # noqa: BLE001 - a widget shows the error instead of dying silently
        output.outputs = ({"output_type": "stream", "name": "stderr", "text": f"{type(exc).__name__}: {exc}\n"},)
        if strict_mode():
            raise
        return
    output.outputs = outs
