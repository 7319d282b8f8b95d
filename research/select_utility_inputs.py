"""How the utility head's inputs were chosen: the development photos only (London *smiling*).

    python research/select_utility_inputs.py ../shared/faces/london/smiling     # about 1 minute on 2 CPU cores

Compares the head on the network's features alone, z = [f, e, log ‖d‖], with the shipped one, which adds the
crop's exposure measures [h, s] (``quality.utility.exposure_measures``), both fitted as ``fit_head`` fits them:

* leave-one-kind-out: fit without one of the development protocol's kinds (``degradations.DEV_PROTOCOL``), and ask
  whether that kind's median prediction falls with its strength;
* identity-held-out (5 folds): Spearman's ρ between the predictions and the similarity labels, and, for small
  changes of light that the protocol does not hold (a third and half a stop more light, 15 and 25 grey levels
  more, a third of a stop less), the share of held-out faces whose prediction the change lowers, beside the share
  whose genuine similarity to its emulated captures it lowers (the network's own answer).

Nothing here reads the neutral photos: they judge the result (``research/quality_checks.py``).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from plqa_nb import degradations as dg
from plqa_nb.backbones import load_backbone
from plqa_nb.backbones.base import crops_to_tensor
from plqa_nb.pipeline import Explainer
from plqa_nb.calibration.devset import REFERENCES, DevSet
from plqa_nb.quality.utility import dev_inputs, exposure_measures, fit_head_on, identity_folds
from plqa_nb.stages import aligned_faces, network_pass

LIGHT = {"+1/3 stop": lambda c: dg.exposure(c, 1 / 3), "+1/2 stop": lambda c: dg.exposure(c, 0.5),
         "+15 levels": lambda c: dg.darken(c, -15), "+25 levels": lambda c: dg.darken(c, -25),
         "-1/3 stop": lambda c: dg.exposure(c, -1 / 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="the London smiling photos")
    args = ap.parse_args()
    t0 = time.perf_counter()
    backbone = load_backbone("dlib-resnet")
    prep = Explainer(backbone, quality="ers")
    faces = aligned_faces(args.folder, prep.prepare)
    s = DevSet(backbone, faces).scores
    z = dev_inputs(backbone, s.probe_features, s.probe_exposure)
    better, worse = s.ordered_pairs
    # the small changes of light: one network pass per face
    light_face, light_kind, light_z, light_label = [], [], [], []
    for i, face in enumerate(faces):
        x = crops_to_tensor([fn(face.crop) for fn in LIGHT.values()])
        net = network_pass(backbone, x, gradient=False)
        light_face += [i] * len(LIGHT)
        light_kind += list(LIGHT)
        light_z.append(dev_inputs(backbone, net.features.numpy(), exposure_measures(x).numpy()))
        refs = s.reference_embedding[i * REFERENCES:(i + 1) * REFERENCES]
        light_label.append((net.embedding.double().numpy() @ refs.T).mean(1))
    light_face, light_kind = np.array(light_face), np.array(light_kind)
    light_z, light_label = np.concatenate(light_z), np.concatenate(light_label)
    clean = {f: i for i, (f, k) in enumerate(zip(s.probe_face, s.probe_kind)) if k == "clean"}
    clean_of_light = np.array([clean[f] for f in light_face])
    kinds = [k for k in dict.fromkeys(s.probe_kind) if k != "clean"]

    for name, columns in (("features alone", slice(0, z.shape[1] - 2)), ("with exposure measures", slice(None))):
        x, xl = z[:, columns], light_z[:, columns]
        missed = []
        for kind in kinds:
            w, b = fit_head_on(x, s.labels, s.probe_kind != kind, better, worse)
            q = x @ w + b
            medians = [np.median(q[s.probe_kind == "clean"])] + [
                np.median(q[(s.probe_kind == kind) & (s.probe_level == lv)])
                for lv in sorted(set(s.probe_level[s.probe_kind == kind]))]
            if not np.all(np.diff(medians) < 0):
                missed.append(kind)
        held_q, held_light = np.empty(len(x)), np.empty(len(xl))
        for held in identity_folds(len(faces), 5, seed=0):
            out = np.isin(s.probe_face, held)
            w, b = fit_head_on(x, s.labels, ~out, better, worse)
            held_q[out] = x[out] @ w + b
            out_light = np.isin(light_face, held)
            held_light[out_light] = xl[out_light] @ w + b
        lowered = held_light < held_q[clean_of_light]
        truth = light_label < s.labels[clean_of_light]
        print(f"\n{name}: leave-one-kind-out {len(kinds) - len(missed)} of {len(kinds)} kinds fall"
              f"{' (not: ' + ', '.join(missed) + ')' if missed else ''}; identity-held-out ρ "
              f"{spearmanr(held_q, s.labels)[0]:.3f}")
        for kind in LIGHT:
            m = light_kind == kind
            print(f"  {kind:11s} lowers the held-out prediction for {lowered[m].mean():.0%} of the faces "
                  f"(the genuine similarity: {truth[m].mean():.0%})")
    print(f"\n{len(faces)} faces, done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
