"""A microphone button for Jupyter (anywidget): the browser records, Python receives the bytes.

While it records, a level meter shows that the microphone hears something and a clock counts up to
`max_seconds`, where the recording stops by itself (and says so). A selector tells Whisper which
language is spoken (Spanish by default).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anywidget
import traitlets

from course_utils.errors import AudioError, OptionError

HERE = Path(__file__).parent
MAX_SECONDS = 60  # a spoken question; Whisper reads 30-second windows, so longer still works, only slower
# The languages offered first: the course's and its neighbours' (Whisper knows about a hundred).
LANGUAGES = {
    "es": "español",
    "en": "inglés",
    "ca": "catalán",
    "gl": "gallego",
    "eu": "euskera",
    "pt": "portugués",
    "fr": "francés",
    "it": "italiano",
    "de": "alemán",
}

# What the browser's getUserMedia errors mean, for a student.
_REASONS = {
    "insecure": (
        "El navegador no deja usar el micrófono en esta página: no es un contexto seguro ({detail}).",
        "Abre JupyterLab como http://localhost (túnel SSH) o por HTTPS; ver docs/laboratorio.md.",
    ),
    "unsupported": (
        "Este navegador no sabe grabar audio (no tiene MediaRecorder).",
        "Usa un navegador actual: Chrome, Chromium, Firefox o Edge.",
    ),
    "NotAllowedError": (
        "Se denegó el permiso para usar el micrófono.",
        "Permite el micrófono en el candado de la barra de direcciones y vuelve a pulsar Grabar.",
    ),
    "NotFoundError": ("No se encontró ningún micrófono.", "Conecta un micrófono y vuelve a pulsar Grabar."),
    "NotReadableError": (
        "El micrófono está ocupado por otra aplicación.",
        "Cierra la otra aplicación (videollamada, grabadora) y vuelve a intentarlo.",
    ),
}


def recorder_error(reason: str, detail: str = "") -> AudioError:
    """The Spanish explanation of a failure reported by the browser."""
    message, hint = _REASONS.get(
        reason, ("No se pudo grabar: {reason} {detail}", "Vuelve a intentarlo o escribe la pregunta.")
    )
    return AudioError(message.format(reason=reason, detail=detail).strip(), hint)


_CSS = """
.course-rec { display: flex; align-items: center; gap: 8px; flex-wrap: nowrap; }
.course-rec-language { display: flex; align-items: center; gap: 4px; font-size: 13px; color: #1f2328; }
.course-rec-select {
  font: inherit; padding: 2px 4px; color: #1f2328; background: #ffffff;
  border: 1px solid #6e7781; border-radius: 4px;
}
.course-rec-live { display: inline-flex; align-items: center; gap: 6px; }
.course-rec-hidden { display: none; }
.course-rec-meter {
  display: inline-block; width: 96px; height: 10px; border-radius: 5px; overflow: hidden;
  background: #eaeef2; border: 1px solid #6e7781;
}
.course-rec-level { display: block; height: 100%; width: 0; background: #1a7f37; }
.course-rec-clock { font-size: 13px; color: #1f2328; font-variant-numeric: tabular-nums; }
.course-rec-note { font-size: 12px; color: #7d4e00; max-width: 220px; }
"""


class Recorder(anywidget.AnyWidget):
    """Record/stop button, level meter, clock and spoken-language selector.

    `on_audio(fn)` gets (bytes, mime); `on_error(fn)` gets an AudioError. After a recording,
    `stopped_at_limit` says whether it reached `max_seconds` and stopped by itself.
    """

    _esm = HERE / "recorder.js"
    _css = _CSS
    recording = traitlets.Bool(False).tag(sync=True)
    disabled = traitlets.Bool(False).tag(sync=True)
    label_record = traitlets.Unicode("Grabar").tag(sync=True)
    label_stop = traitlets.Unicode("Detener").tag(sync=True)
    language = traitlets.Unicode("es").tag(sync=True)  # the spoken language Whisper is told to expect
    languages = traitlets.List(traitlets.List(), default_value=[[k, v] for k, v in LANGUAGES.items()]).tag(sync=True)
    max_seconds = traitlets.Int(MAX_SECONDS, min=1).tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._audio_callbacks: list[Callable[[bytes, str], None]] = []
        self._error_callbacks: list[Callable[[AudioError], None]] = []
        self.stopped_at_limit = False
        self.on_msg(self._on_message)

    @traitlets.validate("language")
    def _known_language(self, proposal):
        if proposal["value"] not in {code for code, _name in self.languages}:
            raise OptionError(
                f"«{proposal['value']}» no está en la lista de idiomas de la grabadora.",
                f"Usa uno de: {', '.join(code for code, _name in self.languages)} (o amplía `languages`).",
            )
        return proposal["value"]

    def on_audio(self, callback: Callable[[bytes, str], None]) -> None:
        self._audio_callbacks.append(callback)

    def on_error(self, callback: Callable[[AudioError], None]) -> None:
        self._error_callbacks.append(callback)

    def _on_message(self, _widget, content: dict, buffers: list) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "audio":
            self.stopped_at_limit = bool(content.get("at_limit"))
            data = bytes(buffers[0]) if buffers else b""
            for callback in self._audio_callbacks:
                callback(data, str(content.get("mime", "")))
        elif kind == "error":
            error = recorder_error(str(content.get("reason", "")), str(content.get("detail", "")))
            for callback in self._error_callbacks:
                callback(error)
