"""The widget notebooks: saved clean and up to date, and each runs top to bottom headless (nbclient) in
quick mode (PLQA_QUICK=1) on a kernel of the interpreter running the tests."""
from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
KERNEL = "plqa-nb-test"
PLOTLY = "application/vnd.plotly.v1+json"
WIDGET = "application/vnd.jupyter.widget-view+json"
# a hang guard, not a speed goal: a quick-mode cell takes seconds on a quiet machine, and the bound must hold at four
# times the load (`make test-under-load`); the notebooks' speed is in the browser benchmark (`make bench-ui`)
CELL_TIMEOUT_S = 900


def _generator():
    spec = importlib.util.spec_from_file_location("make_notebooks", REPO / "scripts" / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()
NAMES = list(GENERATOR.SPECS)


def test_notebooks_are_clean_and_up_to_date():
    assert GENERATOR.main(["--check"]) == 0
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), name


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory) -> Path:
    """A Jupyter data dir holding a kernelspec for this interpreter (works on a fresh clone with only .venv)."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "plqa_nb tests", "language": "python"}))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_headless(name, kernel_dir, faces_dir, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    monkeypatch.setenv("PLQA_QUICK", "1")
    monkeypatch.setenv("PLQA_STRICT", "1")  # an explorer's error fails its cell instead of showing in the widget
    monkeypatch.setenv("PLQA_FACES", str(faces_dir))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    t0 = time.perf_counter()
    NotebookClient(nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(REPO)}}).execute()
    seconds = time.perf_counter() - t0
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = [o for c in code for o in c.outputs]
    assert all(c.execution_count is not None for c in code)
    assert not [o for o in outputs if o.output_type == "error"]
    # every notebook shows plotly figures and its explorer widget
    assert sum(PLOTLY in o.get("data", {}) for o in outputs) >= 2, name
    assert any(WIDGET in o.get("data", {}) for o in outputs), name
    print(f"{name}: {seconds:.1f} s")
