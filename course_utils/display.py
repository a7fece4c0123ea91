"""How results look: HTML tables, the alert colour and the stand-in notice, in one place."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from html import escape

ALERT = "#c0392b"  # errors and notices, in every table, box and figure
ALERT_BACKGROUND = "#fdecea"


class Html(str):
    """Markup that a table cell shows as is (anything else is escaped)."""


def cell_html(value) -> str:
    return value if isinstance(value, Html) else escape(str(value))


def table_html(header: Sequence[str], rows: Iterable[Sequence], left: Collection[int] = ()) -> str:
    """An HTML table: escaped cells; columns in `left` are left-aligned (Jupyter aligns right).

    A row shorter than the header stretches its last cell over the remaining columns.
    """

    def cells(tag: str, values: Sequence) -> str:
        out = []
        for i, value in enumerate(values):
            span = len(header) - i if i == len(values) - 1 and len(values) < len(header) else 1
            attrs = (f" colspan={span}" if span > 1 else "") + (" style='text-align:left'" if i in left else "")
            out.append(f"<{tag}{attrs}>{cell_html(value)}</{tag}>")
        return "".join(out)

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table><thead><tr>{cells('th', header)}</tr></thead><tbody>{body}</tbody></table>"


def alert_html(text: str) -> Html:
    """Text in the alert colour, escaped."""
    return Html(f"<span style='color:{ALERT}'>{escape(text)}</span>")


class Table(list):
    """Rows (dicts with the same keys) shown as a table in a notebook and as text in a terminal."""

    def __init__(self, rows: Iterable[dict] = (), left: Collection[str] = ()):
        super().__init__(rows)
        self.left = tuple(left)  # the columns (keys) to left-align

    def __str__(self) -> str:
        return "\n".join(" | ".join(str(v) for v in row.values()) for row in self)

    def _repr_html_(self) -> str:
        header = list(self[0]) if self else []
        left = [i for i, key in enumerate(header) if key in self.left]
        return table_html(header, [list(row.values()) for row in self], left)


def standin_notice(note: str | None) -> str:
    """The line that says a test stand-in is in use ("" when none is)."""
    return f"Aviso: {note}" if note else ""


def standin_html(note: str | None) -> str:
    """The stand-in notice as a paragraph in the alert colour ("" when none is)."""
    return f"<p style='color:{ALERT}'>{escape(standin_notice(note))}</p>" if note else ""


def announce_standin(note: str | None) -> str | None:
    """Print the stand-in notice, if any, and return `note`."""
    if note:
        print(standin_notice(note))
    return note
