"""The page of ``plqa app``: the tutorial explorer (the PLQ map of a photo) and the ICAO explorer (what a
violation does to it) for people who analyse photos but do not read Python; Voilà shows it without code."""
from __future__ import annotations

import ipywidgets as w

from ..config import ModelConfig
from ..data import sample_images
from ..images import ImageLike
from .icao import IcaoUI
from .explorer import most_compliant
from .settings import notebook_config, quick
from .tutorial import TutorialUI
from .upload import MAX_UPLOAD_BYTES

APP_TABS = ("quality map", "ICAO check")

INTRO = """<h2 style='margin:4px 0'>Face image quality, pixel by pixel</h2>
<p style='max-width:60em'>Choose a sample face or press <b>your photo</b> to upload one (JPEG or PNG, up to {mb:g} MB;
it stays in this page's memory and is never saved). <b>{tab0}</b>: the face's quality Q̂ (0: unusable for face
recognition, 1: fully usable) and the pixel-level quality map (green: pixels that help recognition, red: pixels
that hurt it). <b>{tab1}</b>: add a passport-rule violation (sunglasses, blur, bad light, …) and see how much quality
it costs and where.</p>"""


def build_app(samples: dict[str, ImageLike] | None = None, config: ModelConfig | None = None,
              device: str = "cpu") -> w.VBox:
    """The app's page: an introduction and the two explorers in tabs, starting on the sample face the model
    rates highest."""
    samples = dict(samples if samples is not None else sample_images())
    config = config or notebook_config()
    face = most_compliant(samples, config, quick(10, 3), device)[0].name
    tutorial = TutorialUI(samples, config, device, face)
    icao = IcaoUI(dict(samples), config, device, face)
    tabs = w.Tab(children=[tutorial.widget, icao.widget])
    for i, title in enumerate(APP_TABS):
        tabs.set_title(i, title)
    intro = w.HTML(INTRO.format(mb=MAX_UPLOAD_BYTES / 2**20, tab0=APP_TABS[0], tab1=APP_TABS[1]))
    return w.VBox([intro, tabs])
