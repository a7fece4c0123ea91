"""The multimodal chat widget: type, attach an image, dictate with the microphone, read streamed answers.

`ChatWidget()` is an ipywidgets VBox that shows a `Conversation`. Answers and transcriptions run in
background threads so the kernel stays free to receive clicks (Parar, Detener) while the model writes.
Each message has its actions (copy, read aloud; regenerate and edit on the last turn), each answer its
statistics; the conversation is saved after every turn and can be restored after a restart.
"""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path

import anywidget
import ipywidgets as widgets

from course_utils import chat_bubbles as bubbles
from course_utils import chat_store, config, llm, vision_models
from course_utils.conversation import SYSTEM, Conversation, Message, data_uri
from course_utils.dictation import dictate
from course_utils.errors import CourseError, ImageError, NoVision
from course_utils.images import open_image
from course_utils.prompt_box import PromptBox
from course_utils.recorder import Recorder
from course_utils.safe_html import STYLESHEET, MarkdownBlocks, executable_parts, render_markdown

__all__ = ["ChatWidget", "Conversation", "Message", "SYSTEM", "executable_parts", "render_markdown"]

HERE = Path(__file__).parent
THUMB_SIDE = bubbles.THUMB_SIDE
REFRESH_SECONDS = 0.05  # at most ~20 updates a second while an answer streams


class _ChatStyle(anywidget.AnyWidget):
    """Carries the chat's stylesheet and its page behaviour (copy, read aloud, message actions, Esc and ↑)
    into the page; it shows nothing. Its messages to Python are handled by `ChatWidget`."""

    _esm = HERE / "chat_actions.js"
    _css = "\n".join(path.read_text(encoding="utf-8") for path in (HERE / "chat.css", STYLESHEET))


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
        self.bubble.value = bubbles.assistant_html(self._blocks.render("".join(self._parts)))
        spent = time.monotonic() - started
        self._next = started + max(REFRESH_SECONDS, spent / self.RENDER_SHARE)

    def finish(self, answer: Message) -> str:
        """The finished answer's HTML body (the widget shows it with the answer's notes and actions)."""
        return self._blocks.render(answer.content)


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

        self.preview = widgets.HTML()  # an <img> with its text alternative (ipywidgets' Image can carry none)
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
            accept="image/*",
            multiple=False,
            description="Adjuntar imagen",
            tooltip="Adjuntar una imagen (jpg, png, webp…) a la próxima pregunta",
            layout=widgets.Layout(width="auto"),
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
        self.saved_picker = widgets.Dropdown(
            description="Recuperar",
            options=[("(conversaciones guardadas)", "")],
            layout=widgets.Layout(width="520px"),
        )
        self.open_button = widgets.Button(
            description="Abrir",
            icon="folder-open",
            tooltip="Abrir la conversación guardada elegida y seguirla",
            layout=widgets.Layout(width="auto"),
        )
        saved = widgets.HBox([self.saved_picker, self.open_button])
        saved.add_class("course-chat-saved")
        self.status = widgets.HTML()
        self.status.add_class("course-chat-status")
        self.downloads = widgets.HTML()
        self.page = _ChatStyle()
        super().__init__(
            [self.page, header, self.pane, self._attachment, entry, tools, saved, self.status, self.downloads]
        )
        self.add_class("course-chat")


class ChatWidget(_ChatLayout):
    """Chat with a vision model on Ollama: text, one image per message, voice, streamed answers.

    `restore=` opens a saved conversation (a .json of `export_dir`, where every turn is saved) to go on
    with it, for example after restarting the kernel.
    """

    def __init__(
        self,
        model: str | None = None,
        temperature: float = 0.7,
        system: str | None = SYSTEM,
        export_dir: str | Path = "conversaciones",
        *,
        restore: str | Path | None = None,
        autosave: bool = True,
    ):
        super().__init__(temperature)
        self.conversation = Conversation(model, temperature, system)
        self.export_dir = Path(export_dir)
        self.store = chat_store.ChatStore(self.export_dir) if autosave else None
        self._image: bytes | None = None
        self._server_version: str | None = None  # the Ollama version found by the last refresh_models()
        self._busy = False
        self._editing = False  # the last question is back in the text area: sending it replaces that turn
        self._saved_in: Path | None = None  # where the conversation as shown is saved; None: nowhere yet
        self._unsaved = False  # the conversation changed since it was last saved (autosave or export)
        self._armed: object = None  # Borrar or Abrir pressed once on an unsaved conversation: a second press goes on
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._shown: dict[int, tuple[Message, widgets.HTML, str]] = {}  # id(message) → message, bubble, body
        self._last_error: tuple[tuple[str, str], widgets.HTML] | None = None  # the last error shown, its bubble
        self._connect()
        self.refresh_models(model)
        self.refresh_saved()
        if restore is not None:
            self.restore(restore)

    def _connect(self) -> None:
        self.prompt.on_submit(lambda _text: self.send())
        self.send_button.on_click(lambda _b: self.send())
        self.stop_button.on_click(lambda _b: self.stop())
        self.clear_button.on_click(lambda _b: self.clear())
        self.export_button.on_click(lambda _b: self._export_clicked())
        self.refresh_button.on_click(lambda _b: (self.refresh_models(), self.refresh_saved()))
        self.remove_button.on_click(lambda _b: self.remove_image())
        self.open_button.on_click(lambda _b: self._open_clicked())
        self.upload.observe(self._on_upload, "value")
        self.recorder.on_audio(lambda data, _mime: self.transcribe(data))
        self.recorder.on_error(self._show_error)
        self.prompt.on_image(self.attach_image, self._show_error)  # pasted or dropped onto the chat
        self.page.on_msg(self._on_page_message)

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
        """Show `exc` in red at the end of the pane; the same error shown just before moves there instead of
        appearing twice (the chat checks the server when it opens, and a send without one fails the same)."""
        key = (type(exc).__name__, str(exc))
        if self._last_error is not None and self._last_error[0] == key:
            self._remove_bubble(self._last_error[1])
        self._last_error = (key, self._bubble(bubbles.error_html(exc)))
        self._set_status("Algo falló: lee el mensaje en rojo. Tu texto y la conversación se conservan.")

    def _remove_bubble(self, bubble: widgets.HTML) -> None:
        self.pane.children = tuple(child for child in self.pane.children if child is not bubble)
        bubble.close()

    def _show(self, message: Message, bubble: widgets.HTML | None = None, body: str | None = None) -> None:
        """Show `message` (in a new bubble, or in `bubble`) and remember where, to update it later."""
        if body is None and message.role == "assistant":
            body = render_markdown(message.content)
        bubble = bubble or self._bubble("")
        self._shown[id(message)] = (message, bubble, body or "")
        self._render(message, active=False)

    def _render(self, message: Message, active: bool) -> None:
        """Draw `message` again; `active`: the chat takes actions now, so its last turn offers them."""
        if id(message) not in self._shown:
            return
        _, bubble, body = self._shown[id(message)]
        index = next((i for i, m in enumerate(self.history) if m is message), None)
        last = active and index is not None and index >= len(self.history) - 2 and not message.replaced
        if message.role == "user":
            bubble.value = bubbles.user_html(message, index, last)
        else:
            bubble.value = bubbles.assistant_html(body, message, index, last)

    def _render_last_turn(self, active: bool) -> None:
        for message in self.history[-2:]:
            self._render(message, active)

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.send_button.disabled = busy
        self.stop_button.disabled = not busy
        self.clear_button.disabled = busy
        self.open_button.disabled = busy

    def _on_page_message(self, _widget, content, _buffers) -> None:
        """Clicks on the bubbles' buttons and keys pressed in the chat (chat_actions.js)."""
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "stop":  # Esc
            if self._busy:
                self.stop()
            else:
                self._cancel_edit()
        elif kind == "edit_last":  # ↑ in the empty text area
            self.edit_last()
        elif kind == "action" and content.get("action") == "regenerate":
            self.regenerate()
        elif kind == "action" and content.get("action") == "edit":
            self.edit_last()

    # --- models and image ----------------------------------------------------------------------------
    def refresh_models(self, preferred: str | None = None) -> None:
        """Fill the model picker with the models pulled on the Ollama server."""
        wanted = preferred or self.model_picker.value or config.llm_model()
        server = llm.check_server(wanted)
        self._server_version = server.version
        names = list(server.models) or [wanted]
        tagged = llm.full_tag(wanted)
        self.model_picker.options = [(self._model_label(name, server.reachable), name) for name in names]
        self.model_picker.value = tagged if tagged in names else wanted if wanted in names else names[0]
        if server.error is not None:
            self._show_error(server.error)
        else:
            self._set_status(
                f"Conectado a {server.host} (Ollama {server.version}). {len(names)} modelo(s) disponibles."
            )

    def _model_label(self, name: str, reachable: bool) -> str:
        """The model's name in the picker, marked when it cannot see images or this server cannot load it."""
        if not reachable:
            return name
        profile = llm.model_profile(name)
        if not vision_models.runs_on(profile, self._server_version):
            return f"{name} (no funciona en este Ollama)"
        return name if profile.vision else f"{name} (sin visión)"

    def _refusal(self) -> CourseError | None:
        """Why the chosen model cannot take this question, before anything is sent (what is typed stays)."""
        model = self.model_picker.value
        profile = llm.model_profile(model)
        if not vision_models.runs_on(profile, self._server_version):
            return llm.not_supported(model, profile, self._server_version)
        if self._image is not None and not profile.vision:
            return NoVision(
                f"El modelo «{model}» no ve imágenes (solo texto).",
                "Elige en «Modelo» uno sin la marca «sin visión», o quita la imagen para preguntar solo con texto.",
            )
        return None

    def attach_image(self, source) -> None:
        """Attach an image (path, bytes, PIL image or array) to the next message."""
        img = open_image(source)
        self._image = llm.prepare_image(img)
        uri = data_uri(llm.prepare_image(img, THUMB_SIDE), "image/jpeg")
        self.preview.value = (
            f'<img class="course-attachment-thumb" alt="Imagen adjunta ({img.width}×{img.height})" src="{uri}">'
        )
        self._attachment.layout.display = "flex"
        self._set_status(f"Imagen adjunta ({img.width}×{img.height}). Escribe tu pregunta sobre ella.")

    def remove_image(self) -> None:
        self._image = None
        self.preview.value = ""
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
        """Send the text area's text (and the attached image). Ignored while an answer streams.
        After `edit_last`, the question replaces the last turn (which stays in the history, marked)."""
        if self._busy:
            self._set_status("Espera a que termine la respuesta (o pulsa Parar).")
            return False
        text = (self.prompt.value if text is None else text).strip()
        if not text and self._image is None:
            self._set_status("Escribe una pregunta o adjunta una imagen antes de enviar.")
            return False
        if refusal := self._refusal():
            self._show_error(refusal)
            return False
        question = Message("user", text or "Describe esta imagen.", [self._image] if self._image else [])
        if self._editing and self.conversation.last_turn():
            self._replace_last_turn()
        self.prompt.value = ""
        self.remove_image()
        self._ask(question)
        return True

    def regenerate(self) -> bool:
        """Ask the last question again; the earlier answer stays in the history, marked as replaced."""
        if self._busy:
            self._set_status("Espera a que termine la respuesta (o pulsa Parar) para regenerarla.")
            return False
        if self.conversation.last_turn() is None:
            self._set_status("Aún no hay ninguna respuesta que regenerar.")
            return False
        question = self._replace_last_turn()
        self._ask(Message("user", question.content, list(question.images)))
        return True

    def edit_last(self) -> bool:
        """Put the last question (and its image) back in the text area; sending it replaces that turn,
        which stays in the history marked as replaced. What the student has typed is never overwritten."""
        turn = self.conversation.last_turn()
        if self._busy or turn is None:
            self._set_status(
                "Espera a que termine la respuesta (o pulsa Parar) para editar la pregunta."
                if self._busy
                else "Aún no hay ninguna pregunta que editar."
            )
            return False
        question = turn[0]
        typed = self.prompt.value.strip()
        if typed and typed != question.content:
            self._set_status(
                "Para editar tu última pregunta, vacía antes el cuadro de texto (no se borra lo que escribes)."
            )
            return False
        self.prompt.value = question.content
        if question.images and self._image is None:
            self.attach_image(question.images[0])
        self._editing = True
        self._set_status(
            "Editando tu última pregunta: cámbiala y pulsa Enter. La respuesta anterior se conserva, "
            "marcada como sustituida. Esc cancela la edición."
        )
        return True

    def _cancel_edit(self) -> None:
        if self._editing:
            self._editing = False
            self._set_status("Edición cancelada: si envías el texto, será una pregunta nueva.")

    def _replace_last_turn(self) -> Message:
        self._editing = False
        question = self.conversation.replace_last()
        self._render_last_turn(active=False)
        return question

    def _ask(self, question: Message) -> None:
        self._unsaved, self._armed = True, None
        self._set_busy(True)
        self._stop.clear()
        self._render_last_turn(active=False)  # the previous turn is no longer the last one
        self._show(question)
        self._start(self._answer, question, self._bubble(bubbles.assistant_html("")))

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
            self._finish(question, bubble, live, error)

    def _finish(self, question: Message, bubble: widgets.HTML, live: _LiveAnswer, error: Exception | None) -> None:
        """Show how the answer ended and save the turn, all before the chat takes the next action (↑, Esc,
        Enviar), so that nothing it does is overwritten by the end of this answer."""
        try:
            answer = self.history[-1]
            if error is not None and not answer.content:  # nothing arrived: the red message says why, alone
                self._remove_bubble(bubble)
            else:
                self._show(answer, bubble, live.finish(answer))
            self._render_last_turn(active=True)
            if error is not None:
                self._restore_question(question)
                self._show_error(error)
            elif answer.stopped:
                self._set_status("Respuesta detenida.")
            elif not answer.content.strip():
                self._set_status("El modelo respondió sin texto: vuelve a enviar la pregunta o reformúlala.")
            else:
                self._set_status("Respuesta completa.")
            self._autosave()
        finally:
            self._set_busy(False)

    def _restore_question(self, question: Message) -> None:
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
            language = self.recorder.language
            text, warning = dictate(audio, language)
            current = self.prompt.value.rstrip()
            self.prompt.value = f"{current} {text}" if current else text
            limit = " La grabación llegó al máximo y se detuvo sola." if self.recorder.stopped_at_limit else ""
            spoken = dict(self.recorder.languages).get(language, language)
            self._set_status(f"Transcripción lista ({spoken}): revísala y pulsa Enviar.{limit}{warning}")
        except Exception as exc:  # noqa: BLE001 - a background thread: any failure is shown in the pane
            self._show_error(exc)
        finally:
            self.recorder.disabled = False

    # --- saving, restoring, clearing, exporting --------------------------------------------------------
    def _autosave(self) -> None:
        if self.store is None or not self.history:
            return
        try:
            self._sync()
            self._saved_in = self.store.save(self.conversation)
        except CourseError as exc:
            self._show_error(exc)
            return
        self._unsaved = False
        self.refresh_saved()

    def refresh_saved(self) -> None:
        """List the conversations saved in `export_dir` in the «Recuperar» picker, newest first."""
        found = chat_store.saved(self.export_dir)
        self.saved_picker.options = [("(conversaciones guardadas)", "")] + [(s.label, str(s.path)) for s in found]

    def _open_clicked(self) -> None:
        if not self.saved_picker.value:
            self._set_status("Elige en «Recuperar» la conversación que quieres abrir.")
            return
        self.restore(self.saved_picker.value)

    def restore(self, path: str | Path) -> bool:
        """Show the conversation saved in `path` and go on with it (the current one is already saved)."""
        if self._busy:
            self._set_status("Pulsa Parar antes de abrir otra conversación.")
            return False
        if self._keeps_unsaved(("open", str(path)), "vuelve a pulsar Abrir para abrir la otra y descartar esta"):
            return False
        try:
            conversation, autosaved = chat_store.load(path)
        except CourseError as exc:
            self._show_error(exc)
            return False
        self._unsaved, self._saved_in = False, Path(path)
        self._clear_pane()
        self.conversation = conversation
        if conversation.model in [value for _label, value in self.model_picker.options]:
            self.model_picker.value = conversation.model
        self.temperature.value = conversation.temperature
        if self.store is not None:  # an autosave goes on in its file; an export is never overwritten
            if autosaved:
                self.store.continue_in(path)
            else:
                self.store.start_new()
        for message in conversation.history:
            if message.role == "assistant" and not message.content:
                continue  # an answer where nothing arrived: live, only its red message showed
            self._show(message)
        self._render_last_turn(active=True)
        self._set_status(
            f"Conversación recuperada de {Path(path).name} ({len(self.history)} mensajes): puedes seguirla."
        )
        return True

    def _clear_pane(self) -> None:
        self._editing = False
        self._shown = {}
        self._last_error = None
        bubbles_, self.pane.children = self.pane.children, ()
        for bubble in bubbles_:
            bubble.close()
        self.downloads.value = ""

    def clear(self) -> None:
        """Start a new conversation (the current one stays saved in `export_dir`)."""
        if self._busy:
            self._set_status("Pulsa Parar antes de borrar la conversación.")
            return
        if self._keeps_unsaved("clear", "vuelve a pulsar Borrar para descartarla"):
            return
        discarded = self._unsaved and bool(self.history)
        self.conversation.clear()
        if self.store is not None:
            self.store.start_new()
        self._clear_pane()
        if discarded:
            self._set_status("Conversación borrada sin guardar.")
        elif self._saved_in is not None and self.store is not None and self._saved_in.parent == self.store.folder:
            self._set_status("Conversación borrada (la anterior sigue guardada: puedes recuperarla).")
        elif self._saved_in is not None:
            self._set_status(f"Conversación borrada (la anterior está guardada en {self._saved_in.name}).")
        else:
            self._set_status("Conversación borrada.")
        self._unsaved, self._saved_in = False, None

    def _keeps_unsaved(self, action, second_press: str) -> bool:
        """True (and the status says why) when `action` would discard a conversation that is saved nowhere,
        unless it is the second press of the same action in a row."""
        if not (self._unsaved and self.history) or self._armed == action:
            self._armed = None
            return False
        self._armed = action
        self._set_status(
            "La conversación actual no está guardada (el guardado automático falló o está desactivado): "
            f"pulsa Exportar para guardarla en otra carpeta, o {second_press}."
        )
        return True

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
        if not self._busy:  # while an answer streams, the export holds only part of it
            self._unsaved, self._saved_in = False, paths[0]
        self.downloads.value = bubbles.download_links(paths)
        self._set_status(f"Conversación guardada en {paths[0]} y {paths[1].name}.")
        self.refresh_saved()
        return paths

    def _export_clicked(self) -> None:
        try:
            self.export()
        except CourseError as exc:
            self._show_error(exc)
