"""The paper's analyses (Sections IV-V) as pure functions: inputs → result rows and figures.

* ``masking.run``: random black squares on good faces, Δ_Q̂ and Δ_p (Eqs. 7-8, Figs. 5-6);
* ``inpainting.run``: inpaint low-PLQ areas, Q̂ before/after with std (Figs. 3-4);
* ``icao.run`` / ``icao.run_as_is``: synthetic or real ICAO non-compliance, PLQ per face region (Fig. 7);
* ``feedback.feedback``: the region to change and the detail in words (face regions themselves: ``plqa_nb.regions``);
* ``options``: their names and defaults (light: no torch);
* ``plots``: the figures. Every run returns a list of ``FaceResult`` (rows, panels); ``table`` flattens them.

Example::

    from plqa_nb.pipeline import Explainer
    from plqa_nb.data import london
    from plqa_nb.experiments import masking, plots, table
    ex = Explainer()
    results = masking.run(ex, [ex.prepare(p) for p in london(limit=4)])
    plots.masking_distributions(table(results))
"""
from ..lazy import lazy_attributes

# the analyses load torch: imported on first use (``from plqa_nb.experiments import icao`` imports the module), so
# that ``options`` stays light for the command line
__getattr__ = lazy_attributes(__name__, {"FaceCrop": ".common", "FaceResult": ".common", "Panel": ".common",
                                         "table": ".common"})
__all__ = ["icao", "inpainting", "masking", "plots", "options", "FaceCrop", "FaceResult", "Panel", "table"]
