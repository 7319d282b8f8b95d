"""Render the README's pictures: the main figure of each widget notebook, drawn by the same
``plqa_nb.widgets`` functions the notebooks call, written to docs/figures/*.png.

    BROWSER_PATH=/usr/bin/chromium python scripts/render_readme_figures.py

Needs plotly's static export (kaleido and a Chrome/Chromium; BROWSER_PATH names it) and the sample faces
(``PLQA_FACES`` or ../shared/faces). PLQA_QUICK=1 gives rougher pictures in less time.
"""
from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import plotly.graph_objects as go
from PIL import Image

from plqa_nb.data import sample_images
from plqa_nb.experiments.masking import SIZES
from plqa_nb.widgets import FaceAnalysis, london_sessions, notebook_config, pick_face, quick
from plqa_nb.widgets import compare, icao, inpainting, masking, tutorial

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures"


def figures() -> dict[str, go.Figure]:
    """Notebook stem → its main figure."""
    config = notebook_config()
    samples = sample_images()
    first = london_sessions(1)[0]
    hopper = pick_face("grace_hopper", samples)
    hopper_session = FaceAnalysis(samples[hopper], name=hopper)
    faces, comparison = compare.run_comparison(london_sessions(2), config, compare.DEFAULT_METHODS,
                                               steps=quick(8, 3), n_random=1)
    rows = masking.masking_batch(london_sessions(quick(8, 2)), config, SIZES, per_size=quick(2, 1))
    mask = inpainting.threshold_mask(hopper_session, config, level=0.7)
    return {
        "01_tutorial": tutorial.maps_figure(first, config),
        "02_attribution_comparison": compare.method_maps_figure(faces, comparison),
        "03_inpainting": inpainting.before_after_figure(
            inpainting.inpainting_result(hopper_session, config, mask, repeats=quick(5, 2))),
        "04_random_masking": masking.distributions_figure(rows),
        "05_icao": icao.icao_figure(first, config, "sunglasses", 1.0),
    }


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for stem, fig in figures().items():
        path = OUT / f"{stem}.png"
        png = fig.to_image(format="png", width=fig.layout.width, height=fig.layout.height, scale=1)
        # 256-colour palette: noisy maps compress badly as RGB, the pictures stay well under 300 KB
        Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256).save(path, optimize=True)
        print(f"{path} ({path.stat().st_size // 1024} KB)")
    print(f"done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
