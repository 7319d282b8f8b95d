"""Write the widget notebooks (notebooks/*.ipynb) from the cell texts below: clean, without outputs, with
stable cell ids, so that regenerating them gives the same files.

    python scripts/make_notebooks.py          # write
    python scripts/make_notebooks.py --check  # exit 1 if a notebook on disk differs

Every code cell only calls ``plqa_nb``; the widgets wrap pure functions of ``plqa_nb.widgets``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

CREDITS = """**Photos.** Face Research Lab London Set: DeBruine, L. & Jones, B. (2017), doi:10.6084/m9.figshare.5047666.v5,
licensed CC BY 4.0. Eileen Collins (the "astronaut", NASA, via scikit-image) and Grace Hopper (US Navy):
public domain."""

QUICK = """*Quick mode:* with the environment variable `PLQA_QUICK=1` (the test suite sets it) the notebooks use a small
number of estimator passes, faces and steps; numbers are then rougher, the flow is the same."""

M, C = "markdown", "code"

TUTORIAL = [
    (M, f"""# 1 · Pixel-level face image quality, step by step

A face recognition (FR) network turns an aligned face into an embedding. *How usable* that face is for the
network is its **quality**; the PLQ map (Terhörst et al.) says, pixel by pixel, which parts of the face raise
it and which lower it. This notebook walks through the whole flow on one photo:

**photo → detection → alignment → quality Q → scaling Q̂ → regression model M_Q → saliency Ŝ → PLQ map P**

and ends with an explorer where you pick a sample face or upload your own and move every parameter.

**The example face** is chosen by what the model says of the photos: of the first London neutral photos,
the one with the highest Q̂ (a compliant, well-lit passport-style face), so that its map shows a face the
network finds usable.

{QUICK}

{CREDITS}"""),
    (C, """from plqa_nb.data import sample_images
from plqa_nb.widgets import build_tutorial_ui, most_compliant, notebook_config, quick, show_table
from plqa_nb.widgets.tutorial import (alignment_figure, maps_figure, plq_curve_figure, quality_table,
                                      scaling_figure, stages_run)

config = notebook_config()  # backbone, estimator and its arguments, α, r, γ, norm, seed: the defaults
samples = sample_images()
session, q_hat = most_compliant(samples, config, candidates=quick(10, 3))
print("model:", config.describe())
print(f"example face: {session.name} (Q̂ = {q_hat:.3f}, the highest of the London neutral photos tried)")"""),
    (M, """## Steps 1 and 2 · Detection and alignment

YuNet finds the face and MTCNN places five landmarks on it (eye centres, nose tip, mouth corners). A
similarity transform (rotation, scale, shift) then moves those landmarks as close as possible to the backbone's
**template**: where the network expects them in its square crop. Left: the detection on the photo; right: the
aligned crop, its landmarks (green) and the template (magenta crosses)."""),
    (C, """alignment_figure(session, config.backbone)"""),
    (M, """## Steps 3 and 4 · Quality Q and its scaling Q̂

The **quality estimator** measures how useful the network's embedding of this face is:

* **utility** (the default of both shipped networks) is a linear head that predicts the genuine similarity the
  face will reach, from the network's own features and embedding (one forward pass, fitted per network);
* **ERS** scores how far the embedding lies from the network's "unrecognisable identity", the place where it
  puts faces it cannot recognise (one forward pass);
* **SER-FIQ** repeats the network's last layers *m* times with dropout (probability *p*) and scores how close
  the *m* embeddings stay (Eq. 1);
* **FaceQAN** pushes *k* noisy copies of the face *l* steps towards a different embedding (adversarial noise)
  and scores how much the embedding resists, times the face's left-right symmetry.

The raw Q is model-specific; **Eq. 2** maps it to Q̂ = sigmoid(α (Q − r)) in [0, 1], with r near the mean
quality of a development set and α stretching it. The plot shows the range of Q where the curve rises; the
red dot is this face."""),
    (C, """show_table([row for row in quality_table(session, config) if row["step"] in ("quality", "scaling")])
scaling_figure(session, config)"""),
    (M, """## Step 5 · The quality regression model M_Q

M_Q is the FR network plus one linear node without bias on its embedding e. All weights are the same,
w = Q̂ / ‖e‖₁ (**Eq. 3** as the paper writes it; the authors' code divides by Σ_k e_k, so that
M_Q(I) = Q̂ exactly, `norm="signed"`): the network now *outputs the quality*, and its gradient with respect to
the pixels says how each pixel moves it. ‖e‖₁ keeps the maps of different photos on one scale."""),
    (C, """show_table([row for row in quality_table(session, config) if row["step"] == "regression"])"""),
    (M, """## Steps 6 and 7 · Saliency Ŝ and the PLQ map P

**Eq. 4–5:** the saliency Ŝ is the absolute gradient ∂M_Q/∂I, averaged over the three colour channels.
**Eq. 6:** P = v(Ŝ) = 1 − 1 / (1 + 10^γ Ŝ²) maps it to [0, 1]. There is no per-image normalisation, so maps of
different photos are comparable; γ only decides where the scale sits (v = ½ at Ŝ = 10^(−γ/2)).
Colours: red (low pixel quality) → yellow → green (high), fixed to [0, 1]."""),
    (C, """maps_figure(session, config)"""),
    (M, """How v(·) maps this face's saliencies (grey: the histogram of its pixels) for the current γ:"""),
    (C, """plq_curve_figure(session, config)"""),
    (M, """## What a parameter change costs

`FaceAnalysis` keeps every stage of this face. Ŝ is proportional to the weight w (Eq. 3), so a new γ only
re-applies v(·), a new α or r only rescales Ŝ, and a new estimator, *m*, *p* or seed recomputes the quality,
never the network's gradient. The counts below are the stages that ran for the changed configuration:"""),
    (C, """print("new γ:   ", stages_run(session, config.replace(gamma=config.gamma - 1)))
print("new α, r:", stages_run(session, config.replace(alpha=config.alpha / 2, r=0.5)))
print("new seed:", stages_run(session, config.replace(seed=config.seed + 1)))"""),
    (M, """## The explorer

Pick a sample face or upload your own photo (*your photo*); choose the backbone and the quality estimator;
move the estimator's arguments (SER-FIQ: *m*, *p*; FaceQAN: *k*, *l*, *p*), the seed, α, r and γ. The tabs
show the PLQ map, the step figures and all the numbers; the line above them counts the stages computed for
the face so far. A new backbone or estimator brings its own α, r and γ (the line under the dropdowns says
which moved). (The FaceNet backbones download their weights on first use; offline the dropdown stays put
and says why.)"""),
    (C, """build_tutorial_ui(samples, face=session.name)"""),
]

COMPARE = [
    (M, f"""# 2 · Comparing attribution methods

The paper's PLQ map is a plain gradient (saliency). Other attribution methods explain the same quality model
M_Q: SmoothGrad averages gradients of noisy copies, Integrated Gradients integrates them along a path from a
baseline image, Occlusion hides windows, Grad-CAM weighs the last feature maps. Maps in gradient units are
shown as PLQ (v(·) with γ), the others rank-normalised per image (*view* in the titles).

**Faithfulness.** A map orders the pixels, most useful first. *Deletion* replaces them in that order by a
filler and re-estimates Q̂: a faithful map makes Q̂ drop fast (low area under the curve, AUC). *Insertion*
starts from the blurred face and restores them: Q̂ should rise fast (high AUC). A random order is the baseline.

{QUICK}

{CREDITS}"""),
    (C, """from IPython.display import display

from plqa_nb.attribution import available_methods
from plqa_nb.widgets import build_compare_ui, notebook_config, london_sessions, progress_bar, quick, show_table
from plqa_nb.widgets.compare import DEFAULT_METHODS, curves_figure, method_maps_figure, run_comparison, timing_table

config = notebook_config()
print("available methods:", ", ".join(available_methods()))"""),
    (M, """## Run the comparison on a few faces

Every curve point is a real quality estimate, so this is the expensive cell (the bar shows the progress)."""),
    (C, """bar, progress = progress_bar("faces")
display(bar)
faces, comparison = run_comparison(london_sessions(quick(4, 2)), config, DEFAULT_METHODS[:quick(5, 2)],
                                   steps=quick(20, 3), n_random=quick(3, 1), road=True, progress=progress)"""),
    (M, """## The maps side by side

One row per face: the crop, then each method's map with its deletion (D) and insertion (I) AUC."""),
    (C, """method_maps_figure(faces, comparison)"""),
    (M, """## Deletion and insertion curves

Mean Q̂ over the faces against the fraction of pixels changed; dashed: the random order."""),
    (C, """curves_figure(comparison)"""),
    (M, """## Timing and summary

Seconds per face for the attribution alone and with its curves; mean AUCs; the share of faces on which the
method beats the random order. The ROAD columns delete without painting black (each removed pixel is imputed
from its neighbours, so coarse maps are not punished for cutting the face up): `road_morf_auc`, most relevant
first, should be low; `road_lerf_auc`, least relevant first, high."""),
    (C, """show_table(timing_table(comparison))"""),
    (M, """## Does the map point at the defect?

Faithfulness asks whether a map orders pixels by their effect on Q̂; localisation asks whether it points at a
known defect. Four synthetic occluders (sunglasses, face mask, cap, hand) are put on the first face, and each
method's map is scored against the occluder's exact mask: `mask_auc` (0.5 = chance), `relevance_mass` (against
`chance_mass`) and `region_hit`. The deviation map, which drives the feedback of notebook 5, comes first: it is
not an attribution of Q̂ but where the network's features depart from those of compliant faces."""),
    (C, """from plqa_nb.widgets.icao import localization_table

show_table(localization_table(london_sessions(1)[0], config, DEFAULT_METHODS[:quick(5, 1)]))"""),
    (M, """## The explorer

Choose faces and methods (ctrl/shift-click), the number of curve steps, the filler of deleted pixels and the
number of random orders, then press *compare*."""),
    (C, """build_compare_ui()"""),
]

INPAINTING = [
    (M, f"""# 3 · Inpainting low-quality areas

If the PLQ map is right, removing what it blames should raise the face's quality (paper, Sec. V-A). Here you
pick a face, set a **mask** (what the explanation blames, a threshold on its PLQ map, or a rectangle),
**fill** it (by default with the network's compliant mean face, blended in; or the mirrored other half of the
face, or OpenCV's Telea or Navier-Stokes inpainting), and compare Q̂ before and after. Q̂ is estimated with several seeds: a change counts as *up* or *down* only beyond
one standard deviation. The default estimator gives the same Q̂ for every seed (one forward pass); then there
is no ± and any change counts. SER-FIQ and FaceQAN vary with the seed.

{QUICK}

{CREDITS}"""),
    (C, """from IPython.display import display

from plqa_nb.data import sample_images
from plqa_nb.widgets import FaceAnalysis, build_inpainting_ui, notebook_config, pick_face, quick, show_table
from plqa_nb.experiments.inpainting import FILLS
from plqa_nb.widgets.inpainting import (DEFAULT_LEVEL, before_after_figure, before_after_table, explanation_mask,
                                        inpainting_result, mask_figure, rectangle_mask, threshold_mask)

config = notebook_config()
samples = sample_images()
name = pick_face("grace_hopper", samples)  # glasses and a cap: a real occlusion
session = FaceAnalysis(samples[name], name=name)"""),
    (M, """## The mask the explanation gives

`explanation_mask` is what `plqa experiment inpainting --mask-from plq` fills: the part of the face where a
window of the compliant mean face would raise the quality at least half as much as the best window (the
counterfactual map). The fills side by side:"""),
    (C, """mask = explanation_mask(session, config)
for how in FILLS[:quick(4, 2)]:
    display(mask_figure(session, config, mask, how))"""),
    (C, """result = inpainting_result(session, config, mask, repeats=quick(10, 3))
show_table(before_after_table(result))"""),
    (M, """## A mask from the PLQ map (the paper's rule)

`threshold_mask` keeps the connected regions inside the face whose smoothed PLQ is below *level* × the face's
median PLQ (outlined in blue); the right panel previews the inpainting, no quality is computed yet."""),
    (C, """mask = threshold_mask(session, config, level=DEFAULT_LEVEL)
mask_figure(session, config, mask)"""),
    (M, """## Inpaint and score

Q̂ before and after, each the mean ± std over several estimator seeds, and the two PLQ maps."""),
    (C, """result = inpainting_result(session, config, mask, repeats=quick(10, 3))
show_table(before_after_table(result))
before_after_figure(result)"""),
    (M, """## A rectangle instead

Any region can be tested; here a band across the eyes (crop pixels: x, y, width, height)."""),
    (C, """s = config.crop_size
mask_figure(session, config, rectangle_mask(s, s // 5, s // 4, 3 * s // 5, s // 6))"""),
    (M, """## The explorer

Pick a face, choose the mask mode and move its sliders (the preview follows; the other mode's sliders are
off), then press *inpaint and score*. A new mask clears the last score."""),
    (C, """build_inpainting_ui(face=name)"""),
]

MASKING = [
    (M, f"""# 4 · Random masking

A black square on a good face should lower its quality (Δ_Q̂ = Q̂_org − Q̂_mask > 0, **Eq. 7**) and the
pixel quality inside the square (Δ_p = mean PLQ in the square, original minus masked, > 0, **Eq. 8**)
(paper, Sec. V-B). First one square under your control, then random squares on several faces (Fig. 5).
The single square goes on the face the model rates highest among the first London neutral photos: a good face,
as the paper asks.

{QUICK}

{CREDITS}"""),
    (C, """from IPython.display import display

from plqa_nb.data import sample_images
from plqa_nb.experiments import masking
from plqa_nb.widgets import (build_masking_ui, london_sessions, most_compliant, notebook_config, progress_bar, quick,
                             show_table)
from plqa_nb.widgets.masking import distributions_figure, masking_batch, square_figure, square_table

config = notebook_config()
samples = sample_images()
session, q_hat = most_compliant(samples, config, candidates=quick(10, 3))
print(f"example face: {session.name} (Q̂ = {q_hat:.3f}, the highest of the London neutral photos tried)")"""),
    (M, """## One square

Top-left corner (x, y) and side in crop pixels. The original's map is computed once; only the masked crop is
explained for each new square."""),
    (C, """s = config.crop_size
x, y, size = s // 4, s // 3, s // 5
show_table(square_table(session, config, x, y, size))
square_figure(session, config, x, y, size)"""),
    (M, """Move the square yourself:"""),
    (C, """build_masking_ui(samples, face=session.name)"""),
    (M, """## Random squares on several faces (Fig. 5)

For every face and every size s (on the paper's 112-pixel scale, scaled to the crop), squares are placed at
random inside the inner 90 % of the crop. The violins show Δ_Q̂ and Δ_p per size, with the share of squares
that were noticed (> 0) under each."""),
    (C, """bar, progress = progress_bar("faces")
display(bar)
rows = masking_batch(london_sessions(quick(20, 2)), config, sizes=quick(masking.SIZES, (20, 50)),
                     per_size=quick(3, 1), progress=progress)"""),
    (C, """distributions_figure(rows)"""),
    (C, """show_table(masking.summary(rows))"""),
]

ICAO = [
    (M, f"""# 5 · ICAO-style violations

Passport photos must follow the ICAO rules: no sunglasses or masks, even light, a sharp image, a plain
background, a frontal pose. Starting from a compliant face, this notebook adds one violation at a chosen
**strength** (0: none, 1: full; it blends the face with the fully violated one) and shows the PLQ map, the
quality change Δ_Q̂ = Q̂_compliant − Q̂ (positive: worse), the mean PLQ per face region and the feedback in
words that an enrolment system could give.

**Signs.** Every table says which way is worse in its column names: `quality_lost` = Q̂_compliant − Q̂ and
`plq_lost` = PLQ_compliant − PLQ, both positive when the violation hurts.

**The compliant face** is chosen by what the model says of it: of the first London neutral photos, the one with
the highest Q̂. A violation can only show its cost on a face that has quality to lose.

{QUICK}

{CREDITS}"""),
    (C, """from IPython.display import HTML, display

from plqa_nb.data import sample_images
from plqa_nb.experiments.icao import VIOLATIONS
from plqa_nb.widgets import build_icao_ui, most_compliant, notebook_config, quick, show_table
from plqa_nb.widgets.icao import (all_violations, icao_figure, region_table, violation_summary,
                                  violations_figure)

config = notebook_config()
samples = sample_images()
session, q_hat = most_compliant(samples, config, candidates=quick(10, 3))
print(f"compliant face: {session.name} (Q̂ = {q_hat:.3f}, the highest of the London neutral photos tried)")
print("violations:", ", ".join(VIOLATIONS))"""),
    (M, """## One violation

Sunglasses at 70 % opacity. The feedback comes first: the one region to change, then the detail behind it. The
figure outlines the flagged part in blue, and shows the deviation map ("what stands out") beside the PLQ map
("what each pixel is worth")."""),
    (C, """from plqa_nb.widgets.plotting import LEGEND

summary = violation_summary(session, config, "sunglasses", 0.7)
display(HTML(f"<b>Feedback:</b> {summary['feedback']}"))
show_table([summary])
display(HTML(LEGEND))
icao_figure(session, config, "sunglasses", 0.7)"""),
    (M, """Mean PLQ per region, compliant and with the violation (*covered*: the occluder hides at least 40 % of
the region):"""),
    (C, """show_table(region_table(session, config, "sunglasses", 0.7))"""),
    (M, """## The explorer

Choose the face, the violation and its strength."""),
    (C, """build_icao_ui(samples, face=session.name)"""),
    (M, """## Every violation at full strength

Δ_Q̂ per violation for this face (hover for the worst region)."""),
    (C, """rows = all_violations(session, config)
show_table(rows, ["violation", "category", "quality", "quality_lost", "flagged_region", "worst_region",
                 "affected_region", "feedback"])
violations_figure(rows)"""),
    (M, """## Which part must change: flagged_region

`flagged_region` comes from the deviation map: the recognition network's own feature maps of this face, cell by
cell, against their mean and spread over compliant faces (the London *smiling* photos); a region is flagged when
its mean deviation is higher than what 75 % of compliant faces reach in any region (empty: nothing stands out). `worst_region` is the paper's reading, the
region of lowest mean PLQ. How well each map points at the four occluders of this face (`mask_auc`: 0.5 is
chance):"""),
    (C, """from plqa_nb.widgets.icao import localization_table

show_table(localization_table(session, config, quick(("saliency", "integrated-gradients", "grad-cam"), ("saliency",))))"""),
]

UTILITY = [
    (M, f"""# 6 · Quality as recognition utility: error versus discard

ISO/IEC 29794-1 defines face image quality as **utility**: how well the image will serve recognition. The
field's test of a quality estimator is the **error-versus-discard characteristic** (ERC, called EDC in the
standard): compare many pairs of photos, fix the decision threshold at a false match rate (FMR = 1e-3), then
discard the comparisons of lowest quality first and watch the false non-match rate (FNMR) of what remains.

**How to read it.** Every curve starts at the same FNMR (nothing discarded). A useful estimator makes it fall
fast: the faces it calls poor are the ones that fail. *random* discards at random and stays flat; *oracle*
discards the failing comparisons first, the best any estimator could do. pAUC₂₀ is the area under the curve up
to 20 % discarded, relative to a flat curve: 1 is useless, lower is better.

The second figure asks whether Q̂ means what it says. The shipped defaults calibrate Q̂ as the probability that
the face is matched at that threshold (`plqa calibrate --target utility`), so among pairs with Q̂ ≈ 0.7 about 70 %
should match: points on the diagonal. ECE is the average distance from it.

Here the smiling London photo of each person is the reference, the neutral one (which the defaults never saw)
the probe, clean and degraded at random. The numbers of the documentation (docs/results/erc.md) come from the
same comparison on all 102 people with `plqa evaluate erc`.

{QUICK}

{CREDITS}"""),
    (C, """from IPython.display import display

from plqa_nb.widgets import progress_bar, quick, show_table
from plqa_nb.widgets.evaluation import (build_utility_ui, erc_figure, kinds_table, reliability_figure,
                                        run_utility_evaluation, summary_table)

bar, progress = progress_bar("identities")
display(bar)
run = run_utility_evaluation(identities=quick(20, 6), probes=quick(4, 2), estimators=("utility", "ers", "serfiq"),
                             progress=progress)
print(f"{len(run.images)} images, {len(run.failed)} without a detectable face: {run.failed}")"""),
    (M, """## The error-versus-discard curves"""),
    (C, """erc_figure(run)"""),
    (C, """show_table(summary_table(run))"""),
    (M, """## Is Q̂ a probability of a match?"""),
    (C, """reliability_figure(run)"""),
    (M, """## What each estimator says of each kind of probe

The median Q̂ per kind and strength of degradation: a compliant photo should read near 1, an unusable one near 0."""),
    (C, """show_table(kinds_table(run))"""),
    (M, """## The explorer

Choose estimators (ctrl/shift-click), the number of people and of degraded probes per person, then press
*evaluate*. FaceQAN is slow (about 0.6 s per image on a CPU)."""),
    (C, """build_utility_ui()"""),
]

SPECS = {
    "01_tutorial.ipynb": TUTORIAL,
    "02_attribution_comparison.ipynb": COMPARE,
    "03_inpainting.ipynb": INPAINTING,
    "04_random_masking.ipynb": MASKING,
    "05_icao.ipynb": ICAO,
    "06_quality_utility.ipynb": UTILITY,
}


def build(name: str, cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A clean notebook (no outputs, stable cell ids) from (kind, source) pairs."""
    nb = new_notebook(metadata={
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    stem = name.split("_")[0]
    for i, (kind, source) in enumerate(cells):
        cell = new_markdown_cell(source) if kind == M else new_code_cell(source)
        cell["id"] = f"nb{stem}-{i:02d}"
        nb.cells.append(cell)
    return nb


def render(name: str) -> str:
    """The file text of notebook ``name``."""
    return nbformat.writes(build(name, SPECS[name])) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the files are up to date")
    args = parser.parse_args(argv)
    stale = []
    NOTEBOOKS.mkdir(exist_ok=True)
    for name in SPECS:
        path = NOTEBOOKS / name
        text = render(name)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text)
    if args.check and stale:
        print("out of date (run python scripts/make_notebooks.py):", ", ".join(stale))
        return 1
    print(("checked" if args.check else "wrote") + f" {len(SPECS)} notebooks in {NOTEBOOKS}"
          + (f" ({len(stale)} changed)" if not args.check else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
