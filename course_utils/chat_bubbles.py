"""The HTML of the chat's bubbles: a message, its actions (copy, read aloud, regenerate, edit), its
statistics and notes. The answer's own HTML comes already made safe by `safe_html`; everything else
here is escaped. The buttons work through the page handler in chat_actions.js.
"""

from __future__ import annotations

import html
from pathlib import Path

from course_utils import llm
from course_utils.conversation import Message, data_uri
from course_utils.errors import CourseError

THUMB_SIDE = 240


def _wrap(inner: str, kind: str, extra: str = "") -> str:
    return f'<div class="course-bubble course-{kind}{extra} course-copy-scope">{inner}</div>'


def _button(label: str, aria: str, css: str, attrs: str = "") -> str:
    return f'<button type="button" class="{css}" aria-label="{html.escape(aria)}"{attrs}>{label}</button>'


def _actions(message: Message, index: int | None, last: bool) -> str:
    """The row of buttons under a finished message; regenerate and edit only on the last turn."""
    raw = f' data-copy="{html.escape(message.content, quote=True)}"'
    if message.role == "user":
        buttons = [_button("Copiar", "Copiar tu pregunta", "course-copy", raw)]
        if last:
            buttons.append(
                _button(
                    "Editar",
                    "Editar tu última pregunta",
                    "course-edit",
                    f' data-action="edit" data-index="{index}"',
                )
            )
    else:
        buttons = [
            _button("Copiar", "Copiar la respuesta (Markdown)", "course-copy", raw),
            _button("Leer", "Leer la respuesta en voz alta", "course-speak", ' aria-pressed="false"'),
        ]
        if last:
            buttons.append(
                _button(
                    "Regenerar",
                    "Regenerar la última respuesta",
                    "course-regenerate",
                    f' data-action="regenerate" data-index="{index}"',
                )
            )
    return f'<div class="course-actions" role="group" aria-label="Acciones del mensaje">{"".join(buttons)}</div>'


def _tail(message: Message) -> str:
    parts = []
    if message.note:
        parts.append(f'<div class="course-stopped">({html.escape(message.note)})</div>')
    if message.stats is not None and message.stats.summary():
        parts.append(f'<div class="course-stats">{html.escape(message.stats.summary())}</div>')
    return "".join(parts)


def user_html(message: Message, index: int | None = None, last: bool = False) -> str:
    uris = [data_uri(llm.prepare_image(img, THUMB_SIDE), "image/jpeg") for img in message.images]
    thumbs = "".join(f'<img class="course-thumb" alt="imagen adjunta" src="{uri}">' for uri in uris)
    text = html.escape(message.content).replace("\n", "<br>")
    inner = f'<div class="course-bubble-who">Tú</div>{thumbs}<div class="course-body">{text}</div>'
    extra = " course-replaced" if message.replaced else ""
    return _wrap(inner + _tail(message) + _actions(message, index, last), "user", extra)


def assistant_html(body: str, message: Message | None = None, index: int | None = None, last: bool = False) -> str:
    """An answer's bubble around `body` (its HTML already made safe by `safe_html`): while it is being
    written (no `message` yet) without actions, once finished with its notes, statistics and actions."""
    who = '<div class="course-bubble-who">Asistente</div>'
    if message is None:
        return _wrap(f'{who}<div class="course-body">{body or "<p>…</p>"}</div>', "assistant")
    tail = _tail(message)
    if not message.content.strip() and not message.note:
        tail = '<div class="course-stopped">(el modelo no escribió nada)</div>' + tail
    extra = " course-replaced" if message.replaced else ""
    return _wrap(
        f'{who}<div class="course-body">{body}</div>{tail}{_actions(message, index, last)}', "assistant", extra
    )


def error_html(exc: Exception) -> str:
    if isinstance(exc, CourseError):
        text = html.escape(exc.message) + (f"<br>→ {html.escape(exc.hint)}" if exc.hint else "")
    else:
        text = html.escape(f"Error inesperado ({type(exc).__name__}): {exc}")
    return f'<div class="course-bubble course-error" role="alert">{text}</div>'


def note_html(text: str) -> str:
    return f'<div class="course-bubble course-note">{html.escape(text)}</div>'


def download_links(paths: tuple[Path, Path]) -> str:
    links = [(path, "text/markdown" if path.suffix == ".md" else "application/json") for path in paths]
    return "Descargar: " + " · ".join(
        f'<a download="{path.name}" href="{data_uri(path.read_bytes(), mime)}">{path.name}</a>' for path, mime in links
    )
