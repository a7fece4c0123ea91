"""The interactive part of notebook 04: upload a photo or pick a sample, see its top-k; "Otra imagen" starts again."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from pathlib import Path

import ipywidgets as widgets
from IPython.display import display

from course_utils import vision
from course_utils.errors import CourseError


class ClassifierDemo:
    """Replaces the old script's "¿continuar? s/n" loop with an upload, a sample list and a button.

    `last` keeps the latest `Ranking` (None after an error or a reset), `error` the latest CourseError.
    """

    def __init__(self, samples, k: int = 7, classifier: vision.Classifier | None = None):
        self.samples = Path(samples)
        self.k = k
        self.classifier = classifier or vision.load_classifier()
        self.last: vision.Ranking | None = None
        self.error: CourseError | None = None
        self.upload = widgets.FileUpload(
            accept="image/*",
            multiple=False,
            description="Subir imagen",
            tooltip="Sube una foto tuya (jpg, png, webp…) para clasificarla",  # without one the page says «null»
        )
        self.sample = widgets.Dropdown(
            options=[("— elige una muestra —", "")] + [(p.name, p) for p in vision.image_files(self.samples)],
            description="Muestra:",
        )
        self.again = widgets.Button(description="Otra imagen", icon="refresh", disabled=True)
        self.out = widgets.Output()
        self.upload.observe(self._on_upload, names="value")
        self.sample.observe(self._on_sample, names="value")
        self.again.on_click(lambda _: self.reset())
        self.widget = widgets.VBox([widgets.HBox([self.upload, self.sample, self.again]), self.out])

    def _ipython_display_(self):
        display(self.widget)

    def choose(self, name: str) -> vision.Ranking | None:
        """Pick a sample by file name, as the dropdown does."""
        self.sample.value = self.samples / name
        return self.last

    def upload_file(self, path) -> vision.Ranking | None:
        """Do what the upload button does when a student picks this file (handy without a browser)."""
        path = Path(path)
        content = path.read_bytes() if path.is_file() else b""
        self.upload.value = (
            {
                "name": path.name,
                "type": "",
                "size": len(content),
                "content": memoryview(content),
                "last_modified": datetime.now(UTC),
            },
        )
        return self.last

    def classify(self, source, name: str) -> vision.Ranking | None:
        """Show the top-k table and the figure of one image; a bad image shows its Spanish error instead."""
        self.out.clear_output(wait=True)
        self.last, self.error = None, None
        with self.out:
            try:
                image = vision.open_image(source, name)
                self.last = vision.top_k(image, self.k, classifier=self.classifier)
            except CourseError as exc:
                self.error = exc
                display(exc)
            else:
                # the figure carries the stand-in notice, if any: the table without it, so that it shows once
                table = vision.Ranking(self.last)
                display(widgets.HTML(f"<b>{escape(name)}</b>"), table, vision.show_prediction(image, self.last))
        self.again.disabled = False
        return self.last

    def reset(self) -> None:
        """Clear the result and the choices, ready for another image."""
        self.sample.value = ""  # the placeholder (None means «no option» in ipywidgets 8: a blank list)
        self.upload.value = ()
        self.out.clear_output()
        self.last, self.error = None, None
        self.again.disabled = True

    def _on_upload(self, change) -> None:
        if change["new"]:
            file = change["new"][0]  # ipywidgets 8: a tuple of dicts with "name" and "content"
            self.classify(file["content"], file["name"])

    def _on_sample(self, change) -> None:
        if change["new"]:  # "" is the placeholder
            self.classify(change["new"], change["new"].name)
