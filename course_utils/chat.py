"""The multimodal chat widget: type, attach an image, dictate with the microphone, read streamed answers.

`ChatWidget()` is an ipywidgets VBox that shows a `Conversation`. Answers and transcriptions run in
background threads so the kernel stays free to receive clicks (Parar, Detener) while the model writes.
"""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path

import anywidget
import ipywidgets as widgets

from course_utils import config, llm
from course_utils.conversation import SYSTEM, Conversation, Message, data_uri
from course_utils.dictation import dictate
from course_utils.errors import CourseError, ImageError
from course_utils.images import open_image
from course_utils.prompt_box import PromptBox
from course_utils.recorder import Recorder
from course_utils.safe_html import MarkdownBlocks, executable_parts, render_markdown

__all__ = ["ChatWidget", "Conversation", "Message", "SYSTEM", "executable_parts", "render_markdown"]

HERE = Path(__file__).parent
THUMB_SIDE = 240
REFRESH_SECONDS = 0.05  # at most ~20 updates a second while an answer streams


class _ChatStyle(anywidget.AnyWidget):
    """Carries the chat's stylesheet and its page behaviour (copy, read aloud, message actions, Esc and ↑)
    into the page; it shows nothing. Its messages to Python are handled by `ChatWidget`."""

    _esm = HERE / "chat_actions.js"
    _css = HERE / "chat.css"


# --- the HTML of the bubbles ---------------------------------------------------------------------


def _wrap(inner: str, kind: str) -> str:
    return f'<div class="course-bubble course-{kind}">{inner}</div>'


def _user_html(message: Message) -> str:
    uris = [data_uri(llm.prepare_image(img, THUMB_SIDE), "image/jpeg") for img in message.images]
    thumbs = "".join(f'<img class="course-thumb" alt="imagen adjunta" src="{uri}">' for uri in uris)
    text = html.escape(message.content).replace("\n", "<br>")
    return _wrap(f'<div class="course-bubble-who">Tú</div>{thumbs}{text}', "user")


def _assistant_html(body: str, note: str = "", writing: bool = False) -> str:
    """An answer's bubble around `body`, its HTML already made safe by `safe_html`."""
    tail = f'<div class="course-stopped">({note})</div>' if note else ""
    body = body or ("<p>…</p>" if writing else "")
    return _wrap(f'<div class="course-bubble-who">Asistente</div>{body}{tail}', "assistant")


def _error_html(exc: Exception) -> str:
    if isinstance(exc, CourseError):
        text = html.escape(exc.message) + (f"<br>→ {html.escape(exc.hint)}" if exc.hint else "")
    else:
        text = html.escape(f"Error inesperado ({type(exc).__name__}): {exc}")
    return _wrap(text, "error")


def _download_links(paths: tuple[Path, Path]) -> str:
    links = [(path, "text/markdown" if path.suffix == ".md" else "application/json") for path in paths]
    return "Descargar: " + " · ".join(
        f'<a download="{path.name}" href="{data_uri(path.read_bytes(), mime)}">{path.name}</a>' for path, mime in links
    )


class _LiveAnswer:
    """Shows an answer in its bubble while it streams.

    Re-rendering the whole answer at every piece would cost time growing with the square of its length:
    finished Markdown blocks are rendered once (`MarkdownBlocks`), and between two renders it waits
    several times what the last one took, so rendering stays a small share of the streaming time.
    """

    RENDER_SHARE = 0.2

    def __init__(self, bubble: widgets.HTML):
        self.bubble = bubble
        self._parts: list[str] = []
        self._blocks = MarkdownBlocks()
        self._next = 0.0

    def add(self, piece: str) -> None:
        self._parts.append(piece)
        started = time.monotonic()
        if started < self._next:
            return
        self.bubble.value = _assistant_html(self._blocks.render("".join(self._parts)), writing=True)
        spent = time.monotonic() - started
        self._next = started + max(REFRESH_SECONDS, spent / self.RENDER_SHARE)

    def finish(self, answer: Message) -> None:
        note = answer.note or ("" if answer.content.strip() else "el modelo no escribió nada")
        self.bubble.value = _assistant_html(self._blocks.render(answer.content), note)


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
            self._set_status(
                f"{self._model}: {self._note} ({waited:.0f} s). La primera respuesta puede tardar "
                "un minuto mientras el servidor carga el modelo; puedes pulsar Parar."
            )

    def server_says(self, note: str) -> None:
        """A message from `llm.stream` while it waits, such as a retry on a busy server."""
        self._note = note
        self._show()

    def first_word(self, _piece: str = "") -> None:
        if self._done.is_set():
            return
        with self._lock:
            self._done.set()
            self._set_status(f"{self._model} está escribiendo… (Parar la detiene)")

    def stop(self) -> None:
        with self._lock:
            self._done.set()


class _ChatLayout(widgets.VBox):
    """The chat's controls and their places on the page; `ChatWidget` gives them their behaviour."""

    def __init__(self, temperature: float):
        self.model_picker = widgets.Dropdown(description="Modelo", layout=widgets.Layout(width="300px"))
        self.refresh_button = widgets.Button(
            icon="refresh", tooltip="Volver a leer los modelos del servidor", layout=widgets.Layout(width="36px")
        )
        self.temperature = widgets.FloatSlider(
            value=temperature,
            min=0.0,
            max=2.0,
            step=0.1,
            description="Temperatura",
            readout_format=".1f",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="320px"),
        )
        header = widgets.HBox([self.model_picker, self.refresh_button, self.temperature])
        header.add_class("course-chat-header")

        self.pane = widgets.VBox(layout=widgets.Layout(width="100%"))
        self.pane.add_class("course-chat-pane")

        self.preview = widgets.Image(format="jpeg", layout=widgets.Layout(max_height="90px", width="auto"))
        self.remove_button = widgets.Button(description="Quitar imagen", icon="times")
        self._attachment = widgets.HBox(
            [self.preview, self.remove_button], layout=widgets.Layout(display="none", align_items="center")
        )
        self._attachment.add_class("course-chat-attachment")

        self.prompt = PromptBox(
            placeholder="Escribe tu pregunta… (Enter envía, Mayús+Enter: nueva línea)",
            layout=widgets.Layout(flex="1 1 auto"),
        )
        self.send_button = widgets.Button(description="Enviar", icon="paper-plane", button_style="primary")
        self.stop_button = widgets.Button(
            description="Parar", icon="stop", disabled=True, tooltip="Detener la respuesta que se está escribiendo"
        )
        entry = widgets.HBox([self.prompt, widgets.VBox([self.send_button, self.stop_button])])
        entry.add_class("course-chat-input")

        self.upload = widgets.FileUpload(
            accept="image/*", multiple=False, description="Adjuntar imagen", layout=widgets.Layout(width="auto")
        )
        self.recorder = Recorder()
        self.clear_button = widgets.Button(
            description="Borrar conversación", icon="trash", layout=widgets.Layout(width="auto")
        )
        self.export_button = widgets.Button(
            description="Exportar",
            icon="download",
            tooltip="Guardar la conversación en Markdown y JSON",
            layout=widgets.Layout(width="auto"),
        )
        spacer = widgets.Box(layout=widgets.Layout(flex="1 1 auto"))
        tools = widgets.HBox([self.upload, self.recorder, spacer, self.clear_button, self.export_button])
        tools.add_class("course-chat-tools")
        self.status = widgets.HTML()
        self.status.add_class("course-chat-status")
        self.downloads = widgets.HTML()
        super().__init__([_ChatStyle(), header, self.pane, self._attachment, entry, tools, self.status, self.downloads])
        self.add_class("course-chat")


class ChatWidget(_ChatLayout):
    """Chat with a vision model on Ollama: text, one image per message, voice, streamed answers."""

    def __init__(
        self,
        model: str | None = None,
        temperature: float = 0.7,
        system: str | None = SYSTEM,
        export_dir: str | Path = "conversaciones",
    ):
        super().__init__(temperature)
        self.conversation = Conversation(model, temperature, system)
        self.export_dir = Path(export_dir)
        self._image: bytes | None = None
        self._busy = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connect()
        self.refresh_models(model)

    def _connect(self) -> None:
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
        self.prompt.on_image(self.attach_image, self._show_error)  # pasted or dropped onto the chat

    @property
    def history(self) -> list[Message]:
        return self.conversation.history

    # --- showing things ----------------------------------------------------------------------------
    def _set_status(self, text: str) -> None:
        self.status.value = html.escape(text)

    def _bubble(self, value: str) -> widgets.HTML:
        bubble = widgets.HTML(value, layout=widgets.Layout(width="100%"))
        self.pane.children = (*self.pane.children, bubble)
        return bubble

    def _show_error(self, exc: Exception) -> None:
        self._bubble(_error_html(exc))
        self._set_status("Algo falló: lee el mensaje en rojo. Tu texto y la conversación se conservan.")

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.send_button.disabled = busy
        self.stop_button.disabled = not busy
        self.clear_button.disabled = busy

    # --- models and image ----------------------------------------------------------------------------
    def refresh_models(self, preferred: str | None = None) -> None:
        """Fill the model picker with the models pulled on the Ollama server."""
        wanted = preferred or self.model_picker.value or config.llm_model()
        server = llm.check_server(wanted)
        options = list(server.models) or [wanted]
        tagged = llm.full_tag(wanted)
        self.model_picker.options = options
        self.model_picker.value = tagged if tagged in options else wanted if wanted in options else options[0]
        if server.error is not None:
            self._show_error(server.error)
        else:
            self._set_status(
                f"Conectado a {server.host} (Ollama {server.version}). {len(options)} modelo(s) disponibles."
            )

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

    # --- sending, streaming, stopping ----------------------------------------------------------------
    def send(self, text: str | None = None) -> bool:
        """Send the text area's text (and the attached image). Ignored while an answer streams."""
        if self._busy:
            self._set_status("Espera a que termine la respuesta (o pulsa Parar).")
            return False
        text = (self.prompt.value if text is None else text).strip()
        if not text and self._image is None:
            self._set_status("Escribe una pregunta o adjunta una imagen antes de enviar.")
            return False
        question = Message("user", text or "Describe esta imagen.", [self._image] if self._image else [])
        self._set_busy(True)
        self._stop.clear()
        self.prompt.value = ""
        self.remove_image()
        self._bubble(_user_html(question))
        self._start(self._answer, question, self._bubble(_assistant_html("", writing=True)))
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

    def _sync(self) -> None:
        self.conversation.model = self.model_picker.value
        self.conversation.temperature = self.temperature.value

    def _answer(self, question: Message, bubble: widgets.HTML) -> None:
        self._sync()
        live, clock = _LiveAnswer(bubble), _WaitClock(self._set_status, self.model_picker.value)
        error = None
        try:
            self.conversation.answer(
                question,
                on_piece=lambda piece: (clock.first_word(), live.add(piece)),
                on_status=clock.server_says,
                cancel=self._stop,
            )
        except Exception as exc:  # noqa: BLE001 - shown in the pane; the conversation keeps the turn
            error = exc
        finally:
            clock.stop()
            answer = self.history[-1]
            live.finish(answer)
            self._set_busy(False)
        if error is not None:
            self._restore(question)
            self._show_error(error)
        elif answer.stopped:
            self._set_status("Respuesta detenida.")
        elif not answer.content.strip():
            self._set_status("El modelo respondió sin texto: vuelve a enviar la pregunta o reformúlala.")
        else:
            self._set_status("Respuesta completa.")

    def _restore(self, question: Message) -> None:
        """Offer a failed question again in the text area, without overwriting what the student has
        typed or attached since (the question also stays in the conversation)."""
        if not self.prompt.value.strip():
            self.prompt.value = question.content
        if question.images and self._image is None:
            self.attach_image(question.images[0])

    # --- voice ---------------------------------------------------------------------------------------
    def transcribe(self, audio: bytes) -> None:
        """Transcribe a recording with Whisper in the background; the text goes to the text area."""
        self.recorder.disabled = True
        self._set_status("Transcribiendo la grabación con Whisper…")
        self._start(self._transcribe, audio)

    def _transcribe(self, audio: bytes) -> None:
        try:
            text, warning = dictate(audio, self.recorder.language)
            current = self.prompt.value.rstrip()
            self.prompt.value = f"{current} {text}" if current else text
            self._set_status("Transcripción lista: revísala y pulsa Enviar." + warning)
        except Exception as exc:  # noqa: BLE001 - a background thread: any failure is shown in the pane
            self._show_error(exc)
        finally:
            self.recorder.disabled = False

    # --- clear and export ----------------------------------------------------------------------------
    def clear(self) -> None:
        """Start a new conversation (the current one can be exported first)."""
        if self._busy:
            self._set_status("Pulsa Parar antes de borrar la conversación.")
            return
        self.conversation.clear()
        bubbles, self.pane.children = self.pane.children, ()
        for bubble in bubbles:
            bubble.close()
        self.downloads.value = ""
        self._set_status("Conversación borrada.")

    def to_json(self) -> dict:
        self._sync()
        return self.conversation.to_json()

    def to_markdown(self) -> str:
        self._sync()
        return self.conversation.to_markdown()

    def export(self, folder: str | Path | None = None) -> tuple[Path, Path]:
        """Save the conversation as Markdown and JSON (images inside, base64); returns both paths.
        An earlier export is never overwritten."""
        self._sync()
        paths = self.conversation.export(self.export_dir if folder is None else folder)
        self.downloads.value = _download_links(paths)
        self._set_status(f"Conversación guardada en {paths[0]} y {paths[1].name}.")
        return paths

    def _export_clicked(self) -> None:
        try:
            self.export()
        except CourseError as exc:
            self._show_error(exc)
