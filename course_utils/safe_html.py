"""A model's Markdown as HTML that is safe to show in the browser, and a check for what a browser could run."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3
from markdown_it_pyrs import MarkdownIt

# markdown-it's Rust port: the same CommonMark rules as markdown-it-py, fast enough to follow a long answer
# as it streams. Without its html plugins, raw HTML in the model's Markdown is shown as text.
_MARKDOWN = MarkdownIt("zero").enable_many(
    [
        "blockquote",
        "code",
        "fence",
        "heading",
        "hr",
        "lheading",
        "list",
        "paragraph",
        "reference",
        "autolink",
        "backticks",
        "emphasis",
        "entity",
        "escape",
        "image",
        "link",
        "newline",
        "strikethrough",
        "table",
    ]
)
# Model output never makes the browser fetch anything by itself: a remote image would leak the
# conversation, so `![alt](url)` becomes a plain link.
_IMAGE = re.compile(r'<img src="([^"]*)" alt="([^"]*)"[^>]*>')
_OUTPUT_TAGS = nh3.ALLOWED_TAGS - {"img", "area", "map"}
_URL_SCHEMES = {"http", "https", "mailto"}


def render_markdown(text: str) -> str:
    """Model output (Markdown) as safe HTML: no scripts, no event handlers, no javascript: links, no
    remote images. Single line breaks stay in the text (the chat's CSS shows them)."""
    rendered = _IMAGE.sub(lambda m: f'<a href="{m[1]}">[imagen: {m[2] or "sin título"}]</a>', _MARKDOWN.render(text))
    return nh3.clean(
        rendered, tags=_OUTPUT_TAGS, url_schemes=_URL_SCHEMES, set_tag_attribute_values={"a": {"target": "_blank"}}
    )


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


class MarkdownBlocks:
    """Renders a Markdown text that keeps growing (a streamed answer) in time linear in its length.

    A block ends at a blank line followed by a line that starts at the margin, outside a code fence.
    Finished blocks are rendered once and kept; each call renders only the unfinished tail.
    """

    def __init__(self):
        self._text = ""
        self._done: list[str] = []  # HTML of the finished blocks
        self._block_start = 0  # where the unfinished block starts in the text
        self._line_start = 0  # the next line to examine
        self._fence = ""  # the open code fence (``` or ~~~), if any
        self._after_blank = False

    def render(self, text: str) -> str:
        """The safe HTML of `text`, which must start with the text given last time."""
        if not text.startswith(self._text[: self._line_start]):
            self.__init__()  # not a continuation: start again
        self._text = text
        self._advance()
        return "".join(self._done) + render_markdown(text[self._block_start :])

    def _advance(self) -> None:
        text = self._text
        while (end := text.find("\n", self._line_start)) != -1:
            line = text[self._line_start : end]
            self._look_at(line)
            self._line_start = end + 1

    def _look_at(self, line: str) -> None:
        stripped = line.strip()
        if self._fence:
            if stripped.startswith(self._fence) and not stripped.strip(self._fence[0]):
                self._fence = ""
            return
        if stripped and self._after_blank and line[0] not in " \t" and self._line_start > self._block_start:
            self._done.append(render_markdown(self._text[self._block_start : self._line_start]))
            self._block_start = self._line_start
        if stripped.startswith(("```", "~~~")):
            marker = stripped[0]
            self._fence = marker * (len(stripped) - len(stripped.lstrip(marker)))
        self._after_blank = not stripped
