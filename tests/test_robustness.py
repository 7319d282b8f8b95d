"""Bad input, kill-and-resume and data safety in batch runs (issue: faults and data safety)."""
import csv
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from plqa_nb.cli import main


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def messy_folder(faces_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("messy")
    face = np.asarray(Image.open(faces_dir / "london/neutral/004.jpg").convert("RGB"))
    other = np.asarray(Image.open(faces_dir / "london/neutral/005.jpg").convert("RGB"))
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("this is not a photo\n")
    Image.fromarray(face).save(d / "truncated.jpg", quality=95)
    (d / "truncated.jpg").write_bytes((d / "truncated.jpg").read_bytes()[:4000])
    Image.fromarray(face[:8, :8]).save(d / "tiny.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)).save(d / "noise.png")
    Image.fromarray(face.mean(2).astype(np.uint8)).save(d / "grey.png")
    Image.fromarray(np.dstack([face, np.full(face.shape[:2], 255, np.uint8)]), "RGBA").save(d / "rgba.png")
    Image.fromarray(face.mean(2).astype(np.uint16) * 257).save(d / "deep16.png")
    small = cv2.resize(other, None, fx=0.5, fy=0.5)
    two = np.full((face.shape[0], face.shape[1] + small.shape[1], 3), 120, np.uint8)
    two[:, : face.shape[1]] = face
    two[: small.shape[0], face.shape[1]:] = small
    Image.fromarray(two).save(d / "two_faces.jpg", quality=95)
    Image.fromarray(cv2.resize(face, (4000, 4000), interpolation=cv2.INTER_CUBIC)).save(d / "huge.jpg", quality=90)
    return d


def test_messy_folder_gives_clear_rows_and_exit_0(messy_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["explain", str(messy_folder), "--out", str(out), "--quality", "serfiq"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    rows = {os.path.basename(r["file"]): r for r in _rows(out / "results.csv")}
    assert len(rows) == 10
    expect_error = {"empty.jpg": "empty", "text.jpg": "not a readable image", "truncated.jpg": "truncated",
                    "tiny.png": "too small", "noise.png": "no face"}
    for name, words in expect_error.items():
        assert rows[name]["status"] == "error", name
        assert name in rows[name]["error"] and words in rows[name]["error"], rows[name]["error"]
    for name in ("grey.png", "rgba.png", "deep16.png", "two_faces.jpg", "huge.jpg"):
        assert rows[name]["status"] == "ok", rows[name]["error"]
        assert np.load(out / rows[name]["output"])["plq"].shape == (150, 150)
    assert rows["two_faces.jpg"]["faces_found"] == "2"


def test_debug_shows_the_traceback(messy_folder, tmp_path, capsys):
    main(["explain", str(messy_folder / "text.jpg"), "--out", str(tmp_path / "o"), "--quality", "serfiq",
          "--debug"])
    assert "Traceback" in capsys.readouterr().err


def test_kill_and_resume_keeps_every_file_once(faces_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(1, 13):
        (src / f"{i:03d}.jpg").write_bytes((faces_dir / f"london/smiling/{i:03d}.jpg").read_bytes())
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "plqa_nb.cli", "explain", str(src), "--out", str(out), "--quality", "serfiq",
           "--batch-size", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if (out / "results.csv").exists() and len((out / "results.csv").read_text().splitlines()) >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(_rows(out / "results.csv"))
    assert 0 < done_before < 12, "the kill should land part-way"
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    rows = _rows(out / "results.csv")
    assert sorted(os.path.basename(r["file"]) for r in rows) == [f"{i:03d}.jpg" for i in range(1, 13)]
    assert all(r["status"] == "ok" for r in rows)
    for r in rows:
        assert np.load(out / r["output"])["plq"].shape == (150, 150)
    assert not list(out.rglob("*.tmp"))
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot


def test_overwrite_redoes_and_bad_arguments_exit_nonzero(faces_dir, tmp_path):
    out = tmp_path / "o"
    photo = str(faces_dir / "london/neutral/006.jpg")
    assert main(["explain", photo, "--out", str(out), "--quality", "serfiq"]) == 0
    first = _rows(out / "results.csv")
    assert main(["explain", photo, "--out", str(out), "--quality", "serfiq", "--seed", "5", "--overwrite"]) == 0
    second = _rows(out / "results.csv")
    assert len(second) == 1 and second[0]["quality"] != first[0]["quality"]
    assert main(["explain", photo, "--out", str(out), "--calibration", str(tmp_path / "missing.json")]) == 2
    with pytest.raises(SystemExit):
        main(["explain", photo, "--out", str(out), "--backbone", "no-such-net"])
