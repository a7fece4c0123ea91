"""`make web`: the course's website, built as `make web` builds it (web/build.py), read as a student would.

The build executes every student notebook against the stand-ins: minutes on a laptop, so it is `slow`.
"""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.test_browser import BROWSER_MARKS, CHROMIUM, FLAGS

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_an_unanswered_exercise_shows_a_note_not_its_error():
    """The build's own step: an exercise's NotImplementedError and a live widget become Spanish notes."""
    import importlib.util

    import nbformat

    spec = importlib.util.spec_from_file_location("web_build", ROOT / "web" / "build.py")
    web_build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(web_build)
    EXERCISE_NOTE, WIDGET_NOTE, clean_outputs = web_build.EXERCISE_NOTE, web_build.WIDGET_NOTE, web_build.clean_outputs

    cell = nbformat.v4.new_code_cell("raise NotImplementedError()")
    cell.outputs = [
        nbformat.v4.new_output("error", ename="NotImplementedError", evalue="", traceback=["Traceback …"]),
        nbformat.v4.new_output("stream", name="stderr", text="100%|██████| descarga\n"),
        nbformat.v4.new_output(
            "display_data", data={"application/vnd.jupyter.widget-view+json": {}, "text/plain": "VBox()"}
        ),
        nbformat.v4.new_output("stream", name="stdout", text="Aviso: Modelo de prueba\n"),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {"state": {}}})
    clean_outputs(nb)
    shown = [o.get("data", {}).get("text/markdown") or o.get("text") for o in nb.cells[0].outputs]
    assert shown == [EXERCISE_NOTE, WIDGET_NOTE, "Aviso: Modelo de prueba\n"]
    assert "widgets" not in nb.metadata


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    recipe = re.search(r"^web:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert recipe.startswith("$(PY) web/build.py")
    out = tmp_path_factory.mktemp("web")
    run = subprocess.run(
        [sys.executable, str(ROOT / "web" / "build.py"), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return out / "html"


@pytest.mark.slow
def test_the_site_has_every_lesson_the_glossary_and_the_lab_guide(site):
    for page in ["index", *LESSONS, "glosario", "laboratorio"]:
        assert (site / f"{page}.html").is_file(), page
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "make lab" in home and all(lesson in home for lesson in LESSONS)


@pytest.mark.slow
def test_exercises_show_as_exercises_never_with_their_solutions(site):
    pages = {  # the text a reader sees (the highlighted code is split into spans)
        lesson: re.sub(r"<[^>]+>", "", (site / f"{lesson}.html").read_text(encoding="utf-8")) for lesson in LESSONS
    }
    for lesson, html in pages.items():
        assert "BEGIN SOLUTION" not in html and "Traceback" not in html, lesson
    assert "raise NotImplementedError" in pages["03_vit_parches"]  # the exercise as the student gets it
    assert "Ejercicio sin resolver" in pages["03_vit_parches"]
    assert "Modelo de prueba" in pages["04_clasificador_top7"]  # the stand-in says it is one


@pytest.mark.slow
def test_no_page_loads_anything_from_another_site(site):
    for page in site.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        outside = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', html)
        assert outside == [], (page.name, outside)


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.slow
@BROWSER_MARKS[0]
@BROWSER_MARKS[1]
def test_home_and_a_lesson_render_their_figure_and_maths(served, artifacts):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        outside = []
        page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:")) else outside.append(r.url))
        page.goto(served + "/index.html")
        assert "Modelos multimodales" in page.title()
        assert page.get_by_role("link", name=re.compile("Whisper")).first.is_visible()
        page.screenshot(path=str(artifacts / "web_inicio.png"))

        page.goto(served + "/02_transformer_por_dentro.html")
        formula = page.locator("mjx-container").first
        formula.wait_for(timeout=60_000)  # MathJax typeset the formula
        assert formula.bounding_box()["width"] > 50
        figure = page.locator(".cell_output img").first
        figure.scroll_into_view_if_needed()
        assert page.evaluate("(img) => img.complete && img.naturalWidth > 100", figure.element_handle())
        formula.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "web_leccion_02.png"))
        browser.close()
    assert outside == []
