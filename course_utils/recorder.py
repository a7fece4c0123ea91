"""A microphone button for Jupyter (anywidget): the browser records, Python receives the bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anywidget
import traitlets

from course_utils.errors import AudioError

HERE = Path(__file__).parent

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


class Recorder(anywidget.AnyWidget):
    """Record/stop button. `on_audio(fn)` gets (bytes, mime); `on_error(fn)` gets an AudioError."""

    _esm = HERE / "recorder.js"
    recording = traitlets.Bool(False).tag(sync=True)
    disabled = traitlets.Bool(False).tag(sync=True)
    label_record = traitlets.Unicode("Grabar").tag(sync=True)
    label_stop = traitlets.Unicode("Detener").tag(sync=True)
    language = traitlets.Unicode("es").tag(sync=True)  # the spoken language Whisper is told to expect

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._audio_callbacks: list[Callable[[bytes, str], None]] = []
        self._error_callbacks: list[Callable[[AudioError], None]] = []
        self.on_msg(self._on_message)

    def on_audio(self, callback: Callable[[bytes, str], None]) -> None:
        self._audio_callbacks.append(callback)

    def on_error(self, callback: Callable[[AudioError], None]) -> None:
        self._error_callbacks.append(callback)

    def _on_message(self, _widget, content: dict, buffers: list) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "audio":
            data = bytes(buffers[0]) if buffers else b""
            for callback in self._audio_callbacks:
                callback(data, str(content.get("mime", "")))
        elif kind == "error":
            error = recorder_error(str(content.get("reason", "")), str(content.get("detail", "")))
            for callback in self._error_callbacks:
                callback(error)
