"""Comparison pairs of a face dataset, their scores, and a small dataset of degraded probes.

Two ways to name the pairs of a DATASET folder:

* one subfolder per identity (the layout of LFW and VGGFace2): every pair of images inside a
  subfolder is genuine, every pair across subfolders impostor — all of them, or a seeded
  uniform sample of ``max_impostors`` when there are more (``PairSet.selection`` says which);
* a pairs list (as LFW and XQLFW ship): a CSV with columns ``a,b,same`` (paths relative to
  DATASET, same = 1 genuine, 0 impostor); only the listed pairs count.
"""
from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

import numpy as np

from .. import degradations
from ..images import IMAGE_SUFFIXES, iter_image_files, load_image


@dataclass
class PairSet:
    """Images and the pairs among them.

    rel: image paths relative to the dataset [F] (posix); identities: [F]; a, b: int indices into
    ``rel`` [P]; genuine: bool [P]; selection: how the impostor pairs were chosen.
    """

    dataset: Path
    rel: list[str]
    identities: list[str]
    a: np.ndarray
    b: np.ndarray
    genuine: np.ndarray
    selection: str

    @property
    def files(self) -> list[Path]:
        return [self.dataset / r for r in self.rel]


def folder_pairs(dataset: str | Path, max_impostors: int | None = 200_000, seed: int = 0) -> PairSet:
    """All genuine pairs of a folder with one subfolder per identity, and its impostor pairs.

    Impostors: all cross-identity pairs when there are at most ``max_impostors`` (None: no
    limit), else that many drawn uniformly without replacement with ``seed``. Images lying
    directly in ``dataset`` belong to no identity: they are left out with a warning.
    """
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise FileNotFoundError(f"{dataset}: no such folder")
    rel, ids = [], []
    for sub in sorted(p for p in dataset.iterdir() if p.is_dir()):
        files = iter_image_files([sub])
        rel += [f.relative_to(dataset).as_posix() for f in files]
        ids += [sub.name] * len(files)
    if not rel:
        raise ValueError(f"{dataset}: no identity subfolders with images (expected DATASET/<identity>/<image>)")
    loose = [p for p in dataset.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if loose:
        warnings.warn(f"{dataset}: {len(loose)} image(s) outside identity subfolders left out", stacklevel=2)
    ident = np.unique(ids, return_inverse=True)[1]
    starts = np.flatnonzero(np.r_[True, ident[1:] != ident[:-1]])  # files are grouped by identity
    ends = np.r_[starts[1:], len(rel)]
    ga, gb = [], []
    for s, e in zip(starts, ends):
        i, j = np.triu_indices(e - s, 1)
        ga.append(i + s)
        gb.append(j + s)
    n = len(rel)
    total = (n * n - int(np.sum((ends - starts) ** 2))) // 2
    if max_impostors is None or total <= max_impostors:
        ia = np.concatenate([np.repeat(np.arange(s, e), n - e) for s, e in zip(starts, ends)])
        ib = np.concatenate([np.tile(np.arange(e, n), e - s) for s, e in zip(starts, ends)])
        selection = f"all {total} cross-identity pairs"
    else:
        ia, ib = _sample_impostors(ident, max_impostors, seed)
        selection = f"{max_impostors} of {total} cross-identity pairs, drawn uniformly with seed {seed}"
    a = np.concatenate(ga + [ia]).astype(np.int64)
    b = np.concatenate(gb + [ib]).astype(np.int64)
    genuine = np.arange(a.size) < sum(x.size for x in ga)
    return PairSet(dataset, rel, ids, a, b, genuine, selection)


def _sample_impostors(ident: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` distinct unordered cross-identity pairs (i < j), uniform over all such pairs, seeded."""
    rng = np.random.default_rng(seed)
    n = ident.size
    keys = np.empty(0, np.int64)
    while keys.size < count:
        i, j = rng.integers(0, n, (2, 2 * (count - keys.size) + 16))
        ok = ident[i] != ident[j]
        new = np.minimum(i, j)[ok] * n + np.maximum(i, j)[ok]
        keys = np.concatenate([keys, new])
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]  # distinct, in the order drawn
    keys = np.sort(keys[:count])
    return keys // n, keys % n


def listed_pairs(dataset: str | Path, pairs_csv: str | Path) -> PairSet:
    """The pairs of a CSV with columns a, b, same (paths relative to ``dataset``; same = 1 or 0).

    Errors name the CSV file and line: missing columns, absolute or ``..`` paths, files not
    found, ``same`` other than 0 or 1, no pairs.
    """
    dataset, pairs_csv = Path(dataset), Path(pairs_csv)
    index: dict[str, int] = {}
    a, b, same = [], [], []
    with open(pairs_csv, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"a", "b", "same"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{pairs_csv}: missing column(s) {', '.join(sorted(missing))} (need a,b,same)")
        for row in reader:
            where = f"{pairs_csv}, line {reader.line_num}"
            ends = []
            for col in ("a", "b"):
                rel = PurePosixPath((row[col] or "").strip())
                if not rel.parts or rel.is_absolute() or ".." in rel.parts:
                    raise ValueError(f"{where}: column {col} must be a path inside {dataset}, not '{row[col]}'")
                if not (dataset / rel).is_file():
                    raise ValueError(f"{where}: {dataset / rel} not found")
                ends.append(index.setdefault(rel.as_posix(), len(index)))
            if (row["same"] or "").strip() not in ("0", "1"):
                raise ValueError(f"{where}: same must be 1 (genuine) or 0 (impostor), not '{row['same']}'")
            a.append(ends[0])
            b.append(ends[1])
            same.append(row["same"].strip() == "1")
    if not a:
        raise ValueError(f"{pairs_csv}: no pairs listed")
    rel = list(index)
    ids = [PurePosixPath(r).parent.as_posix() for r in rel]
    return PairSet(dataset, rel, ids, np.array(a), np.array(b), np.array(same), f"listed in {pairs_csv.name}")


def face_scores(backbone, configs: Mapping, crops, seed: int = 0) -> tuple[np.ndarray, dict, dict]:
    """What a comparison needs of each face: embeddings [B, D] and, per estimator (``configs``: name →
    ``ModelConfig``), raw Q [B] and Q̂ [B] of crops [B, 3, S, S] (0..255); one network pass, shared."""
    from ..stages import network_pass, raw_quality

    net = network_pass(backbone, crops, gradient=False)
    raw, q_hat = {}, {}
    for name, config in configs.items():
        r = raw_quality(config.make_estimator(), backbone, crops, net, seed)
        raw[name], q_hat[name] = r.cpu().numpy(), config.scaling()(r).cpu().numpy()
    return net.embedding.cpu().numpy(), raw, q_hat


def cosine_scores(embeddings: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Cosine similarity [P] of the L2-normalised embeddings [F, D] of pairs (a, b) [P]."""
    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    return np.concatenate([np.einsum("ij,ij->i", e[a[k:k + chunk]], e[b[k:k + chunk]])
                           for k in range(0, len(a), chunk)] or [np.empty(0)])


def evaluate_images(embeddings: np.ndarray, raw: Mapping[str, np.ndarray], q_hat: Mapping[str, np.ndarray],
                    a: np.ndarray, b: np.ndarray, genuine: np.ndarray, fmr: float = 1e-3, convention: str = "fixed",
                    seed: int = 0) -> list:
    """The ERCs (``erc.evaluate_erc``) of per-image embeddings [F, D], raw Q and Q̂ per estimator ([F] each) over
    the pairs (a, b) [P] with their genuine flags [P]: the flow shared by ``plqa evaluate erc`` and notebook 6."""
    from . import erc

    return erc.evaluate_erc(cosine_scores(embeddings, a, b), genuine,
                            {m: erc.pair_quality(raw[m][a], raw[m][b]) for m in raw}, fmr, convention,
                            {m: erc.pair_quality(q_hat[m][a], q_hat[m][b]) for m in q_hat}, seed)


def probe_photos(identities: Sequence[tuple[str, Path, Path]], seed: int = 0, strong: float = 0.5,
                 max_side: int | None = None, probes: int = 1, kinds: Sequence[str] | None = None,
                 clean_probe: bool = False):
    """Per identity (name, reference photo, probe photo): yield (name, file, kind, level, value, photo uint8
    [H, W, 3]) for the reference ("reference.png", kind "reference"), the clean probe photo with
    ``clean_probe`` ("probe_clean.png", kind "clean") and ``probes`` degraded copies of it ("probe.png" when
    there is one, else "probe_<k>.png"), each by a kind drawn uniformly from ``kinds`` (default: all of
    ``degradations.PHOTO_PROTOCOL``, whose values are (mild, strong)), strong with probability ``strong`` (else mild),
    all from ``seed``. ``max_side`` shrinks both photos first (faster detection)."""
    import cv2

    rng = np.random.default_rng(seed)
    protocol = degradations.PHOTO_PROTOCOL
    kinds = list(kinds or protocol.entries)
    for k, (name, reference, probe) in enumerate(identities):
        photos = []
        for path in (reference, probe):
            photo = load_image(path)
            s = 1.0 if max_side is None else min(1.0, max_side / max(photo.shape[:2]))
            if s < 1:
                photo = cv2.resize(photo, (round(photo.shape[1] * s), round(photo.shape[0] * s)),
                                   interpolation=cv2.INTER_AREA)
            photos.append(photo)
        yield name, "reference.png", "reference", "", "", photos[0]
        if clean_probe:
            yield name, "probe_clean.png", "clean", "", "", photos[1]
        for j in range(probes):
            kind = kinds[int(rng.integers(len(kinds)))]
            level = "strong" if rng.random() < strong else "mild"
            value = protocol.entry(kind).values[level == "strong"]
            noise = np.random.default_rng([seed, k, j])  # the choices above do not depend on the photos' sizes
            file = "probe.png" if probes == 1 else f"probe_{j}.png"
            yield name, file, kind, level, value, protocol.apply(photos[1], kind, value, noise)


def build_probe_dataset(identities: Sequence[tuple[str, Path, Path]], out: str | Path, seed: int = 0,
                        strong: float = 0.5, max_side: int | None = None, probes: int = 1,
                        kinds: Sequence[str] | None = None, clean_probe: bool = False) -> list[dict]:
    """``probe_photos`` written in the identity-folder layout: OUT/<name>/<file>. Returns and writes the list of
    probes (OUT/degradations.csv: identity, file, kind, level, value)."""
    from ..batch import atomic_save_csv, atomic_save_png

    out = Path(out)
    rows = []
    for name, file, kind, level, value, photo in probe_photos(identities, seed, strong, max_side, probes, kinds,
                                                              clean_probe):
        atomic_save_png(out / name / file, photo)
        if kind != "reference":
            rows.append({"identity": name, "file": file, "kind": kind, "level": level, "value": value})
    atomic_save_csv(out / "degradations.csv", rows, ["identity", "file", "kind", "level", "value"])
    return rows
