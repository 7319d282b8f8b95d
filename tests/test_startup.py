"""Start-up: ``plqa --help``, a verb's help and a refused run load none of the heavy libraries.

Each case runs in a fresh interpreter (this test process has them loaded already) and reports which of
them ended up in ``sys.modules``. No timing is asserted: the figures are in the lead's notes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

HEAVY = ("torch", "cv2", "captum", "plotly", "matplotlib", "facenet_pytorch")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
ENV.pop("MPLBACKEND", None)  # as a user's shell has it: conftest sets it for this process only
REPORT = f"""
import json, sys
code = None
try:
    exec(sys.argv[1])
except SystemExit as exc:
    code = exc.code
print(json.dumps({{"code": code if code is None or isinstance(code, int) else str(code),
                  "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}), file=sys.stderr)
"""


def _loaded(statement: str, *args: str) -> dict:
    """Run ``statement`` (sys.argv[2:] = ``args``) in a fresh interpreter: its exit code and the heavy modules."""
    done = subprocess.run([sys.executable, "-c", REPORT, statement, *args], env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return {**json.loads(done.stderr.strip().splitlines()[-1]), "stdout": done.stdout, "stderr": done.stderr}


def _plqa(*args: str) -> dict:
    return _loaded("from plqa_nb.cli import main; sys.exit(main(sys.argv[2:]))", *args)


def test_importing_the_package_and_listing_the_registries_loads_no_heavy_library():
    r = _loaded("import plqa_nb; from plqa_nb.backbones import available_backbones; "
                "from plqa_nb.quality import available_estimators; from plqa_nb.attribution import available_methods; "
                "print(available_backbones(), available_estimators(), available_methods())")
    assert r["heavy"] == []
    assert "'dlib-resnet'" in r["stdout"] and "'utility'" in r["stdout"] and "'saliency'" in r["stdout"]


def test_the_lazy_attributes_are_the_real_ones():
    import plqa_nb
    from plqa_nb import Explainer, explain
    from plqa_nb.pipeline import Explainer as PipelineExplainer, explain as pipeline_explain

    assert Explainer is PipelineExplainer and explain is pipeline_explain
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        plqa_nb.nothing


@pytest.mark.parametrize("args", [["--help"], ["explain", "--help"], ["quality", "--help"], ["calibrate", "--help"],
                                  ["compare", "--help"], ["evaluate", "erc", "--help"], ["app", "--help"],
                                  ["experiment", "icao", "--help"], ["bench", "--help"]],
                         ids=" ".join)
def test_help_loads_no_heavy_library(args):
    r = _plqa(*args)
    assert r["code"] == 0 and r["heavy"] == []
    assert "usage: plqa" in r["stdout"]


def test_the_top_level_help_lists_every_verb_and_a_verb_lists_the_backbones():
    assert all(verb in _plqa("--help")["stdout"] for verb in ("explain", "quality", "experiment", "bench", "app"))
    assert "dlib-resnet" in _plqa("explain", "--help")["stdout"].replace("\n", " ")


def test_refused_runs_load_no_heavy_library(tmp_path):
    bad_option = _plqa("explain", "photo.jpg", "--out", str(tmp_path / "a"), "--no-such-option")
    assert bad_option["code"] == 2 and "--no-such-option" in bad_option["stderr"] and bad_option["heavy"] == []

    no_input = _plqa("explain", "--out", str(tmp_path / "b"))
    assert "give at least one INPUT" in str(no_input["code"]) and no_input["heavy"] == []

    missing = _plqa("calibrate", str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "new.json"))
    assert missing["code"] == 2 and "no-such-folder: no such folder" in missing["stderr"] and missing["heavy"] == []

    (tmp_path / "calibration.json").write_text("{}")
    exists = _plqa("calibrate", str(tmp_path), "--out", str(tmp_path / "calibration.json"))
    assert exists["code"] == 2 and "--overwrite" in exists["stderr"] and exists["heavy"] == []
