"""A model's Markdown as HTML that is safe to show in the browser, and a check for what a browser could run.

Answers are rendered on the server: code blocks highlighted by Pygments (with a copy button), LaTeX between
dollars converted to MathML by latex2mathml (the browser draws MathML itself: no script, no network), and
everything passes through one sanitiser, nh3, before it reaches the page. The classes in the result are
styled by `STYLESHEET` (safe_html.css), which the page must load.
"""

from __future__ import annotations

import functools
import html
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import nh3
from latex2mathml.converter import convert_to_element
from markdown_it_pyrs import MarkdownIt
from pygments import format as format_tokens
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_all_lexers, get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

STYLESHEET = Path(__file__).with_name("safe_html.css")
CODE_STYLE = "xcode"  # the Pygments style whose colours all reach 4.5:1 (WCAG AA) on the code background
MAX_HIGHLIGHT_CHARS = 100_000  # a longer code block is shown as plain text
# Seconds a code block may take to highlight; past them it is shown as plain text. Some of Pygments' lexers
# (C#, X++, YAML, reStructuredText…) take seconds on thousands of very short lines.
HIGHLIGHT_SECONDS = 0.3
MAX_MATH_CHARS = 2_000  # longer LaTeX, or nested deeper than MAX_MATH_DEPTH, is shown as its source
MAX_MATH_DEPTH = 30
MAX_NESTING = 40  # quotes and list items opened on one line; deeper, the text is shown as it came

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
_URL_SCHEMES = {"http", "https", "mailto"}
_TOO_DEEP = re.compile(rf"^[ \t]*(?:>[ \t]*|[-+*][ \t]+|\d{{1,9}}[.)][ \t]+){{{MAX_NESTING},}}", re.M)

# MathML Core as latex2mathml writes it. Left out: <maction> (interactive), <semantics>/<annotation-xml>
# (can carry HTML), and href, style, class and colours on any maths element.
_MATH_TAGS = {
    "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msub", "msup", "msubsup", "munder", "mover",
    "munderover", "mfrac", "msqrt", "mroot", "mstyle", "merror", "mpadded", "mphantom", "mtable", "mtr", "mtd",
    "mmultiscripts", "mprescripts", "none", "menclose",
}  # fmt: skip
_MATH_ATTRIBUTES = {
    "accent", "accentunder", "columnalign", "columnlines", "columnspacing", "depth", "display", "displaystyle",
    "fence", "form", "frame", "height", "largeop", "linethickness", "lspace", "mathsize", "mathvariant", "maxsize",
    "minsize", "movablelimits", "notation", "rowalign", "rowlines", "rowspacing", "rspace", "scriptlevel",
    "separator", "stretchy", "symmetric", "voffset", "width",
}  # fmt: skip
_TAGS = (nh3.ALLOWED_TAGS - {"img", "area", "map"}) | _MATH_TAGS | {"button"}
_ATTRIBUTES = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()} | {
    tag: _MATH_ATTRIBUTES for tag in _MATH_TAGS
}
_ATTRIBUTES["button"] = {"aria-label"}
_CLASSES = {
    "div": {"course-code", "course-copy-scope"},
    "button": {"course-copy"},
    "pre": {"course-copy-source"},
    "span": {name for name in STANDARD_TYPES.values() if name},  # Pygments' token classes
    "code": {"course-math-source"},
}
_SANITISER = nh3.Cleaner(  # built once: building it costs more than cleaning a paragraph
    tags=_TAGS,
    attributes=_ATTRIBUTES,
    allowed_classes=_CLASSES,
    tag_attribute_values={"button": {"type": {"button"}}},
    url_schemes=_URL_SCHEMES,
    set_tag_attribute_values={"a": {"target": "_blank"}},
)


def render_markdown(text: str) -> str:
    """Model output (Markdown) as safe HTML: no scripts, no event handlers, no javascript: links, no
    remote images; code highlighted, maths as MathML. Single line breaks stay in the text (the chat's CSS
    shows them)."""
    if _TOO_DEEP.search(text):  # the sanitiser's HTML parser takes time growing with the square of the depth
        return _SANITISER.clean(f"<p>{html.escape(text, quote=False)}</p>")
    text, maths = _take_maths(text.replace(_OPEN, "\ufffd").replace(_CLOSE, "\ufffd"))
    rendered = _IMAGE.sub(lambda m: f'<a href="{m[1]}">[imagen: {m[2] or "sin título"}]</a>', _MARKDOWN.render(text))
    if maths:  # a formula inside an attribute (a link's title or address) stays as its source
        rendered = _TAG.sub(lambda tag: _PLACEHOLDER.sub(lambda m: html.escape(maths[int(m[1])][0]), tag[0]), rendered)
    if "<pre>" in rendered:
        rendered = _CODE_BLOCK.sub(_code_block, rendered)
    if maths:
        rendered = _PLACEHOLDER.sub(lambda m: _mathml(*maths[int(m[1])]), rendered)
    return _SANITISER.clean(rendered)


# --- code blocks ---------------------------------------------------------------------------------

_CODE_BLOCK = re.compile(r'<pre><code(?: class="language-([^"]*)")?>(.*?)</code></pre>', re.S)
_FORMATTER = HtmlFormatter(nowrap=True)


@functools.lru_cache(maxsize=64)
def _lexer(language: str):
    """The lexer named by a fence's info string (`python`, `py`, `bash`…); plain text for none or unknown.
    Unlabelled code is not guessed: Pygments' guesses on short snippets are often wrong and slow."""
    language = language.lower()
    if language not in _known_languages():  # an unknown name would cost a search of all entry points
        return TextLexer()
    try:
        return get_lexer_by_name(language, stripnl=False)
    except ClassNotFound:
        return TextLexer()


@functools.cache
def _known_languages() -> frozenset[str]:
    return frozenset(alias.lower() for _, aliases, _, _ in get_all_lexers(plugins=False) for alias in aliases)


def _code_block(match: re.Match) -> str:
    return _highlighted(html.unescape(match[1] or ""), match[2])


@functools.lru_cache(maxsize=64)  # while an answer streams, its last code block is rendered again and again
def _highlighted(language: str, escaped_code: str) -> str:
    code = html.unescape(escaped_code)
    lexer = _lexer(language) if len(code) <= MAX_HIGHLIGHT_CHARS else TextLexer()
    tokens = _tokens_in_time(lexer, code, HIGHLIGHT_SECONDS)
    if tokens is None:  # out of time: the code as plain text
        tokens = TextLexer(stripnl=False).get_tokens(code)
    return (
        '<div class="course-code course-copy-scope">'
        '<button type="button" class="course-copy" aria-label="Copiar código">Copiar</button>'
        f'<pre class="course-copy-source"><code>{format_tokens(tokens, _FORMATTER)}</code></pre></div>'
    )


def _tokens_in_time(lexer, code: str, seconds: float) -> list | None:
    """The lexer's tokens of `code`, or None if it needs more than `seconds` (looked at after each token)."""
    deadline = time.monotonic() + seconds
    tokens = []
    for token in lexer.get_tokens(code):
        tokens.append(token)
        if time.monotonic() >= deadline:
            return None
    return tokens


def code_stylesheet() -> str:
    """The token colours of `CODE_STYLE` for code inside `.course-code` (the last part of safe_html.css)."""
    return "\n".join(HtmlFormatter(style=CODE_STYLE).get_token_style_defs(".course-code"))


# --- maths ---------------------------------------------------------------------------------------

# While rendering, each formula is a placeholder of private-use characters that Markdown leaves alone.
_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
_TAG = re.compile(r"<[^>]*>")
# Inline nodes of markdown-it's tree; any other node is a block (a reference definition too), never scanned
# for maths itself, only its inline children.
_INLINE = {
    "text", "text_special", "softbreak", "hardbreak", "code_inline", "em", "strong", "strikethrough", "link", "image",
    "autolink",
}  # fmt: skip
_VERBATIM = {"code_inline", "autolink"}  # no maths inside these


def _take_maths(text: str) -> tuple[str, list[tuple[str, bool]]]:
    """`text` with each formula replaced by a placeholder, and the formulas as (source, display).

    markdown-it's dollarmath rules, as Pandoc's: `$…$` opens before a non-space that follows no digit and
    closes after a non-space before no digit, so «cuesta $5 y $10» stays text; `$$…$$` is display maths;
    `\\$` is a dollar. A formula stays inside one paragraph, heading, list item or table cell, never in code.
    """
    if "$" not in text:
        return text, []
    raw = text.encode()
    spans: list[tuple[int, int, bool]] = []
    for start, end, verbatim in _inline_runs(_MARKDOWN.tree(text)):
        if raw.find(b"$", start, end) != -1:
            spans += _dollar_spans(raw, start, end, verbatim)
    if not spans:
        return text, []
    pieces, maths, last = [], [], 0
    for start, end, display in sorted(spans):
        pieces += [raw[last:start].decode(), f"{_OPEN}{len(maths)}{_CLOSE}"]
        maths.append((raw[start:end].decode(), display))
        last = end
    return "".join(pieces) + raw[last:].decode(), maths


def _inline_runs(root):
    """(start, end, verbatim ranges) in UTF-8 bytes for each run of inline content in the parsed tree.
    Iterative, as the walks below: a model can nest quotes or emphasis thousands deep."""
    blocks = [root]
    while blocks:
        run: list = []
        for child in blocks.pop().children:
            if child.name not in _INLINE:
                yield from _run_range(run)
                run = []
                blocks.append(child)
            elif child.srcmap:
                run.append(child)
        yield from _run_range(run)


def _run_range(run: list):
    if run:
        yield run[0].srcmap[0], run[-1].srcmap[1], sorted(_verbatim(run))


def _verbatim(nodes):
    nodes = list(nodes)
    while nodes:
        node = nodes.pop()
        if node.name in _VERBATIM and node.srcmap:
            yield node.srcmap
            continue
        if node.name in ("link", "image") and node.srcmap:  # its address and title, after the text
            text_end = node.children[-1].srcmap[1] if node.children and node.children[-1].srcmap else node.srcmap[0]
            yield text_end, node.srcmap[1]
        nodes += node.children


def _dollar_spans(raw: bytes, start: int, end: int, verbatim: list[tuple[int, int]]):
    pos = raw.find(b"$", start, end)
    while pos != -1:
        inside = next((stop for first, stop in verbatim if first <= pos < stop), None)
        if inside is not None:
            pos = raw.find(b"$", inside, end)
            continue
        close = _closing_dollar(raw, pos, end)
        if close is not None and not any(pos < first < close for first, _ in verbatim):
            display = raw[pos + 1 : pos + 2] == b"$"
            yield pos, close, display
            pos = raw.find(b"$", close, end)
        else:
            pos = raw.find(b"$", pos + 1, end)


def _escaped(raw: bytes, pos: int) -> bool:
    before = pos
    while before > 0 and raw[before - 1] == 0x5C:  # backslash
        before -= 1
    return (pos - before) % 2 == 1


def _closing_dollar(raw: bytes, pos: int, end: int) -> int | None:
    """The end (exclusive) of the formula opened at `pos`, or None if this dollar opens none."""
    display = raw[pos + 1 : pos + 2] == b"$"
    after = raw[pos + 1 : pos + 2]
    if _escaped(raw, pos) or not display and (not after or after.isspace() or raw[pos - 1 : pos].isdigit()):
        return None
    search = pos + (2 if display else 1)
    while (close := raw.find(b"$$" if display else b"$", search, end)) != -1 and _escaped(raw, close):
        search = close + 1
    if close == -1 or close == pos + (2 if display else 1):
        return None
    if display:
        return close + 2
    if raw[close - 1 : close].isspace() or raw[close + 1 : close + 2].isdigit():
        return None
    return close + 1


def _mathml(source: str, display: bool) -> str:
    latex = source[2:-2] if display else source[1:-1]
    mathml = _convert(latex.strip(), display) if _small(latex) else None
    return mathml or f'<code class="course-math-source">{html.escape(source)}</code>'


def _small(latex: str) -> bool:
    if len(latex) > MAX_MATH_CHARS:
        return False
    if latex.count("{") <= MAX_MATH_DEPTH:
        return True
    depth = deepest = 0
    for char in latex:
        depth += {"{": 1, "}": -1}.get(char, 0)
        deepest = max(deepest, depth)
    return deepest <= MAX_MATH_DEPTH


# latex2mathml's own convert() un-escapes its whole output to restore the character references it writes
# (&#x2211;), and with them any < or & of the formula's text: "\text{<b}" would open a tag. Serialised here
# with the text escaped, and only those references restored.
_REFERENCE = re.compile(r"&amp;(#x[0-9A-Fa-f]+;)")


@functools.lru_cache(maxsize=1024)
def _convert(latex: str, display: bool) -> str | None:
    try:
        element = convert_to_element(latex, display="block" if display else "inline")
    except Exception:  # noqa: BLE001 - latex2mathml raises a dozen exception types (and RecursionError) on bad LaTeX
        return None
    return _REFERENCE.sub(r"&\1", ElementTree.tostring(element, encoding="unicode"))


# --- what a browser could run ----------------------------------------------------------------------

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
