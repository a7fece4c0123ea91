"""The chat's input in a real browser (Debian's Chromium driven by Playwright, Voilà on loopback):
images pasted from the clipboard, dropped on the chat and removed from the keyboard; while recording, a level
meter and a clock, the stop at the maximum length and the spoken language; a recording of a fan, with no
voice in it, writes nothing and says «No se oyó ninguna voz».

The Voilà page is the course's chat in a notebook of its own (its recorder's limit lowered to a few
seconds); in JupyterLab, notebook 08 checks that the paste, the drop and the meter work there too (the
notebook would otherwise take Ctrl+V and dropped files). The servers and the browser come from
tests/test_browser.py.
"""

from __future__ import annotations

import base64
import io
import re
import sys
import wave
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from course_utils.samples import sample_path
from tests.room_noise import SAMPLE_RATE, fan
from tests.test_browser import (  # noqa: F401 - fixtures used by name
    BROWSER_MARKS,
    CHROMIUM,
    FLAGS,
    NOTEBOOK,
    SLOW,
    Server,
    browser,
    free_port,
    jupyter_env,
    lab,
    saved_conversations_cleaned,
)

pytestmark = BROWSER_MARKS

LIMIT_SECONDS = 4
PHOTO = sample_path("gato.jpg")

# A file in the page: a DataTransfer holding it, as the clipboard or a drag from the desktop would give.
DATA_TRANSFER = """([b64, name, type]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  return transfer;
}"""
# The real clipboard: the image is written to it, and Ctrl+V pastes it like a screenshot.
COPY_IMAGE = """async (b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  await navigator.clipboard.write([new ClipboardItem({ "image/png": new Blob([bytes], { type: "image/png" }) })]);
}"""


KERNEL_IDLE = (
    "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
    " return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
    " && w.sessionContext.session.kernel.status === 'idle'); }"
)


def chat_notebook(folder: Path) -> Path:
    source = (
        "from course_utils.chat import ChatWidget\n\n"
        f"chat = ChatWidget(export_dir={str(folder / 'conversaciones')!r})\n"
        f"chat.recorder.max_seconds = {LIMIT_SECONDS}\n"
        "chat"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "chat.ipynb"
    nbformat.write(notebook, path)
    return path


def fan_wav(path: Path) -> Path:
    """Chromium's fake microphone reads 16-bit PCM wav; a fan at a classroom's level, no voice."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((np.clip(fan(8, -35), -1, 1) * 32767).astype("<i2").tobytes())
    return path


def png_b64(path: Path) -> str:
    buffer = io.BytesIO()
    Image.open(path).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def chat_server(jupyter_env, tmp_path_factory):  # noqa: F811 - imported fixture
    server = start_voila(tmp_path_factory.mktemp("chat_input"), jupyter_env)
    yield server
    server.stop()


def start_voila(folder: Path, env: dict) -> Server:
    voila = Path(sys.executable).parent / "voila"
    port = free_port()
    cmd = [str(voila), str(chat_notebook(folder)), "--Voila.ip=127.0.0.1", f"--port={port}", "--no-browser"]
    return Server(cmd, f"http://127.0.0.1:{port}", folder / "voila.log", env).wait_ready("/voila/static/voila.js")


def fan_browser(browser, folder: Path):  # noqa: F811 - imported fixture
    """A second Chromium whose fake microphone plays a fan: no voice at all."""
    return browser.browser_type.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=FLAGS
        + [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={fan_wav(folder / 'ventilador.wav')}",
        ],
    )


def record(page, seconds: float) -> None:
    page.get_by_role("button", name=re.compile("Grabar")).click()
    stop = page.get_by_role("button", name=re.compile("Detener"))
    stop.wait_for(timeout=SLOW)
    page.wait_for_timeout(seconds * 1000)  # the fake microphone plays meanwhile (under LIMIT_SECONDS)
    stop.click()


def open_chat(browser, server):  # noqa: F811 - imported fixture
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write", "microphone"], origin=server.url)
    page = context.new_page()
    page.goto(server.url + "/", timeout=SLOW)
    page.locator(".course-chat .course-prompt-area").wait_for(timeout=SLOW)
    page.locator(".course-chat-status", has_text="Conectado").wait_for(timeout=SLOW)
    return context, page


@pytest.fixture(scope="module")
def page(browser, chat_server):  # noqa: F811 - imported fixture
    context, page = open_chat(browser, chat_server)
    yield page
    context.close()


def drop(page, target: str, b64: str, name: str, mime: str) -> None:
    transfer = page.evaluate_handle(DATA_TRANSFER, [b64, name, mime])
    for event in ("dragenter", "dragover"):
        page.dispatch_event(target, event, {"dataTransfer": transfer})
    assert "course-drop-target" in page.locator(".course-chat").get_attribute("class")  # the chat is outlined
    page.dispatch_event(target, "drop", {"dataTransfer": transfer})


def test_pasted_image_shows_a_thumbnail_that_the_keyboard_removes(page, ollama_double):
    area = page.get_by_role("textbox", name="Tu pregunta")
    expect(area).to_have_accessible_description(re.compile(r"pégala aquí \(Ctrl\+V\) o arrástrala al chat"))
    area.fill("Antes de pegar")
    page.evaluate(COPY_IMAGE, png_b64(PHOTO))
    area.focus()
    page.keyboard.press("Control+V")
    thumbnail = page.locator(".course-chat-attachment img")
    thumbnail.wait_for(timeout=SLOW)
    assert area.input_value() == "Antes de pegar"  # the image did not land in the text as a name
    page.keyboard.press("Shift+Tab")  # from the text area, back to the attachment's remove control
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "Quitar imagen"
    page.keyboard.press("Enter")
    thumbnail.wait_for(state="hidden", timeout=SLOW)
    area.press("Enter")
    page.locator(".course-assistant", has_text="Antes de pegar").wait_for(timeout=SLOW)
    assert "images" not in ollama_double.chats()[-1]["messages"][-1]


def test_pasted_image_reaches_the_model(page, ollama_double):
    page.evaluate(COPY_IMAGE, png_b64(PHOTO))
    area = page.locator(".course-prompt-area")
    area.focus()
    page.keyboard.press("Control+V")
    page.locator(".course-chat-attachment img").wait_for(timeout=SLOW)
    area.fill("¿Qué hay en la captura?")
    area.press("Enter")
    page.locator(".course-assistant", has_text="Imágenes: JPEG").last.wait_for(timeout=SLOW)
    sent = ollama_double.chats()[-1]["messages"][-1]
    assert len(sent["images"]) == 1
    assert Image.open(io.BytesIO(base64.b64decode(sent["images"][0]))).size == Image.open(PHOTO).size


def test_image_dropped_on_the_conversation_is_sent_with_the_question(page, ollama_double):
    drop(page, ".course-chat-pane", base64.b64encode(PHOTO.read_bytes()).decode(), "gato.jpg", "image/jpeg")
    page.locator(".course-chat-attachment img").wait_for(timeout=SLOW)
    assert "course-drop-target" not in page.locator(".course-chat").get_attribute("class")
    area = page.locator(".course-prompt-area")
    area.fill("¿Qué animal es?")
    area.press("Enter")
    page.locator(".course-assistant", has_text="¿Qué animal es?").wait_for(timeout=SLOW)
    sent = ollama_double.chats()[-1]["messages"][-1]
    assert Image.open(io.BytesIO(base64.b64decode(sent["images"][0]))).size == Image.open(PHOTO).size
    assert not page.locator(".course-chat-attachment").is_visible()


def test_dropped_file_that_is_not_an_image_is_explained_in_spanish(page):
    errors = page.locator(".course-error").count()
    drop(page, ".course-prompt-area", base64.b64encode(b"apuntes de clase").decode(), "notas.txt", "text/plain")
    error = page.locator(".course-error").nth(errors)
    error.wait_for(timeout=SLOW)
    assert "«notas.txt»" in error.inner_text() and "no es una imagen" in error.inner_text()
    assert not page.locator(".course-chat-attachment").is_visible()


def test_an_image_too_large_for_the_kernel_connection_is_refused_and_the_chat_keeps_working(page, ollama_double):
    """Over 8 MB the browser sends only the name and size: a 10 MiB message would close the kernel's websocket."""
    errors = page.locator(".course-error").count()
    transfer = page.evaluate_handle(
        "(size) => { const t = new DataTransfer();"
        " t.items.add(new File([new Uint8Array(size)], 'enorme.jpg', { type: 'image/jpeg' })); return t; }",
        12 * 2**20,
    )
    for event in ("dragenter", "dragover", "drop"):
        page.dispatch_event(".course-chat-pane", event, {"dataTransfer": transfer})
    error = page.locator(".course-error").nth(errors)
    error.wait_for(timeout=SLOW)
    assert "«enorme.jpg»: ocupa 12,0 MB" in error.inner_text() and "8 MB" in error.inner_text()
    area = page.locator(".course-prompt-area")
    area.fill("¿Sigues ahí?")
    area.press("Enter")
    page.locator(".course-assistant", has_text="¿Sigues ahí?").wait_for(timeout=SLOW)


def test_recording_shows_level_and_clock_and_stops_at_the_limit(page, artifacts):
    page.locator(".course-prompt-area").fill("")
    language = page.get_by_label("Idioma hablado")
    assert language.input_value() == "es"  # Spanish by default
    language.select_option("en")
    page.get_by_role("button", name=re.compile("Grabar")).click()
    meter = page.get_by_role("meter", name="Nivel del micrófono")
    meter.wait_for(timeout=SLOW)
    page.wait_for_function(  # the fake microphone's speech moves the meter
        "() => Number(document.querySelector('.course-rec-meter').getAttribute('aria-valuenow')) > 20",
        timeout=SLOW,
    )
    clock = page.get_by_role("timer")
    assert re.fullmatch(rf"0:0\d / 0:0{LIMIT_SECONDS}", clock.inner_text()), clock.inner_text()
    page.wait_for_function("() => document.querySelector('.course-rec-clock').textContent.startsWith('0:02')")
    page.locator(".course-chat").screenshot(path=str(artifacts / "chat_recording_level.png"))
    # nobody presses Detener: the recorder stops by itself at the limit, and says so
    page.locator(".course-rec-note", has_text="Se llegó al máximo de 0:04").wait_for(timeout=SLOW)
    assert not meter.is_visible()
    status = page.locator(".course-chat-status", has_text="Transcripción lista")
    status.wait_for(timeout=SLOW)
    assert "(inglés)" in status.inner_text() and "llegó al máximo" in status.inner_text()
    assert page.locator(".course-prompt-area").input_value().strip()
    language.select_option("es")


def test_a_recording_without_voice_writes_nothing(browser, chat_server, tmp_path):  # noqa: F811
    chromium = fan_browser(browser, tmp_path)
    try:
        context, page = open_chat(chromium, chat_server)
        area = page.locator(".course-prompt-area")
        area.fill("Mi pregunta escrita")
        record(page, 2.5)
        page.locator(".course-error", has_text="No se oyó ninguna voz").wait_for(timeout=SLOW)
        assert area.input_value() == "Mi pregunta escrita"
        assert "Transcripción lista" not in page.locator(".course-chat-status").inner_text()
        context.close()
    finally:
        chromium.close()


@pytest.mark.slow
def test_real_whisper_base_writes_the_spoken_question_and_nothing_for_a_fan(
    browser,  # noqa: F811 - imported fixture
    jupyter_env,  # noqa: F811 - imported fixture
    tmp_path,
    artifacts,
):
    """The whole path with the real base weights: Chromium's Opus recording, the detector, Whisper."""
    from course_utils import speech

    checkpoint = speech.whisper_checkpoint_from_ct2(speech.ct2_from_parts())
    server = start_voila(tmp_path, dict(jupyter_env, COURSE_WHISPER_MODEL=str(checkpoint)))
    chromium = fan_browser(browser, tmp_path)
    try:
        context, page = open_chat(browser, server)  # its microphone says «Describe la imagen que te envío…»
        record(page, 3)
        page.locator(".course-chat-status", has_text="Transcripción lista").wait_for(timeout=SLOW)
        text = page.locator(".course-prompt-area").input_value()
        (artifacts / "dictation_browser.txt").write_text(
            f"Chromium (Opus) + Whisper base: {text!r}\n", encoding="utf-8"
        )
        assert "imagen" in text.lower() and "modelo de prueba" not in page.locator(".course-chat-status").inner_text()
        context.close()
        context, page = open_chat(chromium, server)
        record(page, 3)
        page.locator(".course-error", has_text="No se oyó ninguna voz").wait_for(timeout=SLOW)
        assert page.locator(".course-prompt-area").input_value() == ""
        context.close()
    finally:
        chromium.close()
        server.stop()


def test_jupyterlab_takes_pasted_and_dropped_images_and_shows_the_meter(browser, lab, ollama_double):  # noqa: F811
    """In JupyterLab, Ctrl+V and a drop must reach the chat, not the notebook (which pastes cells and
    uploads dropped files)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab.url)
    page = context.new_page()
    try:
        page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}", timeout=SLOW)
        page.wait_for_function(KERNEL_IDLE, timeout=SLOW)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.locator(".course-chat-status", has_text="Conectado").wait_for(timeout=SLOW)
        cells = page.locator(".jp-Notebook .jp-Cell").count()
        area = page.locator(".course-chat .course-prompt-area")
        page.evaluate(COPY_IMAGE, png_b64(PHOTO))
        area.focus()
        page.keyboard.press("Control+V")
        thumbnail = page.locator(".course-chat-attachment img")
        thumbnail.wait_for(timeout=SLOW)
        page.get_by_role("button", name="Quitar imagen").click()
        thumbnail.wait_for(state="hidden", timeout=SLOW)
        drop(page, ".course-chat-pane", base64.b64encode(PHOTO.read_bytes()).decode(), "gato.jpg", "image/jpeg")
        thumbnail.wait_for(timeout=SLOW)
        assert page.locator(".jp-Notebook .jp-Cell").count() == cells  # no cell pasted, no file opened
        area.fill("¿Qué animal es?")
        area.press("Enter")
        page.locator(".course-assistant", has_text="Imágenes: JPEG").wait_for(timeout=SLOW)
        assert len(ollama_double.chats()[-1]["messages"][-1]["images"]) == 1

        assert page.get_by_label("Idioma hablado").input_value() == "es"
        page.get_by_role("button", name=re.compile("Grabar")).click()
        page.wait_for_function(
            "() => Number(document.querySelector('.course-rec-meter').getAttribute('aria-valuenow')) > 20",
            timeout=SLOW,
        )
        assert re.fullmatch(r"0:\d\d / 1:00", page.get_by_role("timer").inner_text())  # the default limit
        page.get_by_role("button", name=re.compile("Detener")).click()
        page.locator(".course-chat-status", has_text="Transcripción lista (español)").wait_for(timeout=SLOW)
    finally:
        context.close()
