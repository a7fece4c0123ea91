"""The multimodal chat widget: type, attach an image, dictate with the microphone, read streamed answers.

`ChatWidget()` is an ipywidgets VBox. Answers and transcriptions run in background threads so the
kernel stays free to receive clicks (Parar, Detener) while the model writes.
"""

from __future__ import annotations

import base64
import html
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import anywidget
import ipywidgets as widgets
import nh3
import traitlets
from markdown_it import MarkdownIt

from course_utils import config, llm
from course_utils.errors import AudioError, CourseError, ImageError
from course_utils.images import open_image
from course_utils.recorder import Recorder

HERE = Path(__file__).parent
SYSTEM = ("Eres un asistente de un curso de modelos multimodales. Responde en español, "
          "de forma clara y breve. Si te dan una imagen, descríbela con precisión.")
THUMB_SIDE = 240
REFRESH_SECONDS = 0.05  # at most ~20 updates a second while an answer streams

# Raw HTML in the model's Markdown is shown as text, and nh3 removes anything executable that is left.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])


def render_markdown(text: str) -> str:
    """Model output (Markdown) as safe HTML: no scripts, no event handlers, no javascript: links."""
    return nh3.clean(_MARKDOWN.render(text), url_schemes={"http", "https", "mailto"},
                     set_tag_attribute_values={"a": {"target": "_blank"}})


class _Executable(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed"):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{name}= en <{tag}>")
            elif name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                    ("javascript:", "vbscript:", "data:text/html")):
                self.found.append(f"{name}={value}")


def executable_parts(html_text: str) -> list[str]:
    """What in an HTML fragment a browser could run: script tags, on* handlers, javascript: URLs."""
    parser = _Executable()
    parser.feed(html_text)
    return parser.found


@dataclass
class Message:
    role: str  # "user" or "assistant"
    content: str
    images: list[bytes] = field(default_factory=list)  # JPEG bytes
    stopped: bool = False  # the student pressed Parar before the answer ended

    def to_dict(self) -> dict:
        data = {"role": self.role, "content": self.content,
                "images": [base64.b64encode(img).decode("ascii") for img in self.images]}
        if self.stopped:
            data["stopped"] = True
        return data


class PromptBox(anywidget.AnyWidget):
    """A text area where Enter sends (a "submit" message) and Shift+Enter starts a new line."""

    _esm = HERE / "chat.js"
    _css = HERE / "chat.css"  # the whole chat's styles: anywidget adds them to the page once
    value = traitlets.Unicode("").tag(sync=True)
    placeholder = traitlets.Unicode("").tag(sync=True)
    disabled = traitlets.Bool(False).tag(sync=True)
    rows = traitlets.Int(3).tag(sync=True)

    def on_submit(self, callback) -> None:
        """`callback(text)` runs when the student presses Enter."""
        def handle(_widget, content, _buffers):
            if isinstance(content, dict) and content.get("type") == "submit":
                self.value = str(content.get("value", ""))
                callback(self.value)
        self.on_msg(handle)


def _standin_warning(transcript) -> str:
    note = getattr(transcript, "standin", None)
    if not note and (raw := config.standin_note(config.settings().whisper_model)):
        note = f"modelo de prueba: {raw}"
    return f" Aviso: {note}" if note else ""


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class ChatWidget(widgets.VBox):
    """Chat with a vision model on Ollama: text, one image per message, voice, streamed answers."""

    def __init__(self, model: str | None = None, temperature: float = 0.7, system: str | None = SYSTEM,
                 export_dir: str | Path = "conversaciones"):
        self.system = system
        self.export_dir = Path(export_dir)
        self.history: list[Message] = []
        self._image: bytes | None = None
        self._busy = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._build(temperature)
        super().__init__([self._header, self.pane, self._attachment, self._input, self._tools,
                          self.status, self.downloads])
        self.add_class("course-chat")
        self.refresh_models(model)

    # --- layout -------------------------------------------------------------------------------
    def _build(self, temperature: float) -> None:
        self.model_picker = widgets.Dropdown(description="Modelo", layout=widgets.Layout(width="300px"))
        self.refresh_button = widgets.Button(icon="refresh", tooltip="Volver a leer los modelos del servidor",
                                             layout=widgets.Layout(width="36px"))
        self.temperature = widgets.FloatSlider(value=temperature, min=0.0, max=2.0, step=0.1, description="Temperatura",
                                               readout_format=".1f", style={"description_width": "initial"},
                                               layout=widgets.Layout(width="320px"))
        self.clear_button = widgets.Button(description="Borrar conversación", icon="trash",
                                           layout=widgets.Layout(width="auto"))
        self.export_button = widgets.Button(description="Exportar", icon="download",
                                            tooltip="Guardar la conversación en Markdown y JSON",
                                            layout=widgets.Layout(width="auto"))
        self._header = widgets.HBox([self.model_picker, self.refresh_button, self.temperature])
        self._header.add_class("course-chat-header")

        self.pane = widgets.VBox(layout=widgets.Layout(width="100%"))
        self.pane.add_class("course-chat-pane")

        self.preview = widgets.Image(format="jpeg", layout=widgets.Layout(max_height="90px", width="auto"))
        self.remove_button = widgets.Button(description="Quitar imagen", icon="times")
        self._attachment = widgets.HBox([self.preview, self.remove_button],
                                        layout=widgets.Layout(display="none", align_items="center"))
        self._attachment.add_class("course-chat-attachment")

        self.prompt = PromptBox(placeholder="Escribe tu pregunta… (Enter envía, Mayús+Enter: nueva línea)",
                                layout=widgets.Layout(flex="1 1 auto"))
        self.send_button = widgets.Button(description="Enviar", icon="paper-plane", button_style="primary")
        self.stop_button = widgets.Button(description="Parar", icon="stop", disabled=True,
                                          tooltip="Detener la respuesta que se está escribiendo")
        self._input = widgets.HBox([self.prompt, widgets.VBox([self.send_button, self.stop_button])])
        self._input.add_class("course-chat-input")

        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Adjuntar imagen",
                                         layout=widgets.Layout(width="auto"))
        self.recorder = Recorder()
        spacer = widgets.Box(layout=widgets.Layout(flex="1 1 auto"))
        self._tools = widgets.HBox([self.upload, self.recorder, spacer, self.clear_button, self.export_button])
        self._tools.add_class("course-chat-tools")
        self.status = widgets.HTML()
        self.status.add_class("course-chat-status")
        self.downloads = widgets.HTML()

        self.prompt.on_submit(lambda _text: self.send())
        self.send_button.on_click(lambda _b: self.send())
        self.stop_button.on_click(lambda _b: self.stop())
        self.clear_button.on_click(lambda _b: self.clear())
        self.export_button.on_click(lambda _b: self.export())
        self.refresh_button.on_click(lambda _b: self.refresh_models())
        self.remove_button.on_click(lambda _b: self.remove_image())
        self.upload.observe(self._on_upload, "value")
        self.recorder.on_audio(lambda data, _mime: self.transcribe(data))
        self.recorder.on_error(self._show_error)

    # --- small display helpers ------------------------------------------------------------------
    def _set_status(self, text: str) -> None:
        self.status.value = html.escape(text)

    @staticmethod
    def _wrap(inner: str, kind: str) -> str:
        return f'<div class="course-bubble course-{kind}">{inner}</div>'

    def _bubble(self, inner: str, kind: str) -> widgets.HTML:
        bubble = widgets.HTML(self._wrap(inner, kind), layout=widgets.Layout(width="100%"))
        self.pane.children = (*self.pane.children, bubble)
        return bubble

    def _drop(self, *bubbles: widgets.HTML) -> None:
        self.pane.children = tuple(b for b in self.pane.children if b not in bubbles)
        for bubble in bubbles:
            bubble.close()

    def _user_html(self, message: Message) -> str:
        uris = [_data_uri(llm.prepare_image(img, THUMB_SIDE), "image/jpeg") for img in message.images]
        thumbs = "".join(f'<img class="course-thumb" alt="imagen adjunta" src="{uri}">' for uri in uris)
        text = html.escape(message.content).replace("\n", "<br>")
        return f'<div class="course-bubble-who">Tú</div>{thumbs}{text}'

    @staticmethod
    def _assistant_html(text: str, stopped: bool = False, writing: bool = False) -> str:
        tail = '<div class="course-stopped">(respuesta detenida)</div>' if stopped else ""
        body = render_markdown(text) if text else ("<p>…</p>" if writing else "")
        return f'<div class="course-bubble-who">Asistente</div>{body}{tail}'

    def _show_error(self, exc: Exception) -> None:
        if isinstance(exc, CourseError):
            text = html.escape(exc.message) + (f"<br>→ {html.escape(exc.hint)}" if exc.hint else "")
        else:
            text = html.escape(f"Error inesperado ({type(exc).__name__}): {exc}")
        self._bubble(text, "error")
        self._set_status("Algo falló: lee el mensaje en rojo. Tu texto y la conversación se conservan.")

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.send_button.disabled = busy
        self.stop_button.disabled = not busy
        self.clear_button.disabled = busy

    # --- models -------------------------------------------------------------------------------
    def refresh_models(self, preferred: str | None = None) -> None:
        """Fill the model picker with the models pulled on the Ollama server."""
        wanted = preferred or self.model_picker.value or config.settings().llm_model
        server = llm.check_server(wanted)
        options = list(server.models) or [wanted]
        tagged = wanted if ":" in wanted else wanted + ":latest"
        self.model_picker.options = options
        self.model_picker.value = tagged if tagged in options else wanted if wanted in options else options[0]
        if server.error is not None:
            self._show_error(server.error)
        else:
            self._set_status(f"Conectado a {server.host} (Ollama {server.version}). "
                             f"{len(options)} modelo(s) disponibles.")

    # --- image --------------------------------------------------------------------------------
    def attach_image(self, source) -> None:
        """Attach an image (path, bytes, PIL image or array) to the next message."""
        img = open_image(source)
        self._image = llm.prepare_image(img)
        self.preview.value = llm.prepare_image(img, THUMB_SIDE)
        self._attachment.layout.display = "flex"
        self._set_status(f"Imagen adjunta ({img.width}×{img.height}). Escribe tu pregunta sobre ella.")

    def remove_image(self) -> None:
        self._image = None
        self.preview.value = b""
        self._attachment.layout.display = "none"

    def _on_upload(self, change) -> None:
        if not change["new"]:
            return
        item = change["new"][0]
        try:
            self.attach_image(bytes(item["content"]))
        except ImageError as exc:
            self._show_error(ImageError(f"«{item.get('name', 'el archivo')}»: {exc.message}", exc.hint))
        finally:
            self.upload.value = ()

    # --- sending and streaming ------------------------------------------------------------------
    def send(self, text: str | None = None) -> bool:
        """Send the text area's text (and the attached image). Ignored while an answer streams."""
        if self._busy:
            self._set_status("Espera a que termine la respuesta (o pulsa Parar).")
            return False
        text = (self.prompt.value if text is None else text).strip()
        if not text and self._image is None:
            self._set_status("Escribe una pregunta o adjunta una imagen antes de enviar.")
            return False
        message = Message("user", text or "Describe esta imagen.",
                          [self._image] if self._image is not None else [])
        self._set_busy(True)
        self._stop.clear()
        self.prompt.value = ""
        self.remove_image()
        user_bubble = self._bubble(self._user_html(message), "user")
        answer_bubble = self._bubble(self._assistant_html("", writing=True), "assistant")
        self._set_status(f"{self.model_picker.value} está escribiendo…")
        self._start(self._answer, message, user_bubble, answer_bubble)
        return True

    def stop(self) -> None:
        """Stop the answer being written; what arrived so far stays in the conversation."""
        self._stop.set()

    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running answer and transcription end (for scripts and tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _history_for_model(self, message: Message) -> list[dict]:
        # Llama 3.2 Vision takes one image per conversation turn: keep only the most recent one.
        keep = message.images or next((m.images for m in reversed(self.history) if m.images), [])
        return [{"role": m.role, "content": m.content, **({"images": m.images} if m.images is keep else {})}
                for m in self.history]

    def _answer(self, message: Message, user_bubble: widgets.HTML, answer_bubble: widgets.HTML) -> None:
        parts: list[str] = []
        try:
            chunks = llm.stream(message.content, images=message.images or None, system=self.system,
                                history=self._history_for_model(message), model=self.model_picker.value,
                                temperature=self.temperature.value)
            last = 0.0
            try:
                for chunk in chunks:
                    parts.append(chunk)
                    if self._stop.is_set():
                        break
                    if time.monotonic() - last > REFRESH_SECONDS:
                        answer_bubble.value = self._wrap(self._assistant_html("".join(parts), writing=True),
                                                         "assistant")
                        last = time.monotonic()
            finally:
                close = getattr(chunks, "close", None)
                if close:
                    close()
        except Exception as exc:  # noqa: BLE001 - every failure is shown in the pane, nothing is lost
            self._drop(user_bubble, answer_bubble)
            self._restore(message)
            self._show_error(exc)
        else:
            stopped = self._stop.is_set()
            answer = Message("assistant", "".join(parts), stopped=stopped)
            self.history += [message, answer]
            answer_bubble.value = self._wrap(self._assistant_html(answer.content, stopped=stopped), "assistant")
            self._set_status("Respuesta detenida." if stopped else "Respuesta completa.")
        finally:
            self._set_busy(False)

    def _restore(self, message: Message) -> None:
        """Put a failed message back in the text area (and its image back as attachment)."""
        if not self.prompt.value.strip():
            self.prompt.value = message.content
        if message.images and self._image is None:
            self.attach_image(message.images[0])

    # --- voice ----------------------------------------------------------------------------------
    def transcribe(self, audio: bytes) -> None:
        """Transcribe a recording with Whisper in the background; the text goes to the text area."""
        self.recorder.disabled = True
        self._set_status("Transcribiendo la grabación con Whisper…")
        self._start(self._transcribe, audio)

    def _transcribe(self, audio: bytes) -> None:
        try:
            from course_utils import speech  # Whisper and torch load only when first needed

            result = speech.transcribe(audio, language="es")
            text = result.text.strip()
            if not text:
                raise AudioError("Whisper no reconoció ninguna palabra en la grabación.",
                                  "Habla más cerca del micrófono y vuelve a grabar, o escribe la pregunta.")
            current = self.prompt.value.rstrip()
            self.prompt.value = f"{current} {text}" if current else text
            self._set_status("Transcripción lista: revísala y pulsa Enviar." + _standin_warning(result))
        except Exception as exc:  # noqa: BLE001 - shown in the pane in Spanish
            self._show_error(exc)
        finally:
            self.recorder.disabled = False

    # --- clear and export ----------------------------------------------------------------------
    def clear(self) -> None:
        """Start a new conversation (the current one can be exported first)."""
        if self._busy:
            self._set_status("Pulsa Parar antes de borrar la conversación.")
            return
        self.history = []
        self._drop(*self.pane.children)
        self.downloads.value = ""
        self._set_status("Conversación borrada.")

    def to_json(self) -> dict:
        return {"model": self.model_picker.value, "temperature": self.temperature.value,
                "system": self.system, "exported": datetime.now().isoformat(timespec="seconds"),
                "messages": [m.to_dict() for m in self.history]}

    def to_markdown(self) -> str:
        lines = [f"# Conversación con {self.model_picker.value}", "",
                 f"Temperatura {self.temperature.value:.1f} · {datetime.now():%Y-%m-%d %H:%M}", ""]
        for message in self.history:
            lines += [f"## {'Tú' if message.role == 'user' else 'Asistente'}", ""]
            lines += [f"![imagen adjunta]({_data_uri(img, 'image/jpeg')})" for img in message.images]
            lines += [message.content + (" *(respuesta detenida)*" if message.stopped else ""), ""]
        return "\n".join(lines)

    def export(self, folder: str | Path | None = None) -> tuple[Path, Path]:
        """Save the conversation as Markdown and JSON (images inside, base64); returns both paths."""
        folder = Path(folder) if folder is not None else self.export_dir
        stem = f"chat-{datetime.now():%Y%m%d-%H%M%S}"
        folder.mkdir(parents=True, exist_ok=True)
        md_path, json_path = folder / f"{stem}.md", folder / f"{stem}.json"
        markdown = self.to_markdown()
        data = json.dumps(self.to_json(), ensure_ascii=False, indent=1)
        md_path.write_text(markdown, encoding="utf-8")
        json_path.write_text(data, encoding="utf-8")
        links = [(md_path.name, markdown, "text/markdown"), (json_path.name, data, "application/json")]
        self.downloads.value = "Descargar: " + " · ".join(
            f'<a download="{name}" href="{_data_uri(text.encode("utf-8"), mime)}">{name}</a>'
            for name, text, mime in links)
        self._set_status(f"Conversación guardada en {md_path} y {json_path.name}.")
        return md_path, json_path
