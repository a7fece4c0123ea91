"""The chat's text area (anywidget): Enter sends, Shift+Enter starts a new line."""

from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets

HERE = Path(__file__).parent


class PromptBox(anywidget.AnyWidget):
    """A text area where Enter sends (a "submit" message) and Shift+Enter starts a new line."""

    _esm = HERE / "prompt_box.js"
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
