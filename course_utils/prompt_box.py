"""The chat's text area (anywidget): Enter sends, Shift+Enter starts a new line, images can be pasted or dropped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anywidget
import traitlets

from course_utils.errors import CourseError, ImageError

HERE = Path(__file__).parent
# A Jupyter kernel's websocket closes on a message over 10 MiB (tornado's default, which jupyter_server
# keeps): a larger file is refused in the browser, with this limit in the message, and never sent.
MAX_IMAGE_BYTES = 8 * 1024 * 1024

_CSS = """
.course-drop-target { outline: 3px dashed #0550ae; outline-offset: -3px; background: #ddf4ff; }
"""


class PromptBox(anywidget.AnyWidget):
    """A text area where Enter sends (a "submit" message) and Shift+Enter starts a new line.

    An image pasted into it, or dropped anywhere on the chat around it, comes as an "image" message
    with the file's bytes in a binary buffer: `on_image` hands them on.
    """

    _esm = HERE / "prompt_box.js"
    _css = _CSS
    value = traitlets.Unicode("").tag(sync=True)
    placeholder = traitlets.Unicode("").tag(sync=True)
    label = traitlets.Unicode("Tu pregunta").tag(sync=True)  # the accessible name of the text area
    hint = traitlets.Unicode(
        "Enter envía; Mayús+Enter, nueva línea. Para adjuntar una imagen, pégala aquí (Ctrl+V) o arrástrala al chat."
    ).tag(sync=True)  # the text area's description (its title, read by screen readers after the name)
    disabled = traitlets.Bool(False).tag(sync=True)
    rows = traitlets.Int(3).tag(sync=True)
    max_image_bytes = traitlets.Int(MAX_IMAGE_BYTES).tag(sync=True)

    def on_submit(self, callback) -> None:
        """`callback(text)` runs when the student presses Enter."""

        def handle(_widget, content, _buffers):
            if isinstance(content, dict) and content.get("type") == "submit":
                self.value = str(content.get("value", ""))
                callback(self.value)

        self.on_msg(handle)

    def on_image(self, callback: Callable[[bytes], None], on_error: Callable[[CourseError], None]) -> None:
        """`callback(data)` gets the bytes of a pasted or dropped image; a file that is not one, too large
        or one of several reaches `on_error` as an ImageError naming the file, in Spanish."""

        def handle(_widget, content, buffers):
            kind = content.get("type") if isinstance(content, dict) else None
            if kind not in ("image", "image-too-big"):
                return
            name = str(content.get("name") or "la imagen")
            try:
                if kind == "image-too-big":
                    raise _too_big(int(content.get("size", 0)), self.max_image_bytes)
                callback(bytes(buffers[0]) if buffers else b"")
            except ImageError as exc:
                on_error(ImageError(f"«{name}»: {exc.message}", exc.hint))
                return
            if int(content.get("count", 1)) > 1:
                on_error(
                    ImageError(
                        f"Llegaron {content['count']} archivos; se adjuntó solo «{name}».",
                        "El modelo acepta una imagen por mensaje: envía las demás en mensajes siguientes.",
                    )
                )

        self.on_msg(handle)


def _too_big(size: int, limit: int) -> ImageError:
    return ImageError(
        f"ocupa {size / 2**20:.1f} MB".replace(".", ",") + f" y el chat acepta imágenes de hasta {limit // 2**20} MB.",
        "Guárdala más pequeña (por ejemplo en JPEG, 2000 píxeles de lado bastan) y vuelve a adjuntarla.",
    )
