"""The explorers' common frame: sample photos, their cached ``FaceAnalysis`` (the pipeline's staged,
single-face path), the model configuration and the widget to display."""
from __future__ import annotations

import html
from typing import Any, Sequence

import ipywidgets as w
from IPython.display import display

from ..config import ModelConfig
from ..data import astronaut, london, sample_images
from ..images import ImageLike
from ..pipeline import FaceAnalysis
from .display import render_into
from .settings import notebook_config
from .upload import UploadRefused, read_upload

ASTRONAUT = "astronaut (skimage)"  # the sample name of plqa_nb.data.astronaut()


class SessionCache:
    """FaceAnalysis objects by key, so that picking a face again reuses its cached stages."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._faces: dict[str, FaceAnalysis] = {}

    def get(self, key: str, image: ImageLike) -> FaceAnalysis:
        if key not in self._faces:
            self._faces[key] = FaceAnalysis(image, name=key, device=self.device)
        return self._faces[key]


def london_sessions(n: int, device: str = "cpu") -> list[FaceAnalysis]:
    """FaceAnalysis objects of the first ``n`` London neutral photos (compliant, passport-like faces); the
    astronaut alone when the London set is absent."""
    paths = london("neutral", n)
    if not paths:
        return [FaceAnalysis(astronaut(), name=ASTRONAUT, device=device)]
    return [FaceAnalysis(p, device=device) for p in paths]


def rank_faces(samples: dict[str, ImageLike], names: Sequence[str], config: ModelConfig,
               device: str = "cpu") -> list[tuple[FaceAnalysis, float]]:
    """(FaceAnalysis, Q̂ under ``config``) of the named samples, the highest Q̂ first."""
    sessions = [FaceAnalysis(samples[n], name=n, device=device) for n in names]
    scored = [(s, float(s.maps(config)["quality"][0])) for s in sessions]
    return sorted(scored, key=lambda pair: -pair[1])


def most_compliant(samples: dict[str, ImageLike], config: ModelConfig, candidates: int = 10,
                   device: str = "cpu") -> tuple[FaceAnalysis, float]:
    """The example face of a notebook chosen by what the model says of it: of the first ``candidates`` London
    neutral photos, the one with the highest Q̂ (and that Q̂); the astronaut when the set is absent."""
    names = [n for n in samples if n.startswith("london neutral")][:candidates] or [ASTRONAUT]
    return rank_faces(samples, names, config, device)[0]


def pick_face(preferred: str, samples: dict[str, ImageLike] | None = None) -> str:
    """``preferred`` if it is a sample's name, else the astronaut (always available)."""
    return preferred if preferred in (samples if samples is not None else sample_images()) else ASTRONAUT


class Explorer:
    """Base of the notebooks' explorers: sample photos, their cached FaceAnalysis objects, the model
    configuration and the ``widget`` to display."""

    def __init__(self, samples: dict[str, ImageLike] | None = None, config: ModelConfig | None = None,
                 device: str = "cpu"):
        self.samples = dict(samples if samples is not None else sample_images())
        self.base_config = config or notebook_config()
        self.sessions = SessionCache(device)
        self.widget: w.Widget = w.VBox()

    def _ipython_display_(self) -> None:
        display(self.widget)

    def config(self) -> ModelConfig:
        """The configuration of the maps (fixed here; the tutorial reads it from its controls)."""
        return self.base_config


class FaceUI(Explorer):
    """An explorer of one face at a time: a face picker, an upload (*your photo*), a notice line and an
    output area.

    Subclasses build their controls, call ``_finish(rows)`` and implement ``render()`` (the items to show).
    """

    def __init__(self, samples: dict[str, ImageLike] | None = None, config: ModelConfig | None = None,
                 device: str = "cpu", face: str | None = None):
        super().__init__(samples, config, device)
        self.face = w.Dropdown(options=list(self.samples), description="face",
                               value=face if face in self.samples else next(iter(self.samples)))
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="your photo")
        self.notice = w.HTML()
        self.output = w.Output()
        self._hold = False  # True while several controls change at once: one redraw at the end
        self.upload.observe(lambda _: self._on_upload(), names="value")

    def _finish(self, rows: Sequence[Sequence[w.Widget]], observe: Sequence[w.Widget] = ()) -> None:
        """Lay out the face picker, the upload and the notice line, the control rows and the output; redraw
        on every change of ``observe`` (and the face)."""
        for c in (self.face, *observe):
            c.observe(lambda _: None if self._hold else self.update(), names="value")
        self.widget = w.VBox([w.HBox([self.face, self.upload]), self.notice]
                             + [w.HBox(list(r)) for r in rows] + [self.output])
        self.update()

    def _on_upload(self) -> None:
        """Add the uploaded photo (decoded in memory) to the faces and show it, or say why it is refused."""
        for f in self.upload.value:
            try:
                photo = read_upload(f["name"], f["content"], f["size"])
            except UploadRefused as exc:
                self.notice.value = f"<p style='color:#b00020'>{html.escape(str(exc))}</p>"
                continue
            key = f"upload: {f['name']}"
            self.samples[key] = photo
            self.notice.value = ""
            self._hold = True  # new options reset the value to the first face: no redraw of that one
            self.face.options = list(self.samples)
            self._hold = False
            self.face.value = key
        self.upload.value = ()  # the content lives on only as the decoded photo

    def session(self) -> FaceAnalysis:
        """The picked face's analysis (its cached stages)."""
        return self.sessions.get(self.face.value, self.samples[self.face.value])

    def render(self) -> list[Any]:
        raise NotImplementedError

    def update(self) -> None:
        """Redraw the output for the current controls."""
        render_into(self.output, self.render)
