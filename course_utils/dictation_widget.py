"""The dictation demo (`make demo DEMO=dictado`): record, and Whisper's text appears, the newest take on top.

The same policy as the chat's voice button (course_utils.dictation): no voice heard, no text.
"""

from __future__ import annotations

import threading
from html import escape

import ipywidgets as widgets
from IPython.display import display

from course_utils.dictation import dictate
from course_utils.errors import CourseError
from course_utils.recorder import Recorder


class DictationDemo:
    """A Recorder, a status line and the transcripts; `texts` keeps every take's text, in order."""

    def __init__(self):
        self.recorder = Recorder()
        self.status = widgets.HTML("Pulsa <b>Grabar</b>, habla y pulsa <b>Detener</b>.")
        self.status.add_class("course-dictation-status")
        self.transcripts = widgets.VBox()
        self.transcripts.add_class("course-dictation-texts")
        self.texts: list[str] = []
        self._thread: threading.Thread | None = None
        self.recorder.on_audio(lambda data, _mime: self.transcribe(data))
        self.recorder.on_error(self._show_error)
        self.widget = widgets.VBox([self.recorder, self.status, self.transcripts])
        self.widget.add_class("course-dictation")

    def _ipython_display_(self):
        display(self.widget)

    def transcribe(self, audio: bytes) -> None:
        """Transcribe one recording in the background (the page stays responsive)."""
        self.recorder.disabled = True
        self.status.value = "Transcribiendo con Whisper…"
        self._thread = threading.Thread(target=self._transcribe, args=(audio,), daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running transcription ends (for scripts and tests)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def _transcribe(self, audio: bytes) -> None:
        try:
            language = self.recorder.language
            text, warning = dictate(audio, language)
        except CourseError as exc:
            self._show_error(exc)
        except Exception as exc:  # noqa: BLE001 - a background thread: any failure is shown, in Spanish
            self._show_error(CourseError("No se pudo transcribir la grabación.", f"Detalle: {exc}"))
        else:
            self.texts.append(text)
            spoken = dict(self.recorder.languages).get(language, language)
            self.status.value = escape(f"Transcripción lista ({spoken}).{warning}")
            take = widgets.HTML(
                f"<p class='course-dictation-text' style='font-size:1.4em;overflow-wrap:anywhere'>{escape(text)}</p>"
            )
            self.transcripts.children = (take, *self.transcripts.children)
        finally:
            self.recorder.disabled = False

    def _show_error(self, exc: CourseError) -> None:
        self.status.value = exc._repr_html_()
