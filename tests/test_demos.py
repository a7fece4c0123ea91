"""`make demo`'s pages (demos/): each one is the demo alone, in Spanish, above the fold at 1280×800.

Each page is served with `make demo DEMO=…`'s own command line and photographed (test-artifacts/demo_*.png).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_browser import (
    BROWSER_MARKS,
    SLOW,
    Server,
    browser,  # noqa: F401 - the fixture, shared (Chromium with the fake microphone)
    demo_command,
    free_port,
    jupyter_env,  # noqa: F401 - the fixture, shared
)

pytestmark = BROWSER_MARKS
ROOT = Path(__file__).resolve().parent.parent
VIEWPORT = {"width": 1280, "height": 800}
# What a student must not read on a demo page: Voilà's, Jupyter's and Python's English, and any error.
UNWANTED = [
    "Traceback",
    "Error",
    "error",
    "Exception",
    "There was",
    "Executing",
    "Running",
    "Loading",
    "Upload",
    "Select",
    "Please",
    "ESCRIBE AQUÍ",
    "NotImplemented",
    "Ejercicio",
    "undefined",
]
# The widget that says the demo is ready, and where it lives on the page.
READY = {
    "chat": ".course-chat-status:has-text('Conectado')",
    "clasificador": ".widget-dropdown select",
    "dictado": ".course-dictation",
}


def unwanted_on(text: str) -> list[str]:
    return [word for word in UNWANTED if re.search(rf"\b{re.escape(word)}", text)]


def test_the_unwanted_list_catches_voila_s_own_error_line():
    """The check can fail: the English line Voilà shows for a failing cell is caught."""
    line = "There was an error when executing cell [8]. Please run Voilà with --show_tracebacks=True"
    assert {"There was", "error", "Please"} <= set(unwanted_on(line))
    assert unwanted_on("Chat multimodal · Conectado a Ollama") == []


def test_an_unknown_demo_gets_a_spanish_message():
    import subprocess

    # -o: the environment counts as installed (make never reinstalls it here)
    run = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "demo", "DEMO=nada"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and "No hay ninguna demostración «nada»" in run.stdout + run.stderr


@pytest.fixture
def demo_page(request, browser, jupyter_env, tmp_path_factory):  # noqa: F811 - the shared fixture
    """The demo named by the test's parameter, served by `make demo`'s command, open at 1280×800."""
    name = request.param
    port = free_port()
    cmd, env = demo_command(name, port, jupyter_env)
    server = Server(cmd, f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("demo") / "voila.log", env)
    server.wait_ready("/voila/static/voila.js")
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    outside = []
    page.on(
        "request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else outside.append(r.url)
    )
    page.goto(server.url + "/", timeout=SLOW)
    page.locator(READY[name]).first.wait_for(timeout=SLOW)
    page.wait_for_timeout(500)  # the last widgets' layout
    yield name, page, outside
    context.close()
    server.stop()


def check_clean(name: str, page, outside: list[str], artifacts: Path, shot: str) -> None:
    page.screenshot(path=str(artifacts / f"{shot}.png"))
    text = page.locator("body").inner_text()
    assert unwanted_on(text) == [], f"{name}: {unwanted_on(text)} en la página:\n{text}"
    assert outside == [], f"{name} pidió fuera del servidor: {outside}"
    assert page.title() and unwanted_on(page.title()) == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= VIEWPORT["width"]


@pytest.mark.parametrize("demo_page", ["chat"], indirect=True)
def test_the_chat_demo_is_the_chat_alone_full_width_above_the_fold(demo_page, artifacts):
    name, page, outside = demo_page
    page.screenshot(path=str(artifacts / "demo_chat.png"))
    chat = page.locator(".course-chat")
    box = chat.bounding_box()
    assert box["width"] >= 0.9 * VIEWPORT["width"]
    entry = page.locator(".course-prompt-area").bounding_box()
    assert entry["y"] + entry["height"] <= VIEWPORT["height"], "el cuadro de texto queda bajo el pliegue"
    for label in ("Enviar", "Exportar"):
        button = chat.get_by_role("button", name=label).bounding_box()
        assert button["y"] + button["height"] <= VIEWPORT["height"], label
    # A fresh list: only the placeholder, whatever the lab or an earlier demo saved.
    assert page.locator(".course-chat-saved option").count() == 1  # «(conversaciones guardadas)» alone
    assert page.locator(".jp-CodeCell .jp-InputArea-editor:visible, .jp-OutputArea-output pre:visible").count() == 0
    check_clean(name, page, outside, artifacts, "demo_chat")


@pytest.mark.parametrize("demo_page", ["clasificador"], indirect=True)
def test_the_classifier_demo_shows_the_top_7_of_a_sample(demo_page, artifacts):
    name, page, outside = demo_page
    check_clean(name, page, outside, artifacts, "demo_clasificador")
    page.locator(".widget-dropdown select").select_option(label="gato.jpg")
    table = page.locator("table", has_text="0.")
    table.first.wait_for(timeout=SLOW)
    page.locator(".jp-OutputArea-output img").first.wait_for(timeout=SLOW)  # the photo with its prediction
    rows = page.locator("table").first.locator("tbody tr")
    assert rows.count() == 7
    assert re.search(r"\d\.\d{3}", rows.first.inner_text())
    assert "Aviso" in page.locator("body").inner_text()  # the stand-in says it is one
    check_clean(name, page, outside, artifacts, "demo_clasificador_gato")


@pytest.mark.parametrize("demo_page", ["dictado"], indirect=True)
def test_the_dictation_demo_records_and_writes_what_it_heard(demo_page, artifacts):
    name, page, outside = demo_page
    check_clean(name, page, outside, artifacts, "demo_dictado")
    page.get_by_role("button", name=re.compile("Grabar")).click()
    page.wait_for_timeout(3000)
    page.get_by_role("button", name=re.compile("Detener")).click()
    status = page.locator(".course-dictation-status")
    page.wait_for_function(
        "() => !document.querySelector('.course-dictation-status').innerText.includes('Transcribiendo')"
        " && !document.querySelector('.course-dictation-status').innerText.includes('Pulsa')",
        timeout=SLOW,
    )
    assert "Transcripción lista" in status.inner_text() or "No se oyó" in status.inner_text()
    page.screenshot(path=str(artifacts / "demo_dictado_hecho.png"))
