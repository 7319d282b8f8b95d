"""Speed and memory of the PLQ flow (``plqa bench``): latencies, ratios, throughput.

All inputs are the astronaut's real aligned crop (``plqa_nb.data.astronaut``), repeated to
make batches. Every timing is the median of ``repeats`` calls after ``warmup`` calls; the
measurements of one group run round-robin, so a load change on a shared machine hits all
of them alike. On CUDA each call is timed with CUDA events (no host sync inside the loop,
one at its end) and ``cudnn.benchmark`` is on during the run.

Keys of ``run_benchmark``'s result:

* ``latency_ms``: per-face milliseconds at batch 1 for ``forward``, ``forward_backward``, and for each
  estimator (utility, ERS, SER-FIQ, FaceQAN) ``quality_<name>`` (Q̂ alone) and ``plq_map_<name>`` (the
  whole map: one forward and one backward pass, the estimator on the trunk's features), and
  ``map_smoothgrad`` and ``map_integrated-gradients`` at their defaults (the backbone's default estimator);
  where the backbone has a compliant-face norm, ``deviation_map`` (behind the region feedback) and
  ``counterfactual_map`` (behind the inpainting mask; 144 windows);
* ``plq_over_fwd_bwd`` = plq_map of the backbone's default estimator (``default_quality``) / forward_backward;
  ``faceqan_over_fwd_bwd`` = plq_map_faceqan / forward_backward;
* ``serfiq_head_speedup`` = m whole-network stochastic passes (the reference way) /
  head-only SER-FIQ, same m, same backbone, batch 1 (``serfiq_full_network_ms`` is the former);
* ``throughput``: one row per batch size: faces_per_s, ms_per_batch, peak_memory_mb
  (``torch.cuda.max_memory_allocated`` on CUDA, the process's peak resident set on CPU) and
  peak_growth_mb (the peak after the timed calls minus the peak after the warm-up);
* context: device, device_name, torch, num_threads, cpu_count, load_average (start, end),
  backbone, weights ("pretrained" or "random"), default_quality, crop_size, m, faceqan_k_l, repeats, warmup,
  batch_sizes,
  quick, autocast.
"""
from __future__ import annotations

import math
import os
import platform
import resource
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch

from .backbones import DEFAULT_BACKBONE, FACENET_RANDOM, Backbone, load_backbone
from .config import CalibrationBundle, EstimatorCalibration, paper_bundle
from .config import resolve_config
from .data import astronaut
from .detection import DEFAULT_DETECTOR
from .pipeline import Explainer, crops_to_tensor
from .stages import prepare_face
from .quality import serfiq_full_network

CPU_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)
CUDA_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def astronaut_crop(net: Backbone, device: torch.device) -> torch.Tensor:
    """The astronaut's aligned crop for ``net``, [1, 3, S, S] in 0..255 on ``device``."""
    return crops_to_tensor([prepare_face(astronaut(), net, device).aligned.crop], device)


def timing_bundle(net: Backbone, crop: torch.Tensor) -> CalibrationBundle:
    """A calibration for timing a network without its own bundle (random weights): every timed estimator with
    α = 1, r = 0 and the γ of the paper's values for the network's family; ERS's centre is the crop's own embedding
    and the utility head all zeros, of the length its inputs have for this network (any values cost the same)."""
    from .quality.utility import exposure_measures, head_inputs

    paper = paper_bundle(net.defaults.family)
    gamma = paper.estimators[paper.default_estimator].gamma
    with torch.no_grad():
        features = net.trunk(crop)
        embedding = net.head(features)[0].cpu()
        inputs = head_inputs(net, features, exposure_measures(crop)).shape[1]
    state = {"ers": {"ui_centre": embedding.tolist()}, "utility": {"head_weights": [0.0] * inputs, "head_bias": 0.0}}
    return CalibrationBundle(backbone=net.name, norm=net.defaults.norm, default_estimator=net.defaults.quality,
                             estimators={q: EstimatorCalibration(1.0, 0.0, gamma, state.get(q, {}))
                                         for q in ESTIMATORS},
                             source="timing calibration (α = 1, r = 0)")


@dataclass(frozen=True)
class Mode:
    """Timed calls, warm-up calls, SER-FIQ m, batch sizes (None: the device's), FaceQAN arguments."""

    repeats: int
    warmup: int
    m: int
    batch_sizes: tuple[int, ...] | None
    faceqan: dict = field(default_factory=dict)


FULL = Mode(7, 2, 100, None)
QUICK = Mode(1, 0, 10, (1, 2), {"k": 2, "l": 2})  # a smoke test, not a measurement
OTHER_METHODS = ("smoothgrad", "integrated-gradients")  # timed at their defaults
ESTIMATORS = ("utility", "ers", "serfiq", "faceqan")  # timed one by one
TARGETS = {"plq_over_fwd_bwd": 1.25, "serfiq_head_speedup": 20.0, "cuda_faces_per_s": 1000.0,
           "serial_over_map_only": 0.5}


def load_bench_backbone(name: str, device: torch.device) -> tuple[Backbone, str]:
    """(backbone in eval mode on ``device``, "pretrained" or "random") for a bench name."""
    if name != FACENET_RANDOM:
        return load_backbone(name, device), "pretrained"
    from .backbones.facenet import FaceNet

    model = FaceNet(dataset=None).eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model, "random"


def time_calls(fns: dict[str, Callable[[], object]], device: torch.device, repeats: int,
               warmup: int) -> dict[str, float]:
    """Median seconds per call of each function, after ``warmup`` calls, calls round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    if device.type == "cuda":
        events = {k: [] for k in fns}
        for _ in range(repeats):
            for k, fn in fns.items():
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                events[k].append((start, end))
        torch.cuda.synchronize(device)
        return {k: statistics.median(s.elapsed_time(e) for s, e in ev) / 1000.0 for k, ev in events.items()}
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory in MiB: allocated tensors on CUDA (since the last reset), resident set on CPU (Linux, macOS)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def forward_backward(backbone: Backbone, crops: torch.Tensor) -> torch.Tensor:
    """One forward and one backward pass: ∂(Σ embedding)/∂crops, [B, 3, S, S]."""
    x = crops.detach().requires_grad_(True)
    with torch.enable_grad():
        return torch.autograd.grad(backbone(x).sum(), x)[0]


def plq_throughput(explainer: Explainer, crop: torch.Tensor, batch_sizes: list[int], repeats: int,
                   warmup: int) -> list[dict]:
    """PLQ maps per second for a crop [1, 3, S, S] repeated to each batch size, with peak memory."""
    rows = []
    for b in batch_sizes:
        crops = crop.expand(b, -1, -1, -1).contiguous()
        if explainer.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(explainer.device)
        for _ in range(warmup):
            explainer.explain_tensor(crops)
        after_warmup = peak_memory_mb(explainer.device)
        sec = time_calls({"plq": lambda: explainer.explain_tensor(crops)}, explainer.device, repeats, 0)["plq"]
        peak = peak_memory_mb(explainer.device)
        rows.append({"batch_size": b, "faces_per_s": b / sec, "ms_per_batch": sec * 1000.0,
                     "peak_memory_mb": peak, "peak_growth_mb": peak - after_warmup})
        del crops  # before the next size's peak reset
    return rows


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def _load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def run_benchmark(device: str = "cpu", backbone: str = DEFAULT_BACKBONE, quick: bool = False,
                  batch_sizes: list[int] | None = None, repeats: int | None = None, m: int | None = None,
                  autocast: bool = False, seed: int = 0, log: Callable[[str], None] | None = None) -> dict:
    """Measure the PLQ flow on ``device`` with ``backbone`` (a registered name or ``FACENET_RANDOM``).

    ``quick`` (a smoke test) uses 1 timed call, no warm-up, m=10, FaceQAN k=2, l=2 and batch
    sizes [1, 2]; ``batch_sizes``, ``repeats`` and ``m`` override the mode's values.
    ``autocast`` runs every measured call under bfloat16 autocast (off by default).
    ``log`` receives one line per stage.
    Returns the dict described in the module docstring (times in ms, memory in MiB).
    """
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA is not available on this machine")
    mode = QUICK if quick else FULL
    repeats, warmup, m = repeats or mode.repeats, mode.warmup, m or mode.m
    batch_sizes = list(batch_sizes or mode.batch_sizes or (CUDA_BATCH_SIZES if dev.type == "cuda" else CPU_BATCH_SIZES))
    say = log or (lambda _msg: None)
    cudnn_before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = dev.type == "cuda"
    load_start = _load_average()
    try:
        net, weights = load_bench_backbone(backbone, dev)
        crop = astronaut_crop(net, dev)
        calibration = None if weights == "pretrained" else timing_bundle(net, crop)

        def explainer(quality: str, method: str = "saliency") -> Explainer:
            params = {"m": m} if quality == "serfiq" else mode.faceqan if quality == "faceqan" else {}
            return Explainer(net, quality=quality, method=method, calibration=calibration, device=device, seed=seed,
                             quality_params=params)

        estimators = {name: explainer(name) for name in ESTIMATORS}
        serfiq, faceqan = estimators["serfiq"], estimators["faceqan"]
        default = estimators.get(resolve_config(net, calibration=calibration).quality, serfiq)
        others = {f"map_{name}": explainer(default.config.quality, name) for name in OTHER_METHODS}

        def no_grad_forward() -> None:
            with torch.no_grad():
                net(crop)

        localisers = {}
        if default.has_compliant_norm:
            from .attribution.counterfactual import defect_maps
            from .attribution.deviation import deviation_maps

            norm = default.compliant_norm().features
            localisers = {"deviation_map": lambda: deviation_maps(net, crop, norm),
                          "counterfactual_map": lambda: defect_maps(default, crop)}
        latency_fns = {
            "forward": no_grad_forward,
            "forward_backward": lambda: forward_backward(net, crop),
            **{f"quality_{n}": (lambda e=e: e.quality(crop)) for n, e in estimators.items()},
            **{f"plq_map_{n}": (lambda e=e: e.explain_tensor(crop)) for n, e in estimators.items()},
            **{k: (lambda e=e: e.explain_tensor(crop)) for k, e in others.items()},
            **localisers,
        }
        amp = torch.autocast(dev.type, dtype=torch.bfloat16) if autocast else nullcontext()
        with amp:
            say(f"latency at batch 1: {', '.join(latency_fns)}")
            latency = time_calls(latency_fns, dev, repeats, warmup)
            say(f"SER-FIQ, m={m}: head-only vs whole network")
            speed = time_calls({"head": lambda: serfiq.quality(crop),
                                "full": lambda: serfiq_full_network(net, crop, m, seed=seed)}, dev, repeats, warmup)
            say(f"PLQ throughput, batch sizes {batch_sizes}")
            throughput = plq_throughput(default, crop, batch_sizes, repeats, warmup)
    finally:
        torch.backends.cudnn.benchmark = cudnn_before
    best = max(throughput, key=lambda r: r["faces_per_s"])
    return {
        "device": dev.type, "device_name": _device_name(dev), "torch": torch.__version__,
        "num_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average": [load_start, _load_average()],
        "backbone": backbone, "weights": weights, "crop_size": int(crop.shape[-1]),
        "m": m, "faceqan_k_l": [faceqan.estimator.k, faceqan.estimator.l], "repeats": repeats, "warmup": warmup,
        "batch_sizes": batch_sizes, "quick": quick, "autocast": autocast,
        "latency_ms": {k: v * 1000.0 for k, v in latency.items()},
        "default_quality": default.config.quality,
        "plq_over_fwd_bwd": latency[f"plq_map_{default.config.quality}"] / latency["forward_backward"],
        "faceqan_over_fwd_bwd": latency["plq_map_faceqan"] / latency["forward_backward"],
        "serfiq_full_network_ms": speed["full"] * 1000.0,
        "serfiq_head_speedup": speed["full"] / speed["head"],
        "throughput": throughput,
        "best_throughput": {"batch_size": best["batch_size"], "faces_per_s": best["faces_per_s"]},
    }


def format_table(result: dict) -> str:
    """Markdown summary of a ``run_benchmark`` result, targets beside the ratios."""
    r = result
    fb = r["latency_ms"]["forward_backward"]
    lines = [
        f"**{r['device']}** ({r['device_name']}), torch {r['torch']}, {r['num_threads']} threads, "
        f"backbone {r['backbone']} ({r['weights']} weights, {r['crop_size']} px), default estimator "
        f"{r['default_quality']} (the PLQ maps/s below), SER-FIQ m={r['m']}, "
        f"FaceQAN k, l = {r['faceqan_k_l']}, "
        f"median of {r['repeats']} after {r['warmup']} warm-up{', bf16 autocast' if r['autocast'] else ''}"
        f"{', QUICK' if r['quick'] else ''}; load average {r['load_average']}",
        "",
        "| measurement (batch 1) | ms per face | × forward+backward |",
        "|---|---:|---:|",
        *(f"| {k} | {v:.1f} | {v / fb:.2f} |" for k, v in r["latency_ms"].items()),
        f"| serfiq_full_network (m={r['m']}) | {r['serfiq_full_network_ms']:.1f} | "
        f"{r['serfiq_full_network_ms'] / fb:.2f} |",
        "",
        "| ratio | value | target |",
        "|---|---:|---|",
        f"| plq_over_fwd_bwd ({r['default_quality']}) | {r['plq_over_fwd_bwd']:.3f} | "
        f"≤ {TARGETS['plq_over_fwd_bwd']} |",
        f"| serfiq_head_speedup | {r['serfiq_head_speedup']:.1f} | ≥ {TARGETS['serfiq_head_speedup']:.0f} |",
        f"| faceqan_over_fwd_bwd | {r['faceqan_over_fwd_bwd']:.1f} | (reported) |",
        "",
        "| batch | PLQ maps/s | ms per batch | peak memory MiB | peak growth MiB |",
        "|---:|---:|---:|---:|---:|",
        *(f"| {t['batch_size']} | {t['faces_per_s']:.1f} | {t['ms_per_batch']:.1f} | {t['peak_memory_mb']:.0f} | "
          f"{t['peak_growth_mb']:.1f} |" for t in r["throughput"]),
    ]
    if r["device"] == "cuda":
        lines += ["", f"best: {r['best_throughput']['faces_per_s']:.0f} maps/s at batch "
                      f"{r['best_throughput']['batch_size']} (target ≥ {TARGETS['cuda_faces_per_s']:.0f})"]
    return "\n".join(lines)


# -- scaling over Dask workers (``plqa bench --scaling FOLDER``) ----------------------------------------------------
class Sample(NamedTuple):
    """One look at a traced command: seconds since its start, rows in its table, its resident memory (MiB), its
    largest child process's (MiB), and the CPU seconds (user and system) that it and its child processes have used."""
    seconds: float
    rows: int
    client_mb: float
    worker_mb: float
    cpu_s: float


@dataclass
class TracedRun:
    """A ``plqa`` command run in a child process: its wall seconds and a ``Sample`` every ``period`` seconds."""
    wall_s: float
    samples: list[Sample]

    def steady_window(self, low: float = 0.1, high: float = 0.9) -> tuple[Sample, Sample] | None:
        """The middle of the run: the first sample that holds ``low`` of the final rows and the first that holds
        ``high`` of them (None: too few rows or samples). The first rows leave out imports, model loads and the
        cluster's start, but on a cluster they can arrive as a burst (batches finished out of order wait for the
        first); the last ones, the tail where fewer workers are busy."""
        final = max((s.rows for s in self.samples), default=0)
        if final < 2:
            return None
        lo = max(1, math.ceil(low * final))
        hi = max(lo + 1, math.ceil(high * final))
        a = next(s for s in self.samples if s.rows >= lo)
        b = next(s for s in self.samples if s.rows >= hi)
        return (a, b) if b.seconds > a.seconds else None

    def steady_files_per_s(self) -> float | None:
        """Rows per second over ``steady_window``."""
        window = self.steady_window()
        return None if window is None else (window[1].rows - window[0].rows) / (window[1].seconds - window[0].seconds)

    def steady_cpu(self) -> tuple[float, float] | None:
        """Over ``steady_window``, in all the command's processes: CPU milliseconds per row, and cores used (CPU
        seconds per second)."""
        window = self.steady_window()
        if window is None:
            return None
        a, b = window
        return (b.cpu_s - a.cpu_s) * 1000.0 / (b.rows - a.rows), (b.cpu_s - a.cpu_s) / (b.seconds - a.seconds)


def _rows_in(table: os.PathLike) -> int:
    try:
        with open(table, "rb") as f:
            return max(0, f.read().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def dask_workers(process) -> list:
    """The Dask worker processes that a LocalCluster in ``process`` (a ``psutil.Process``) spawned."""
    return [p for p in process.children()
            if "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())]


def traced_run(argv: list[str], table: os.PathLike, period: float = 0.2,
               watch: Callable[[object, int], None] | None = None) -> TracedRun:
    """Run ``python -m plqa_nb.cli *argv`` (this interpreter), sampling its table's rows, its memory and CPU and
    its child processes' (Dask workers); ``watch(process, rows)``, if given, is called at every sample with the
    command's ``psutil.Process``. Raises RuntimeError with its stderr's end if the command fails."""
    import subprocess
    import tempfile
    import threading

    import psutil

    samples: list[Sample] = []
    cpu_by_pid: dict[int, float] = {}  # the last CPU seconds seen of each process, kept after it ends
    stop = threading.Event()
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "plqa_nb.cli", *map(str, argv)], stdout=subprocess.DEVNULL,
                                stderr=err)
        me = psutil.Process(proc.pid)

        def sample() -> None:
            while not stop.is_set():
                try:
                    children = me.children(recursive=True)
                    for p in (me, *children):
                        cpu_by_pid[p.pid] = sum(p.cpu_times()[:2])
                    samples.append(Sample(time.perf_counter() - t0, _rows_in(table), me.memory_info().rss / 2 ** 20,
                                          max((c.memory_info().rss for c in children), default=0) / 2 ** 20,
                                          sum(cpu_by_pid.values())))
                    if watch is not None:
                        watch(me, samples[-1].rows)
                except psutil.Error:  # the process ended, or a child did
                    pass
                time.sleep(period)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        code = proc.wait()
        wall = time.perf_counter() - t0
        stop.set()
        thread.join()
        if code != 0:
            err.seek(0)
            raise RuntimeError(f"plqa {' '.join(map(str, argv))} exited with {code}: "
                               f"{err.read().decode(errors='replace')[-2000:]}")
    return TracedRun(wall, samples)


def scaling_table(inputs: list[str], work: os.PathLike, max_workers: int, batch_size: int = 8,
                  detector: str = DEFAULT_DETECTOR, rounds: int = 1,
                  log: Callable[[str], None] = lambda msg: None) -> dict:
    """``plqa explain`` (with ``detector``) over ``inputs`` serially, with ``--workers`` 1 … ``max_workers`` and
    serially again (outputs under ``work``, replaced), ``rounds`` times in turn, so that the floors compare runs
    taken side by side while the machine's speed drifts: each worker count against the mean of the serial runs
    before and after it, in which a steady drift cancels.

    ``runs`` (the first round's, the second serial run last and marked ``again``): per run files, wall seconds and
    files/s (imports, model loads and cluster start included), steady files/s (``TracedRun.steady_files_per_s``:
    over the middle 80 % of the rows), the CPU milliseconds per file and the cores used over the same rows in all
    the run's processes (``steady_cpu_ms_per_file``, ``steady_cores``), efficiency (steady files/s over workers ×
    that of 1 worker), the client's and the largest worker's peak resident memory (MiB, sampled every 0.2 s); for
    the first serial run ``stage_ms_per_file``, ``stage_share`` (of the summed stage seconds) and ``stage_wall_s``
    (first batch to last row: the stages overlap, see ``plqa explain --timings``).
    ``map_only_faces_per_s``: PLQ maps/s of the default backbone at ``batch_size`` in this process
    (``plq_throughput``), the mean of a measurement right before and one right after the first serial run.

    ``rounds``: per round each run's steady files/s and CPU ms per file (in ``runs``' order), the two map-only
    measurements, ``serial_over_map_only`` (the first serial run), ``workers_over_serial`` (each worker count's
    steady files/s over the mean of the round's serial runs), ``cpu_per_file_over_serial`` (its CPU per file over
    theirs) and ``serial_again_over_serial`` (the drift over the round, as the second serial run's files/s over the
    first's). The verdicts ``serial_over_map_only`` and ``workers_over_serial`` are the medians of the rounds' ratios
    (target ``TARGETS``), as is the top level's ``cpu_per_file_over_serial``."""
    net = load_backbone(DEFAULT_BACKBONE, torch.device("cpu"))
    explainer, crop = Explainer(net), astronaut_crop(net, torch.device("cpu"))

    def map_only() -> float:
        log(f"map-only throughput at batch {batch_size}")
        return plq_throughput(explainer, crop, [batch_size], FULL.repeats, FULL.warmup)[0]["faces_per_s"]

    rounds_out, first_runs = [], None
    for k in range(rounds):
        before = map_only()
        runs, after = _scaling_runs(inputs, work, max_workers, batch_size, detector, map_only,
                                    lambda msg: log(f"round {k + 1} of {rounds}: {msg}"))
        first_runs = first_runs or runs
        serial = runs[0]["steady_files_per_s"]
        rounds_out.append({"steady_files_per_s": [r["steady_files_per_s"] for r in runs],
                           "steady_cpu_ms_per_file": [r["steady_cpu_ms_per_file"] for r in runs],
                           "map_only_faces_per_s": [before, after],
                           "serial_over_map_only": serial / statistics.mean([before, after]) if serial else None,
                           "workers_over_serial": _over_serial(runs, "steady_files_per_s"),
                           "cpu_per_file_over_serial": _over_serial(runs, "steady_cpu_ms_per_file"),
                           "serial_again_over_serial": (runs[-1]["steady_files_per_s"] / serial
                                                        if serial and runs[-1]["steady_files_per_s"] else None)})

    def median(values: list) -> float | None:
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def median_by_workers(key: str) -> dict[str, float | None]:
        return {str(n): median([r[key].get(str(n)) for r in rounds_out]) for n in range(1, max_workers + 1)}

    return {"runs": first_runs, "batch_size": batch_size, "detector": detector, "cpu_count": os.cpu_count(),
            "load_average": _load_average(),
            "map_only_faces_per_s": statistics.mean(rounds_out[0]["map_only_faces_per_s"]), "rounds": rounds_out,
            "serial_over_map_only": median([r["serial_over_map_only"] for r in rounds_out]),
            "workers_over_serial": median_by_workers("workers_over_serial"),
            "cpu_per_file_over_serial": median_by_workers("cpu_per_file_over_serial")}


def _over_serial(runs: list[dict], key: str) -> dict[str, float]:
    """Each worker count's ``key`` over the mean of the serial runs' (the one before the workers' runs and the one
    after them, so that a steady drift of the machine's speed cancels), where measured."""
    serial = [r[key] for r in runs if not r["workers"] and r[key]]
    mean = statistics.mean(serial) if serial else None
    return {str(r["workers"]): r[key] / mean for r in runs if r["workers"] and mean and r[key]}


def _scaling_runs(inputs: list[str], work: os.PathLike, max_workers: int, batch_size: int, detector: str,
                  map_only: Callable[[], float], log: Callable[[str], None]) -> tuple[list[dict], float]:
    """One round of ``scaling_table``: its runs (serial, ``--workers`` 1 … ``max_workers``, serial again, the last
    marked ``again``) and the map-only throughput measured right after the first serial run."""
    import json
    import shutil
    from pathlib import Path

    runs: list[dict] = []
    after = 0.0
    for workers, name in [(None, "serial"), *((n, f"workers-{n}") for n in range(1, max_workers + 1)),
                          (None, "serial-again")]:
        out = Path(work) / name
        shutil.rmtree(out, ignore_errors=True)  # else the first samples count the last run's rows
        timings = Path(work) / f"{name}-timings.json"  # both serial runs alike: the first one's stages are kept
        argv = ["explain", *inputs, "--out", out, "--batch-size", batch_size, "--detector", detector, "--overwrite"]
        log(f"scaling: {name if workers is None else f'--workers {workers}'}")
        trace = traced_run(argv + (["--workers", workers] if workers else ["--timings", timings]),
                           out / "results.csv")
        files = _rows_in(out / "results.csv")
        cpu_ms_per_file, cores = trace.steady_cpu() or (None, None)
        runs.append({"workers": workers or 0, "files": files, "wall_s": trace.wall_s,
                     "files_per_s": files / trace.wall_s, "steady_files_per_s": trace.steady_files_per_s(),
                     "steady_cpu_ms_per_file": cpu_ms_per_file, "steady_cores": cores,
                     "client_peak_mb": max((s.client_mb for s in trace.samples), default=None),
                     "worker_peak_mb": max((s.worker_mb for s in trace.samples), default=None) if workers else None})
        if name == "serial-again":
            runs[-1]["again"] = True
        elif name == "serial":
            timed = json.loads(timings.read_text())
            stages = timed["stage_seconds"]
            runs[0]["stage_wall_s"] = timed["wall_s"]
            runs[0]["stage_ms_per_file"] = {k: v * 1000.0 / max(files, 1) for k, v in stages.items()}
            runs[0]["stage_share"] = {k: v / (sum(stages.values()) or 1.0) for k, v in stages.items()}
            after = map_only()
    one = runs[1]["steady_files_per_s"] if max_workers else None
    for r in runs[1:-1]:
        r["efficiency"] = r["steady_files_per_s"] / (r["workers"] * one) if one and r["steady_files_per_s"] else None
    return runs, after


def _or_dash(v, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def format_scaling(result: dict) -> str:
    """Markdown table of a ``scaling_table`` result."""
    f = _or_dash
    serial = result["runs"][0]
    lines = [f"`plqa explain --detector {result['detector']}`, batch size "
             f"{result['batch_size']}, {result['cpu_count']} CPUs, load average "
             f"{f(result['load_average'], '.1f')} at the end", "",
             "| workers | files | wall s | files/s (wall) | files/s (steady) | CPU ms per file (steady) | "
             "cores used (steady) | efficiency | client peak MiB | worker peak MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["runs"]:
        label = "serial, again" if r.get("again") else r["workers"] or "serial"
        lines.append(f"| {label} | {r['files']} | {r['wall_s']:.1f} | {r['files_per_s']:.2f} | "
                     f"{f(r['steady_files_per_s'], '.2f')} | {f(r['steady_cpu_ms_per_file'], '.1f')} | "
                     f"{f(r['steady_cores'], '.2f')} | {f(r.get('efficiency'), '.2f')} | "
                     f"{f(r['client_peak_mb'], '.0f')} | {f(r['worker_peak_mb'], '.0f')} |")
    rounds = result["rounds"]
    lines += ["", f"serial end to end (round 1): {f(serial['steady_files_per_s'], '.2f')} files/s steady against "
                  f"{result['map_only_faces_per_s']:.1f} PLQ maps/s of the network alone at batch "
                  f"{result['batch_size']} (mean of right before and right after the serial run)", ""]
    if len(rounds) > 1:
        counts = list(result["workers_over_serial"])
        lines += [f"{len(rounds)} rounds, each run in turn:", "",
                  "| round | serial files/s | network alone maps/s (before, after) | serial / network | "
                  "serial again / serial | "
                  + " | ".join(f"--workers {n} / serial" for n in counts) + " | "
                  + " | ".join(f"CPU per file, --workers {n} / serial" for n in counts) + " |",
                  "|---:|---:|---|---:|---:|" + "---:|" * 2 * len(counts)]
        for i, r in enumerate(rounds, 1):
            lines.append(f"| {i} | {f(r['steady_files_per_s'][0], '.1f')} | "
                         + ", ".join(f"{v:.1f}" for v in r["map_only_faces_per_s"])
                         + f" | {f(r['serial_over_map_only'], '.0%')} | {f(r['serial_again_over_serial'], '.2f')} | "
                         + " | ".join(f(r["workers_over_serial"].get(n), ".2f") for n in counts) + " | "
                         + " | ".join(f(r["cpu_per_file_over_serial"].get(n), ".2f") for n in counts) + " |")
        lines.append("")
    median = "median of the rounds: " if len(rounds) > 1 else ""
    lines += [f"{median}serial / network alone {f(result['serial_over_map_only'], '.0%')} "
              f"(target ≥ {TARGETS['serial_over_map_only']:.0%}); "
              + "; ".join(f"--workers {n} / serial {f(v, '.2f')}" for n, v in result["workers_over_serial"].items())
              + "; CPU per file against serial: "
              + "; ".join(f"--workers {n} {f(v, '.2f')}" for n, v in result["cpu_per_file_over_serial"].items()),
              "", f"serial stages (prepare on two threads, beside network and maps, beside output) over "
              f"{serial['stage_wall_s']:.1f} s from the first batch to the last row:",
              "", "| stage | ms per file | share of the stages' seconds |", "|---|---:|---:|",
              *(f"| {k} | {v:.1f} | {serial['stage_share'][k]:.0%} |" for k, v in serial["stage_ms_per_file"].items())]
    return "\n".join(lines)


# -- page latency (``plqa bench --ui TIMINGS``: the browser test's timings, ``make bench-ui``) ----------------------
UI_STEPS = {  # the browser test's timing key: (what a person does, the goal in seconds; None: reported)
    "page_load_s": ("page load", None),
    "run_all_s": ("Run All", None),
    "slider_s": ("slider drag", 2.0),
    "dropdown_s": ("dropdown change", 2.0),
    "new_face_s": ("a face never analysed before", 10.0),
    "upload_s": ("photo upload", 10.0),
    "score_s": ("inpaint and score", None),
    "button_s": ("button's computation", None),
}
UI_SUMMARY = ("slider_s", "dropdown_s", "new_face_s", "upload_s", "page_load_s")


def _goal(key: str, seconds: float) -> tuple[str, str]:
    """The goal of step ``key`` and whether ``seconds`` met it, as table cells."""
    goal = UI_STEPS[key][1]
    return ("(reported)", "–") if goal is None else (f"< {goal:g} s", "yes" if seconds < goal else "no")


def format_ui_timings(timings: dict) -> str:
    """Markdown tables of the browser test's timings (``tests/browser``: seconds per page and step, and
    ``machine``: CPU count and 1-minute load averages before and after): the slowest of each step against
    its goal, then every page's steps."""
    machine = timings.get("machine", {})
    pages = {page: steps for page, steps in timings.items() if page != "machine"}
    lines = [f"{_or_dash(machine.get('cpu_count'), 'd')} CPUs, load average (1 min) "
             f"{_or_dash(machine.get('load_before'), '.1f')} before and {_or_dash(machine.get('load_after'), '.1f')} "
             "after the run", "", "| step | goal | slowest (page) | met |", "|---|---|---:|---|"]
    for key in UI_SUMMARY:
        measured = [(steps[key], page) for page, steps in pages.items() if key in steps]
        if measured:
            seconds, page = max(measured)
            goal, met = _goal(key, seconds)
            lines.append(f"| {UI_STEPS[key][0]} | {goal} | {seconds:.1f} s ({page}) | {met} |")
    lines += ["", "| page | step | seconds | goal | met |", "|---|---|---:|---|---|"]
    for page, steps in pages.items():
        for key, seconds in steps.items():
            goal, met = _goal(key, seconds)
            lines.append(f"| {page} | {UI_STEPS[key][0]} | {seconds:.1f} | {goal} | {met} |")
    return "\n".join(lines)
