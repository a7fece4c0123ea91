"""Rich answers (highlighted code, maths) rendered safely: the markup, the dollar rules, the sanitiser on the
new paths, the size limits, and the streaming renderer on every prefix."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest
from pygments.lexers import TextLexer

from course_utils import safe_html
from course_utils.safe_html import MarkdownBlocks, executable_parts, render_markdown

CODE_BACKGROUND = "#f6f8fa"  # .course-code in safe_html.css


class _Tree(HTMLParser):
    """Tags with their attributes, the text of each <pre>, and whether every tag was closed in order."""

    VOID = {"br", "hr", "img", "wbr", "col", "mspace", "mprescripts", "none"}

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict, tuple[str, ...]]] = []  # (tag, attributes, open ancestors)
        self.pre_texts: list[str] = []
        self.stack: list[str] = []
        self.balanced = True
        self.feed(text)
        self.close()
        self.balanced = self.balanced and not self.stack

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs), tuple(self.stack)))
        if tag == "pre":
            self.pre_texts.append("")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.balanced = False

    def handle_data(self, data):
        if "pre" in self.stack:
            self.pre_texts[-1] += data


def maths_attributes(rendered: str) -> set[str]:
    return {name for tag, attrs, above in _Tree(rendered).tags if tag == "math" or "math" in above for name in attrs}


# --- code ----------------------------------------------------------------------------------------


def test_a_fenced_block_is_highlighted_inside_the_copy_markup():
    rendered = render_markdown("Mira:\n\n```python\nfor i in range(3):\n    print(i)\n```\n")
    assert rendered.count('<div class="course-code course-copy-scope">') == 1
    assert '<button type="button" class="course-copy" aria-label="Copiar código">Copiar</button>' in rendered
    assert '<pre class="course-copy-source"><code>' in rendered
    assert '<span class="k">for</span>' in rendered and '<span class="nb">range</span>' in rendered
    assert _Tree(rendered).pre_texts == ["for i in range(3):\n    print(i)\n"]  # what the button copies


@pytest.mark.parametrize("fence", ["```", "```lenguaje-inventado", "~~~"])
def test_unlabelled_or_unknown_code_is_plain_text_in_the_same_frame(fence):
    code = "x = \"<b>\" & 'y'\n\tz <  w\n"
    rendered = render_markdown(f"{fence}\n{code}{fence[:3]}\n")
    assert "course-code" in rendered and "<span" not in rendered
    assert _Tree(rendered).pre_texts == [code]


def test_an_indented_code_block_gets_the_copy_button_too():
    rendered = render_markdown("Texto\n\n    a = 1\n    b = 2\n")
    assert "course-copy" in rendered and _Tree(rendered).pre_texts == ["a = 1\nb = 2\n"]


def test_the_language_comes_from_the_first_word_of_the_info_string():
    rendered = render_markdown('```bash title="x"\necho $HOME\n```')
    assert '<span class="nv">$HOME</span>' in rendered


@pytest.mark.parametrize(
    "info",
    [
        '"><img src=x onerror=alert(1)>',
        'python" onmouseover="alert(1)',
        "<script>alert(1)</script>",
        "javascript:alert(1)",
    ],
)
def test_a_hostile_fence_info_string_changes_nothing_but_the_highlighting(info):
    rendered = render_markdown(f"```{info}\nprint(1)\n```")
    assert executable_parts(rendered) == []
    assert "onerror" not in rendered and "onmouseover" not in rendered and "<script" not in rendered
    assert _Tree(rendered).pre_texts == ["print(1)\n"]


def test_code_that_closes_the_pre_and_opens_a_script_stays_code():
    code = '</code></pre><script>alert(1)</script><div class="course-code"><button onclick="x()">'
    rendered = render_markdown(f"```html\n{code}\n```")
    tree = _Tree(rendered)
    assert executable_parts(rendered) == [] and tree.balanced
    assert [tag for tag, _, _ in tree.tags].count("script") == 0
    assert [tag for tag, _, _ in tree.tags].count("button") == 1  # only the copy button
    assert tree.pre_texts == [code + "\n"]


def test_only_the_renderers_own_classes_survive():
    rendered = render_markdown("```python\nclass A: pass\n```\n\n$x$ y `z`")
    classes = {c for _, attrs, _ in _Tree(rendered).tags for c in attrs.get("class", "").split()}
    allowed = set().union(*safe_html._CLASSES.values())
    assert classes and classes <= allowed


def test_a_huge_code_block_is_shown_without_highlighting():
    code = "x = 1\n" * (safe_html.MAX_HIGHLIGHT_CHARS // 6 + 1)
    rendered = render_markdown(f"```python\n{code}```")
    assert "<span" not in rendered and _Tree(rendered).pre_texts == [code]


def test_the_shipped_stylesheet_has_pygments_colours_for_the_code_and_they_are_readable():
    css = safe_html.STYLESHEET.read_text()
    assert safe_html.code_stylesheet() in css  # rewrite safe_html.css if Pygments' style changed
    assert f"background: {CODE_BACKGROUND}" in css
    colours = set(re.findall(r"color: (#[0-9A-Fa-f]{3,6})", safe_html.code_stylesheet()))
    assert (
        colours
        and {c: round(contrast(c, CODE_BACKGROUND), 2) for c in colours if contrast(c, CODE_BACKGROUND) < 4.5} == {}
    )


def contrast(one: str, other: str) -> float:
    """WCAG 2 contrast ratio of two #rgb or #rrggbb colours."""

    def luminance(colour: str) -> float:
        digits = colour.lstrip("#")
        digits = "".join(c * 2 for c in digits) if len(digits) == 3 else digits
        channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


# --- maths ---------------------------------------------------------------------------------------


def test_inline_and_display_maths_become_mathml():
    rendered = render_markdown(r"La energía $E = mc^2$ y la media $$\bar{x} = \frac{1}{n}\sum_{i=1}^{n} x_i$$ fin.")
    assert rendered.count('<math display="inline">') == 1 and rendered.count('<math display="block">') == 1
    assert "<msup><mi>c</mi><mn>2</mn></msup>" in rendered and "<mfrac>" in rendered and "&#x02211;" not in rendered
    assert "∑" in rendered and "$" not in rendered


def test_display_maths_on_its_own_lines():
    rendered = render_markdown("Así:\n\n$$\n\\sqrt{x}\n$$\n\nfin")
    assert '<math display="block"><mrow><msqrt>' in rendered


def test_latex_is_read_before_markdown_can_touch_it():
    # Markdown would eat the backslash of \, and \{ and turn *a*b* into emphasis
    rendered = render_markdown(r"$a*b*c \, \{x\}$")
    assert "<em>" not in rendered and "{" in rendered and "<mspace" in rendered


@pytest.mark.parametrize(
    "text",
    [
        "Cuesta $5 y $10.",
        "Pagué $5, luego $3 más.",
        "US$5 y US$10",
        "5$ y 10$",
        "un $ suelto y otro $ más",
        r"escapado \$x\$ no es fórmula",
        "código `$x$` en línea",
        "- uno $a\n- dos b$",
        "| $a | b$ |\n|---|---|\n| 1 | 2 |",
        "párrafo $a\n\notro b$",
        "```\n$x$\n```",
    ],
)
def test_dollars_that_open_no_formula_stay_as_they_came(text):
    rendered = render_markdown(text)
    assert "<math" not in rendered
    assert rendered.count("$") == text.count("$")


def test_a_formula_in_a_link_text_is_drawn_and_in_its_address_or_title_left_alone():
    rendered = render_markdown('[la $x$](https://example.org/$y$ "título $z$")')
    assert 'href="https://example.org/$y$"' in rendered and 'title="título $z$"' in rendered
    assert rendered.count("<math") == 1
    assert "<math" not in render_markdown("<https://example.org/$x$>")


def test_latex_that_cannot_be_read_is_shown_as_its_source():
    rendered = render_markdown(r"mal: $\frac{a}{$ y bien $b$")
    assert '<code class="course-math-source">$\\frac{a}{$</code>' in rendered and rendered.count("<math") == 1


@pytest.mark.parametrize(
    "latex",
    [
        r"\href{javascript:alert(1)}{x}",
        r"\href{https://example.org}{x}",
        r"\url{javascript:alert(1)}",
        r"\htmlClass{course-copy}{x}",
        r"\htmlId{x}{y}",
        r"\style{background:url(javascript:alert(1))}{x}",
        r"\color{#fff}{x}",
        r"\colorbox{red}{x}",
        r'\text{<maction actiontype="statusline">x</maction>}',
        r"\text{<script>alert(1)</script>}",
        r'\text{<a href="javascript:alert(1)">x</a>}',
        r'\text{" onmouseover="alert(1)}',
        r"\text{<img src=x onerror=alert(1)>}",
        r'\text{<annotation-xml encoding="text/html"><script>alert(1)</script></annotation-xml>}',
    ],
)
def test_hostile_latex_gives_inert_mathml(latex):
    for text in (f"${latex}$", f"$${latex}$$", f'[$x$](https://e.org "{latex}") ${latex}$'):
        rendered = render_markdown(text)
        tags = {tag for tag, _, _ in _Tree(rendered).tags}
        assert executable_parts(rendered) == []
        assert not tags & {"script", "maction", "annotation-xml", "semantics", "img", "iframe"}
        assert maths_attributes(rendered) <= safe_html._MATH_ATTRIBUTES  # no href, class, id, style, colours
        urls = [value for _, attrs, _ in _Tree(rendered).tags for name, value in attrs.items() if name != "title"]
        assert not any("javascript:" in (value or "") for value in urls)


def test_placeholder_characters_in_the_answer_cannot_forge_a_formula():
    forged = "\ue0000\ue001 y $x$ y \ue0009\ue001"
    rendered = render_markdown(forged)
    assert rendered.count("<math") == 1 and "\ue000" not in rendered and "\ufffd" in rendered


def test_huge_or_deeply_nested_formulas_are_shown_as_source():
    long = "$" + "x+" * (safe_html.MAX_MATH_CHARS // 2) + "x$"
    deep = "$" + "{" * 1000 + "x" + "}" * 1000 + "$"
    for text in (long, deep):
        rendered = render_markdown(text)
        assert "<math" not in rendered and "course-math-source" in rendered


def test_many_formulas_are_each_converted():
    text = " ".join(f"$x_{{{i}}}$" for i in range(300))
    assert render_markdown(text).count("<math") == 300


# --- while the answer streams ----------------------------------------------------------------------

RICH = (
    "## Cálculo\n\nLa suma $\\sum_i x_i$ cuesta $5 y $10 de CPU.\n\n"
    "```python\ndef f(x):\n    return x ** 2  # $no$ es fórmula\n```\n\n"
    "$$\n\\frac{a}{b}\n$$\n\n| col | $y$ |\n|---|---|\n| 1 | 2 |\n\n"
    "- punto con `código $x$`\n- otro\n\n    sangrado = 1\n\nfin con [enlace $k$](https://example.org/$k$)."
)


def test_every_prefix_of_a_rich_answer_streams_as_it_renders_whole():
    blocks = MarkdownBlocks()
    for end in range(1, len(RICH) + 1):
        assert blocks.render(RICH[:end]) == render_markdown(RICH[:end]), repr(RICH[:end])


@pytest.mark.parametrize("end", range(0, len(RICH) + 1, 7))
def test_every_prefix_is_well_formed_and_inert(end):
    rendered = render_markdown(RICH[:end])
    assert _Tree(rendered).balanced and executable_parts(rendered) == []


def test_an_open_fence_already_shows_as_a_code_block():
    rendered = MarkdownBlocks().render("Así:\n\n```python\nfor i in range(")
    assert "course-code" in rendered and _Tree(rendered).pre_texts == ["for i in range(\n"]


def test_half_a_table_is_text_until_its_separator_row_arrives_then_a_table():
    assert "<table" not in render_markdown("| a | b |\n|--")
    assert "<table" in render_markdown("| a | b |\n|---|---|\n| 1 |")


def test_inline_code_keeps_its_dollars_html_escaped():
    rendered = render_markdown("`<b>$x$</b>`")
    assert f"<code>{html.escape('<b>$x$</b>', quote=False)}</code>" in rendered


@pytest.mark.parametrize(
    "text",
    [
        "> " * 39 + "$x$",
        "- " * 39 + "$x$",
        "*" * 5000 + "$x$" + "*" * 5000,
        "[" * 5000 + "$x$" + "](u)" * 5000,
        "".join("  " * i + "- $x$\n" for i in range(300)),
    ],
    ids=["quotes", "lists", "emphasis", "links", "indented-lists"],
)
def test_deeply_nested_markdown_with_maths_is_rendered(text):
    rendered = render_markdown(text)
    assert executable_parts(rendered) == [] and "<math" in rendered


@pytest.mark.parametrize("opener", ["> ", ">", "- ", "1. "])
def test_quotes_or_lists_nested_beyond_the_limit_are_shown_as_text(opener):
    text = "Antes\n\n" + opener * 20_000 + "$x$ <b>y</b>"
    rendered = render_markdown(text)
    assert "<blockquote" not in rendered and "<li" not in rendered and "<math" not in rendered
    assert html.unescape(re.sub(r"<[^>]+>", "", rendered)) == text  # nothing lost
    assert executable_parts(rendered) == [] and "<b>" not in rendered


@pytest.mark.parametrize("inside", ["<img src=x onerror=alert(1)>", "<b>negrita</b> <i", "a & b <", "&lt;b&gt;"])
def test_markup_in_latex_text_is_shown_as_text_and_the_formula_stays_closed(inside):
    rendered = render_markdown(f"antes $\\text{{{inside}}}$ y después **fin**\n\n- punto")
    tree = _Tree(rendered)
    assert tree.balanced and executable_parts(rendered) == []
    assert all("math" not in above for tag, _, above in tree.tags if tag in ("strong", "ul", "li"))
    assert {tag for tag, _, above in tree.tags if "math" in above} <= safe_html._MATH_TAGS
    text = html.unescape(re.search(r"<mtext>(.*?)</mtext>", rendered)[1]).replace("\xa0", " ")
    assert text == inside  # as written: LaTeX's \text has no HTML entities either


def test_unknown_languages_never_reach_pygments_plugin_search(monkeypatch):
    # An unknown name costs Pygments a scan of every installed package's entry points (~20 ms): an answer
    # with a thousand made-up fence languages must not cost a thousand scans.
    asked = []
    monkeypatch.setattr(safe_html, "get_lexer_by_name", lambda name, **kw: asked.append(name) or TextLexer())
    safe_html._lexer.cache_clear()
    try:
        rendered = render_markdown("\n\n".join(f"```lengua{i}\nx\n```" for i in range(50)) + "\n\n```Python\nx\n```")
    finally:
        safe_html._lexer.cache_clear()
    assert rendered.count("course-code") == 51 and asked == ["python"]


def test_a_reference_definition_keeps_its_dollars():
    rendered = render_markdown('[la $x$][r] y [r]\n\n[r]: https://example.org/$y$ "título $z$"')
    assert rendered.count('href="https://example.org/$y$"') == 2 and rendered.count('title="título $z$"') == 2
    assert rendered.count("<math") == 1
