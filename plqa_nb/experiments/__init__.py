"""The paper's analyses (Sections IV-V) as pure functions: inputs → result rows and figures.

* ``masking.run``: random black squares on good faces, Δ_Q̂ and Δ_p (Eqs. 7-8, Figs. 5-6);
* ``inpainting.run``: inpaint low-PLQ areas, Q̂ before/after with std (Figs. 3-4);
* ``icao.run`` / ``icao.run_as_is``: synthetic or real ICAO non-compliance, PLQ per face region (Fig. 7);
* ``feedback``: the worst regions in words (face regions themselves: ``plqa_nb.regions``);
* ``plots``: the figures. Every run returns a list of ``FaceResult`` (rows, panels); ``table`` flattens them.

Example::

    from plqa_nb.pipeline import Explainer
    from plqa_nb.data import london
    from plqa_nb.experiments import masking, plots, table
    ex = Explainer()
    results = masking.run(ex, [ex.prepare(p) for p in london(limit=4)])
    plots.masking_distributions(table(results))
"""
from . import icao, inpainting, masking, plots
from .common import FaceCrop, FaceResult, Panel, table
from .feedback import feedback

__all__ = ["icao", "inpainting", "masking", "plots", "FaceCrop", "FaceResult", "Panel", "table",
           "feedback"]
