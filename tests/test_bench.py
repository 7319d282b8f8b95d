"""``plqa bench`` in quick mode (CPU, and CUDA where it exists) and CPU/CUDA agreement of the maps."""
from __future__ import annotations

import json
import math

import pytest
import torch

from plqa_nb.backbones import load_backbone
from plqa_nb.bench import ESTIMATORS, OTHER_METHODS, format_table, format_ui_timings
from plqa_nb.cli import main
from plqa_nb.data import astronaut
from plqa_nb.pipeline import Explainer, crops_to_tensor
from tolerances import (DEVICE_EMBEDDING_ATOL, DEVICE_PLQ_ATOL, DEVICE_QUALITY_ATOL, DEVICE_SALIENCY_REL,
                        max_relative)

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

LATENCY_KEYS = {"forward", "forward_backward", *(f"{kind}_{e}" for kind in ("quality", "plq_map") for e in ESTIMATORS),
                *(f"map_{m}" for m in OTHER_METHODS), "deviation_map", "counterfactual_map"}  # dlib ships a norm


@pytest.fixture(scope="module", params=["cpu", pytest.param("cuda", marks=cuda_only)])
def quick(request, tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    threads = torch.get_num_threads()
    try:  # one thread: steady on a shared machine, where two threads stall at every parallel op
        assert main(["bench", "--quick", "--threads", "1", "--device", request.param, "--json", str(path)]) == 0
    finally:
        torch.set_num_threads(threads)
    return json.loads(path.read_text())


def _positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_quick_json_keys_and_values(quick):
    assert quick["torch"] == torch.__version__ and quick["num_threads"] == 1
    assert (quick["backbone"], quick["weights"], quick["crop_size"]) == ("dlib-resnet", "pretrained", 150)
    assert quick["batch_sizes"] == [1, 2] and quick["m"] == 10 and quick["faceqan_k_l"] == [2, 2] and quick["quick"]
    assert set(quick["latency_ms"]) == LATENCY_KEYS
    assert all(_positive(v) for v in quick["latency_ms"].values())
    for key in ("plq_over_fwd_bwd", "faceqan_over_fwd_bwd", "serfiq_head_speedup", "serfiq_full_network_ms"):
        assert _positive(quick[key]), key
    # 10 whole-network passes against 1 trunk pass + 10 head passes: the head-only way must win.
    assert quick["serfiq_head_speedup"] > 1
    assert [row["batch_size"] for row in quick["throughput"]] == [1, 2]
    weights_mb = sum(p.numel() * p.element_size() for p in load_backbone("dlib-resnet").parameters()) / 2**20
    for row in quick["throughput"]:
        assert _positive(row["faces_per_s"]) and _positive(row["ms_per_batch"])
        assert row["peak_memory_mb"] > weights_mb  # the process holds at least the network (MiB, not KiB or bytes)
    assert quick["best_throughput"]["faces_per_s"] == max(r["faces_per_s"] for r in quick["throughput"])


def test_table_lists_every_measurement(quick):
    table = format_table(quick)
    for key in [*LATENCY_KEYS, "serfiq_head_speedup", "faceqan_over_fwd_bwd"]:
        assert f"| {key} |" in table
    assert f"| plq_over_fwd_bwd ({quick['default_quality']}) |" in table
    assert sum(line.startswith("| 1 |") or line.startswith("| 2 |") for line in table.splitlines()) == 2


def test_ui_table_holds_each_step_to_its_goal(tmp_path, capsys):
    """`plqa bench --ui` on a timings file of the browser test, one cut short (no load after the run)."""
    timings = {"machine": {"cpu_count": 2, "load_before": 1.24},
               "01_tutorial.ipynb": {"run_all_s": 30.0, "slider_s": 0.5, "dropdown_s": 2.5, "upload_s": 3.0},
               "04_random_masking.ipynb": {"slider_s": 1.5, "new_face_s": 6.0},
               "plqa app": {"page_load_s": 20.0}}
    path = tmp_path / "timings.json"
    path.write_text(json.dumps(timings))
    assert main(["bench", "--ui", str(path)]) == 0
    table = capsys.readouterr().out
    assert table.startswith("2 CPUs, load average (1 min) 1.2 before and – after")
    assert "| slider drag | < 2 s | 1.5 s (04_random_masking.ipynb) | yes |" in table
    assert "| dropdown change | < 2 s | 2.5 s (01_tutorial.ipynb) | no |" in table
    assert "| page load | (reported) | 20.0 s (plqa app) | – |" in table
    assert "| 04_random_masking.ipynb | a face never analysed before | 6.0 | < 10 s | yes |" in table
    assert table == format_ui_timings(timings) + "\n"


def test_quick_bench_of_a_network_without_a_bundle(tmp_path):
    """`plqa bench --backbone facenet-random` (the README's GPU command) times every estimator on a FaceNet-size
    network with random weights through a timing calibration: the utility head has the length of its inputs."""
    path = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        assert main(["bench", "--quick", "--threads", "1", "--backbone", "facenet-random", "--batch-sizes", "1",
                     "--json", str(path)]) == 0
    finally:
        torch.set_num_threads(threads)
    result = json.loads(path.read_text())
    assert (result["weights"], result["crop_size"], result["default_quality"]) == ("random", 160, "serfiq")
    assert {f"plq_map_{e}" for e in ESTIMATORS} <= set(result["latency_ms"])
    assert "deviation_map" not in result["latency_ms"]  # no compliant-face norm for random weights


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA exists here")
def test_cuda_without_cuda_is_an_error(capsys):
    assert main(["bench", "--quick", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


@cuda_only
def test_cpu_and_cuda_give_the_same_maps():
    # SER-FIQ draws its dropout masks on the CPU from the seed, so both devices use the same masks
    cpu = Explainer(quality="serfiq", quality_params={"m": 20}, device="cpu")
    crops = crops_to_tensor([cpu.prepare(astronaut()).aligned.crop] * 2)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # compare float32 with float32
    try:
        gpu = {k: v.cpu() for k, v in Explainer(quality="serfiq", quality_params={"m": 20}, device="cuda").explain_tensor(crops).items()}
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    ref = cpu.explain_tensor(crops)
    assert ref["plq"].std() > 0.01  # a real map, not a constant
    assert (gpu["quality"] - ref["quality"]).abs().max() < DEVICE_QUALITY_ATOL
    assert (gpu["embedding"] - ref["embedding"]).abs().max() < DEVICE_EMBEDDING_ATOL
    assert max_relative(gpu["saliency"], ref["saliency"]) < DEVICE_SALIENCY_REL
    assert (gpu["plq"] - ref["plq"]).abs().max() < DEVICE_PLQ_ATOL
