"""One exception family for the course: each error says, in Spanish, what happened and what to do."""

from __future__ import annotations

from html import escape

from course_utils.display import ALERT, ALERT_BACKGROUND


class CourseError(Exception):
    """Base error: `message` says what happened, `hint` what the student should do."""

    default_hint = ""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint

    def __str__(self) -> str:
        return f"{self.message}\n→ {self.hint}" if self.hint else self.message

    def _repr_html_(self) -> str:
        hint = f"<br>→ {escape(self.hint)}" if self.hint else ""
        return (
            f'<div style="border-left:4px solid {ALERT};padding:4px 8px;background:{ALERT_BACKGROUND}">'
            f"<b>{escape(type(self).__name__)}</b>: {escape(self.message)}{hint}</div>"
        )


class ConfigError(CourseError):
    default_hint = "Revisa las variables de entorno COURSE_* (ver el cuaderno 00_entorno)."


class OptionError(CourseError):
    """An argument of a helper call has a value it does not accept (an unknown option, task, language…)."""

    default_hint = "Revisa los argumentos de la llamada: help(función) explica cuáles acepta."


class ModelLoadError(CourseError):
    default_hint = "Comprueba el nombre del modelo o la ruta, y la conexión si hay que descargarlo."


class AudioError(CourseError):
    default_hint = "Usa un archivo de audio válido (wav, mp3, ogg, webm, m4a) con voz."


class ImageError(CourseError):
    default_hint = "Usa una imagen válida (jpg, png, webp, gif, bmp)."


class ExportError(CourseError):
    default_hint = "Elige una carpeta que exista y en la que puedas escribir."


class OllamaError(CourseError):
    """Anything that goes wrong talking to the Ollama server."""

    default_hint = "Revisa el servidor de Ollama (cuaderno 00_entorno)."


class ServerUnreachable(OllamaError):
    default_hint = "Arranca el servidor con `ollama serve` o revisa la variable OLLAMA_HOST."


class ModelNotPulled(OllamaError):
    default_hint = "Descarga el modelo con `ollama pull llama3.2-vision`."


class ServerTimeout(OllamaError):
    default_hint = "El servidor tardó demasiado: vuelve a intentarlo o reduce num_predict."


class StreamCut(OllamaError):
    """The streamed answer stopped mid-way; `partial` keeps what arrived."""

    default_hint = "La respuesta se cortó: vuelve a enviar el mensaje."

    def __init__(self, message: str, partial: str = "", hint: str | None = None):
        super().__init__(message, hint)
        self.partial = partial


class ServerBusy(OllamaError):
    """Ollama answered 503: its queue is full (normal when a whole class asks at once)."""

    default_hint = "Hay muchas peticiones en cola: vuelve a intentarlo dentro de un momento."


class Cancelled(OllamaError):
    """The answer was stopped on request; `partial` keeps the text received until then (maybe "")."""

    default_hint = ""

    def __init__(self, message: str, partial: str = "", hint: str | None = None):
        super().__init__(message, hint)
        self.partial = partial


class TooManyImages(OllamaError):
    default_hint = "Adjunta una sola imagen por mensaje."


class ModelNotSupported(OllamaError):
    """The server has the model but cannot load it: its Ollama no longer (or not yet) runs that family."""

    default_hint = "Usa otra versión de Ollama u otro modelo (cuaderno 00_entorno)."


class NoVision(OllamaError):
    """An image for a model that only reads text."""

    default_hint = "Elige un modelo de visión (en el chat, los que no llevan «sin visión»)."


class ServerOutOfMemory(OllamaError):
    """The server has too little (GPU) memory to load the model."""

    default_hint = "Usa un modelo más pequeño o libera memoria en el servidor (`ollama ps`, `ollama stop`)."


def install_notebook_handler() -> None:
    """In IPython, show a CourseError as its short Spanish message instead of a traceback."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def _show(shell, etype, evalue, tb, tb_offset=None):
        from IPython.display import display

        display(evalue)
        return [str(evalue)]

    shell.set_custom_exc((CourseError,), _show)
