"""The development set of a utility calibration: what "the face is matched" means for a backbone.

From clean, compliant aligned faces (``FaceCrop``; the shipped bundles use the London *smiling* photos)
it builds, per face:

* probes: the clean crop and ``degradations.DEV_PROTOCOL``'s degradations of it, from harmless to unusable
  (blur, JPEG, pixelation, noise, black squares, under- and over-exposure, haze, a one-sided shadow, a darkening
  tone curve, low contrast, a warm or cold colour cast);
* ``REFERENCES`` emulated second captures of the clean face (``capture_reference``): mirrored, re-aligned
  with landmark jitter, relit and recompressed, so that a genuine comparison is not an image with itself.

``DevSet.scores()`` runs the network once over every image and gives the genuine similarities of each
probe to its face's references, and the threshold at the false match rate ``fmr`` from every probe
against every other face's references. A match is a genuine similarity at or above that threshold.
Images are made again from the seed whenever they are needed, so the set costs no memory.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .. import degradations as dg
from ..alignment import similarity_transform
from ..backbones.base import Backbone, crops_to_tensor
from ..quality.utility import exposure_measures
from ..stages import FaceCrop, network_pass, raw_quality
from ..verification import threshold_at_fmr

REFERENCES = 2  # emulated captures per face
LANDMARK_JITTER = 0.03  # σ of the re-alignment noise, in inter-ocular distances


def degraded_versions(face: FaceCrop, seed: int = 0) -> list[tuple[str, int, np.ndarray]]:
    """(kind, level 1.., image) for every value of every entry of ``degradations.DEV_PROTOCOL`` (kind: the entry's
    name), each drawn from the face's own generator (independent of the other faces)."""
    return [(name, level, dg.DEV_PROTOCOL.apply(face.crop, name, v, dg.face_rng(seed, face.name, f"dev {name} {v}")))
            for name, level, v in dg.DEV_PROTOCOL.levels()]


def capture_reference(face: FaceCrop, rng: np.random.Generator) -> np.ndarray:
    """A second capture of the face, emulated from its clean crop: mirrored; re-aligned as if the detector's
    landmarks had been off by ``LANDMARK_JITTER`` inter-ocular distances (σ); lit from a random side
    (strength 0.15-0.35) with ±0.5 stop of exposure and ±8 % colour gains; JPEG quality 70-90."""
    s = face.crop.shape[0]
    mirrored = face.crop[:, ::-1]
    points = np.asarray(face.landmarks, np.float64).copy()
    points[:, 0] = s - 1 - points[:, 0]
    points = points[[1, 0, 2, 4, 3]]  # left and right swap in a mirror image
    iod = float(np.linalg.norm(points[1] - points[0]))
    jittered = points + rng.normal(0, LANDMARK_JITTER * iod, points.shape)
    matrix = similarity_transform(jittered, points)
    image = cv2.warpAffine(np.ascontiguousarray(mirrored), matrix, (s, s), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    image = dg.directional_light(image, tuple(rng.normal(size=2)), float(rng.uniform(0.15, 0.35)))
    image = dg.exposure(image, float(rng.uniform(-0.5, 0.5)))
    image = np.clip(image * rng.uniform(0.92, 1.08, 3), 0, 255).round().astype(np.uint8)
    return dg.jpeg(image, int(rng.integers(70, 91)))


def face_images(face: FaceCrop, seed: int = 0) -> tuple[list[tuple[str, int, np.ndarray]], list[np.ndarray]]:
    """The probes of one face, [("clean", 0, crop), (kind, level, image), ...], and its references."""
    probes = [("clean", 0, face.crop)] + degraded_versions(face, seed)
    refs = [capture_reference(face, dg.face_rng(seed, face.name, f"dev reference {k}")) for k in range(REFERENCES)]
    return probes, refs


@dataclass(frozen=True)
class DevScores:
    """The network's view of a DevSet of F faces, P probes and F·K references (K = ``REFERENCES``).

    probe_face [P] (index of the face), probe_kind [P], probe_level [P]; probe_features [P, Fd],
    probe_embedding [P, D], probe_exposure [P, 2] (``utility.exposure_measures``); reference_features [F·K, Fd],
    reference_embedding [F·K, D], reference_exposure [F·K, 2] (face f's references at rows f·K .. f·K + K − 1);
    genuine [P, K]: cosine of each probe to its face's references; threshold: the cosine at the false match rate
    ``fmr`` of every probe against every other face's references.
    """

    probe_face: np.ndarray
    probe_kind: np.ndarray
    probe_level: np.ndarray
    probe_features: np.ndarray
    probe_embedding: np.ndarray
    probe_exposure: np.ndarray
    reference_features: np.ndarray
    reference_embedding: np.ndarray
    reference_exposure: np.ndarray
    genuine: np.ndarray
    threshold: float
    fmr: float

    @property
    def labels(self) -> np.ndarray:
        """Per probe, its mean genuine similarity [P]: what a utility estimator learns to predict."""
        return self.genuine.mean(1)

    @property
    def ordered_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(better [M], worse [M]): probe indices of each face's clean crop and first strength of every kind, and
        of each strength and the next of that kind: what a utility estimator should rank in that order."""
        index = {key: i for i, key in enumerate(zip(self.probe_face.tolist(), self.probe_kind.tolist(),
                                                    self.probe_level.tolist()))}
        pairs = [(index[(f, "clean", 0)] if level == 1 else index[(f, kind, level - 1)], i)
                 for (f, kind, level), i in index.items() if kind != "clean"]
        return np.array([b for b, _ in pairs], int), np.array([w for _, w in pairs], int)

    @property
    def matches(self) -> np.ndarray:
        """bool [P, K]: each genuine comparison at or above the threshold."""
        return self.genuine >= self.threshold


class DevSet:
    """The development set of ``faces`` (clean aligned crops with landmarks) for ``backbone``.

    Args:
        backbone: the network the calibration is for.
        faces: at least 2 clean faces, one per identity.
        seed: of every degradation and reference.
        fmr: false match rate of the match threshold.
        device: where the network runs.
    """

    def __init__(self, backbone: Backbone, faces: Sequence[FaceCrop], seed: int = 0, fmr: float = 1e-3,
                 device: str | torch.device = "cpu"):
        if len(faces) < 2:
            raise ValueError("a development set needs at least 2 faces (identities)")
        self.backbone, self.faces, self.seed, self.fmr = backbone, list(faces), seed, fmr
        self.device = torch.device(device)

    def batches(self, step: str):
        """Per face: (face index, probe kinds, probe levels, images [P_f + K, 3, S, S] as a tensor, probes then
        references), with a progress bar on a terminal's stderr named after ``step`` (FaceQAN takes minutes a
        face on a CPU)."""
        faces = tqdm(self.faces, desc=f"development set: {step}", unit="face", file=sys.stderr, disable=None,
                     leave=False)
        for i, face in enumerate(faces):
            probes, refs = face_images(face, self.seed)
            images = [img for _, _, img in probes] + refs
            yield i, [k for k, _, _ in probes], [lv for _, lv, _ in probes], crops_to_tensor(images, self.device)

    @cached_property
    def scores(self) -> DevScores:
        """Features, embeddings, genuine similarities and the threshold (one network pass over the set)."""
        face, kind, level, feats, embs, lights, ref_feats, ref_embs, ref_lights = [], [], [], [], [], [], [], [], []
        for i, kinds, levels, x in self.batches("embeddings"):
            net = network_pass(self.backbone, x, gradient=False)
            light = exposure_measures(x).cpu().numpy()
            n = len(kinds)
            face += [i] * n
            kind += kinds
            level += levels
            feats.append(net.features[:n].cpu().double().numpy())
            embs.append(net.embedding[:n].cpu().double().numpy())
            lights.append(light[:n])
            ref_feats.append(net.features[n:].cpu().double().numpy())
            ref_embs.append(net.embedding[n:].cpu().double().numpy())
            ref_lights.append(light[n:])
        face, emb, ref_emb = np.array(face), np.concatenate(embs), np.concatenate(ref_embs)
        sims = emb @ ref_emb.T  # [P, F·K]
        ref_face = np.repeat(np.arange(len(self.faces)), REFERENCES)
        own = ref_face[None, :] == face[:, None]
        genuine = sims[own].reshape(len(face), REFERENCES)
        return DevScores(probe_face=face, probe_kind=np.array(kind), probe_level=np.array(level),
                         probe_features=np.concatenate(feats), probe_embedding=emb,
                         probe_exposure=np.concatenate(lights), reference_features=np.concatenate(ref_feats),
                         reference_embedding=ref_emb, reference_exposure=np.concatenate(ref_lights), genuine=genuine,
                         threshold=threshold_at_fmr(sims[~own], self.fmr), fmr=self.fmr)

    def raw(self, estimator, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The estimator's raw Q of every probe [P] and reference [F·K] (a network pass over the set)."""
        probes, refs = [], []
        for _, kinds, _, x in self.batches(f"{estimator.name} quality"):
            net = network_pass(self.backbone, x, gradient=False)
            q = raw_quality(estimator, self.backbone, x, net, seed).cpu().double().numpy()
            probes.append(q[:len(kinds)])
            refs.append(q[len(kinds):])
        return np.concatenate(probes), np.concatenate(refs)

    def pairs(self, raw_probe: np.ndarray, raw_reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every genuine comparison (probe × each of its face's references): pair quality = the lower raw Q,
        and whether it matches; two arrays [P·K]."""
        s = self.scores
        ref_rows = s.probe_face[:, None] * REFERENCES + np.arange(REFERENCES)[None, :]  # [P, K]
        quality = np.minimum(raw_probe[:, None], raw_reference[ref_rows])
        return quality.ravel(), s.matches.ravel()
