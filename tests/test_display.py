"""course_utils.display: the one place for HTML tables, the alert colour and the stand-in notice."""

from pathlib import Path

from course_utils import display
from course_utils.errors import CourseError

PACKAGE = Path(__file__).resolve().parent.parent / "course_utils"


def test_table_escapes_cells_aligns_columns_and_spans_short_rows():
    html = display.table_html(
        ("archivo", "clase", "p"),
        [("<a>.jpg", "gato & perro", "0.900"), ("roto.jpg", display.alert_html("Error: <mal>"))],
        left={0, 1},
    )
    assert html.startswith("<table><thead><tr><th style='text-align:left'>archivo</th>")
    assert "<th>p</th>" in html and "<td>0.900</td>" in html
    assert "&lt;a&gt;.jpg" in html and "gato &amp; perro" in html
    assert (
        f"<td colspan=2 style='text-align:left'><span style='color:{display.ALERT}'>Error: &lt;mal&gt;</span>" in html
    )
    assert html.count("<tr>") == 3


def test_table_of_dicts_as_html_and_text():
    rows = display.Table([{"modelo": "base", "segundos": "1.20"}, {"modelo": "<x>", "segundos": "—"}], left=["modelo"])
    assert str(rows) == "base | 1.20\n<x> | —"
    html = rows._repr_html_()
    assert "<th style='text-align:left'>modelo</th><th>segundos</th>" in html and "&lt;x&gt;" in html
    assert display.Table()._repr_html_() == "<table><thead><tr></tr></thead><tbody></tbody></table>"


def test_standin_notice_is_one_line_printed_only_when_there_is_a_stand_in(capsys):
    assert display.announce_standin(None) is None and capsys.readouterr().out == ""
    assert display.announce_standin("Modelo de prueba") == "Modelo de prueba"
    assert capsys.readouterr().out == "Aviso: Modelo de prueba\n"
    assert display.standin_notice(None) == display.standin_html(None) == ""
    assert display.standin_html("a<b") == f"<p style='color:{display.ALERT}'>Aviso: a&lt;b</p>"


def test_the_alert_colour_is_written_once_in_python():
    assert display.ALERT in CourseError("x")._repr_html_()
    written = [p.name for p in PACKAGE.glob("*.py") if display.ALERT in p.read_text(encoding="utf-8")]
    assert written == ["display.py"]
