"""The multimodal chat widget: type, attach an image, dictate with the microphone, read streamed answers.

`ChatWidget()` is an ipywidgets VBox. Answers and transcriptions run in background threads so the
kernel stays free to receive clicks (Parar, Detener) while the model writes.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import re
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
from course_utils.errors import AudioError, Cancelled, CourseError, ExportError, ImageError
from course_utils.images import open_image
from course_utils.recorder import Recorder

HERE = Path(__file__).parent
SYSTEM = ("Eres un asistente de un curso de modelos multimodales. Responde en español, "
          "de forma clara y breve. Si te dan una imagen, descríbela con precisión.")
THUMB_SIDE = 240
REFRESH_SECONDS = 0.05  # at most ~20 updates a second while an answer streams

# Raw HTML in the model's Markdown is shown as text, and nh3 removes anything executable that is left.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])
# Model output never makes the browser fetch anything by itself: no images, no image maps.
_OUTPUT_TAGS = nh3.ALLOWED_TAGS - {"img", "area", "map"}


def _image_as_link(renderer, tokens, idx, options, env) -> str:
    """`![alt](url)` from the model becomes a plain link: a remote image would leak the conversation."""
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env) or "imagen"
    return f'<a href="{html.escape(str(token.attrGet("src") or ""))}">[imagen: {html.escape(alt)}]</a>'


_MARKDOWN.add_render_rule("image", _image_as_link)


def render_markdown(text: str) -> str:
    """Model output (Markdown) as safe HTML: no scripts, no event handlers, no javascript: links, no
    remote images."""
    return nh3.clean(_MARKDOWN.render(text), tags=_OUTPUT_TAGS, url_schemes={"http", "https", "mailto"},
                     set_tag_attribute_values={"a": {"target": "_blank"}})


_RUNNABLE_TAGS = ("script", "iframe", "frame", "object", "embed", "base")
_URL_ATTRIBUTES = ("href", "xlink:href", "src", "action", "formaction", "data", "poster", "background")
_ANIMATED_ATTRIBUTES = ("values", "to", "from", "by")  # SVG <animate>/<set> can write an href
_RUNNABLE_SCHEMES = ("javascript:", "vbscript:", "data:text/html")


def _runs(value: str | None) -> bool:
    # Browsers ignore ASCII whitespace and control characters inside a URL's scheme
    # (HTMLParser has already decoded entities such as &#09;).
    squeezed = re.sub(r"[\x00-\x20]+", "", value or "").lower()
    return any(scheme in squeezed for scheme in _RUNNABLE_SCHEMES)


class _Executable(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _RUNNABLE_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{name}= en <{tag}>")
            elif name in _URL_ATTRIBUTES + _ANIMATED_ATTRIBUTES and _runs(value):
                self.found.append(f"{name}={value}")

    handle_startendtag = handle_starttag


def executable_parts(html_text: str) -> list[str]:
    """What in an HTML fragment a browser could run: script tags, on* handlers, javascript: URLs, also
    when hidden with entities, whitespace or SVG animation."""
    parser = _Executable()
    parser.feed(html_text)
    parser.close()
    return parser.found


@dataclass
class Message:
    role: str  # "user" or "assistant"
    content: str
    images: list[bytes] = field(default_factory=list)  # JPEG bytes
    stopped: bool = False  # the student pressed Parar before the answer ended
    interrupted: str = ""  # why the answer broke off (server error, cut connection), if it did

    def to_dict(self) -> dict:
        data = {"role": self.role, "content": self.content,
                "images": [base64.b64encode(img).decode("ascii") for img in self.images]}
        if self.stopped:
            data["stopped"] = True
        if self.interrupted:
            data["interrupted"] = self.interrupted
        return data

    @property
    def note(self) -> str:
        """How an unfinished answer is marked in the pane and in exports."""
        if self.stopped:
            return "respuesta detenida"
        return "respuesta interrumpida" if self.interrupted else ""


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
    if not note and (raw := config.standin_note(config.whisper_model())):
        note = f"modelo de prueba: {raw}"
    return f" Aviso: {note}" if note else ""


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class _LiveAnswer:
    """Shows an answer in its bubble while it streams.

    Re-rendering the whole answer at every piece costs time that grows with the square of its length.
    Between two renders it waits several times what the last render took, so rendering stays a small,
    fixed share of the streaming time however long the answer grows.
    """

    RENDER_SHARE = 0.2

    def __init__(self, bubble: widgets.HTML, render):
        self.bubble, self._render = bubble, render
        self._parts: list[str] = []
        self._next = 0.0

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def add(self, piece: str) -> None:
        if not piece:
            return
        self._parts.append(piece)
        started = time.monotonic()
        if started < self._next:
            return
        self.bubble.value = self._render(self.text)
        spent = time.monotonic() - started
        self._next = started + max(REFRESH_SECONDS, spent / self.RENDER_SHARE)


class _WaitClock:
    """Until the first word arrives, the status says how long the student has been waiting, and why."""

    def __init__(self, set_status, model: str):
        self._set_status, self._model = set_status, model
        self._started = time.monotonic()
        self._note = "esperando la primera palabra"
        self._lock = threading.Lock()
        self._done = threading.Event()
        threading.Thread(target=self._tick, daemon=True).start()

    def _tick(self) -> None:
        while not self._done.is_set():
            self._show()
            self._done.wait(1.0)

    def _show(self) -> None:
        with self._lock:
            if self._done.is_set():
                return
            waited = time.monotonic() - self._started
            self._set_status(f"{self._model}: {self._note} ({waited:.0f} s). La primera respuesta puede tardar "
                             "un minuto mientras el servidor carga el modelo; puedes pulsar Parar.")

    def server_says(self, note: str) -> None:
        """A message from `llm.stream` while it waits, such as a retry on a busy server."""
        self._note = note
        self._show()

    def first_word(self) -> None:
        if self._done.is_set():
            return
        with self._lock:
            self._done.set()
            self._set_status(f"{self._model} está escribiendo… (Parar la detiene)")

    def stop(self) -> None:
        with self._lock:
            self._done.set()


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
        self.export_button.on_click(lambda _b: self._export_clicked())
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
    def _assistant_html(text: str, note: str = "", writing: bool = False) -> str:
        tail = f'<div class="course-stopped">({note})</div>' if note else ""
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
        wanted = preferred or self.model_picker.value or config.DEFAULTS["COURSE_LLM_MODEL"]
        try:
            wanted = preferred or self.model_picker.value or config.settings().llm_model
        except CourseError as exc:  # a malformed OLLAMA_HOST or COURSE_*: say so, keep the widget usable
            self.model_picker.options = [wanted]
            self._show_error(exc)
            return
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
        self._bubble(self._user_html(message), "user")
        answer_bubble = self._bubble(self._assistant_html("", writing=True), "assistant")
        self._start(self._answer, message, answer_bubble)
        return True

    def stop(self) -> None:
        """Stop the answer at any moment, even before its first word: the request to the server is
        closed, and what arrived so far stays in the conversation."""
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
        # Turns the model never answered are kept for the student but not sent.
        answered = [m for q, a in zip(self.history[::2], self.history[1::2]) if a.content for m in (q, a)]
        # Llama 3.2 Vision takes one image per conversation turn: keep only the most recent one.
        keep = message.images or next((m.images for m in reversed(answered) if m.images), [])
        return [{"role": m.role, "content": m.content, **({"images": m.images} if m.images is keep else {})}
                for m in answered]

    def _answer(self, message: Message, bubble: widgets.HTML) -> None:
        live = _LiveAnswer(bubble, lambda text: self._wrap(self._assistant_html(text, writing=True), "assistant"))
        clock = _WaitClock(self._set_status, self.model_picker.value)
        answer, error = Message("assistant", ""), None
        try:
            for piece in llm.stream(message.content, images=message.images or None, system=self.system,
                                    history=self._history_for_model(message), model=self.model_picker.value,
                                    temperature=self.temperature.value, cancel=self._stop,
                                    on_status=clock.server_says):
                clock.first_word()
                live.add(piece)
        except Cancelled as exc:
            live.add(exc.partial[len(live.text):])
            answer.stopped = True
        except CourseError as exc:
            live.add(getattr(exc, "partial", "")[len(live.text):])
            answer.interrupted, error = exc.message, exc
        except Exception as exc:  # noqa: BLE001 - a bug must not lose the conversation: keep it, show it
            answer.interrupted, error = f"{type(exc).__name__}: {exc}", exc
        finally:
            clock.stop()
            answer.content = live.text
            self.history += [message, answer]
            bubble.value = self._wrap(self._assistant_html(answer.content, answer.note), "assistant")
            self._set_busy(False)
        if error is not None:
            self._restore(message)
            self._show_error(error)
        else:
            self._set_status("Respuesta detenida." if answer.stopped else "Respuesta completa.")

    def _restore(self, message: Message) -> None:
        """Offer a failed question again in the text area, without overwriting what the student has
        typed or attached since (the question also stays in the conversation)."""
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
            lines += [message.content + (f" *({message.note})*" if message.note else ""), ""]
        return "\n".join(lines)

    def export(self, folder: str | Path | None = None) -> tuple[Path, Path]:
        """Save the conversation as Markdown and JSON (images inside, base64); returns both paths.
        An earlier export is never overwritten."""
        folder = Path(folder) if folder is not None else self.export_dir
        markdown = self.to_markdown()
        data = json.dumps(self.to_json(), ensure_ascii=False, indent=1)
        md_path, json_path = _write_new(folder, f"chat-{datetime.now():%Y%m%d-%H%M%S}", markdown, data)
        links = [(md_path.name, markdown, "text/markdown"), (json_path.name, data, "application/json")]
        self.downloads.value = "Descargar: " + " · ".join(
            f'<a download="{name}" href="{_data_uri(text.encode("utf-8"), mime)}">{name}</a>'
            for name, text, mime in links)
        self._set_status(f"Conversación guardada en {md_path} y {json_path.name}.")
        return md_path, json_path

    def _export_clicked(self) -> None:
        try:
            self.export()
        except CourseError as exc:
            self._show_error(exc)


def _write_new(folder: Path, stem: str, markdown: str, data: str) -> tuple[Path, Path]:
    """Write `stem.md` and `stem.json` in `folder`, adding -2, -3… to the stem if those names exist."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for n in itertools.count(1):
            name = stem if n == 1 else f"{stem}-{n}"
            md_path, json_path = folder / f"{name}.md", folder / f"{name}.json"
            try:
                with open(md_path, "x", encoding="utf-8") as md_file:
                    md_file.write(markdown)
            except FileExistsError:
                continue
            with open(json_path, "x", encoding="utf-8") as json_file:  # "x": never overwrite
                json_file.write(data)
            return md_path, json_path
    except (FileExistsError, NotADirectoryError) as exc:
        raise ExportError(f"No se pudo guardar la conversación: «{exc.filename}» no es una carpeta.",
                          "Elige una carpeta que exista (o un nombre nuevo) para exportar.") from exc
    except PermissionError as exc:
        raise ExportError(f"No se pudo guardar la conversación: no tienes permiso para escribir en «{folder}».",
                          "Elige una carpeta tuya, por ejemplo dentro de tu directorio personal.") from exc
    except OSError as exc:
        raise ExportError(f"No se pudo guardar la conversación en «{folder}» ({exc.strerror or exc}).",
                          "Comprueba que queda espacio y que la carpeta es accesible, y vuelve a exportar.") from exc
