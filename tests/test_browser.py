"""The chat in a real browser: Debian's Chromium driven by Playwright, JupyterLab and Voilà on loopback.

The kernels reach the Ollama double through OLLAMA_HOST (exported by the harness before the servers
start). Chromium's fake microphone plays a sample wav, so recording works headless. Headless Chromium
has no speech voices: the Voilà page gets a stand-in speech engine (SPEECH_STAND_IN) that starts with
none, like the real one, and records what it is asked to read; the JupyterLab page keeps the real one.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from course_utils.samples import sample_path
from tests.ollama_double import PREFIX

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "08_chat_multimodal.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MIC_SAMPLE = sample_path("describe_imagen.wav")
SLOW = 120_000  # ms: first kernel start, torch and Whisper imports on a busy 2-core machine
SAVED = ROOT / "notebooks" / "conversaciones"  # where the notebook's chat saves (ChatWidget's default)
DEMO_SAVED = ROOT / "demos" / "conversaciones"  # the demo page's chat: a folder of its own for each start
# The browser's speech engine, for the page only: no voices until the test adds a Spanish and an English one;
# it records each utterance (text, language, voice) instead of playing it.
SPEECH_STAND_IN = """(() => {
  const events = new EventTarget();
  const spoken = [];
  let voices = [];
  class Utterance extends EventTarget {
    constructor(text) { super(); this.text = text; this.lang = ""; this.voice = null; }
  }
  const engine = {
    speaking: false,
    getVoices: () => voices,
    speak(u) {
      spoken.push({ text: u.text, lang: u.lang, voice: u.voice && u.voice.lang });
      this.speaking = true;
      setTimeout(() => { this.speaking = false; u.dispatchEvent(new Event("end")); }, 200);
    },
    cancel() { this.speaking = false; },
    addEventListener: (...a) => events.addEventListener(...a),
    removeEventListener: (...a) => events.removeEventListener(...a),
  };
  Object.defineProperty(window, "speechSynthesis", { value: engine, configurable: true });
  window.SpeechSynthesisUtterance = Utterance;
  window.__speech = {
    spoken,
    addVoices() {
      voices = [{ name: "English", lang: "en-US" }, { name: "Español", lang: "es-ES" }];
      events.dispatchEvent(new Event("voiceschanged"));
    },
  };
})();"""

BROWSER_MARKS = [  # every browser test file uses these
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=(
            "AVISO: NO HAY /usr/bin/chromium: SE SALTAN LAS PRUEBAS DE NAVEGADOR DEL CHAT. "
            "Instálalo con `make browser` (sudo apt-get install chromium)."
        ),
    ),
]
pytestmark = BROWSER_MARKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A JupyterLab or Voilà process on loopback, its log in a file, stopped at the end."""

    def __init__(self, cmd: list[str], url: str, log: Path, env: dict):
        self.url, self.log = url, log
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def wait_ready(self, path: str, timeout: float = 90) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(self.url + path, timeout=5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        pytest.fail(f"El servidor no arrancó ({self.url}). Registro:\n{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def jupyter_env(tmp_path_factory) -> dict:
    """Throwaway Jupyter config, data and runtime dirs (the venv's share/jupyter stays on the path)."""
    home = tmp_path_factory.mktemp("jupyter")
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        env[name] = str(home / name.lower())
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    # No «Would you like to get notified about official Jupyter news?» toast over the screenshots.
    labconfig = Path(env["JUPYTER_CONFIG_DIR"]) / "labconfig"
    labconfig.mkdir(parents=True)
    disabled = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
    (labconfig / "page_config.json").write_text(json.dumps(disabled), encoding="utf-8")
    return env


def demo_command(demo: str, port: int, env: dict) -> tuple[list[str], dict]:
    """`make demo DEMO=<demo>`'s own command line (the Voilà line of its recipe), on `port` instead of 3000."""
    recipe = re.search(r"^demo:.*\n(?:\t.*\n)*?\t(.*/voila .+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    line = recipe.replace("$(VENV)", str(Path(sys.executable).parent.parent)).replace("$(CURDIR)", str(ROOT))
    words = shlex.split(line.replace("$(DEMO)", demo).replace("3000", str(port)))
    env = dict(env)
    while "=" in words[0] and not words[0].startswith("-"):  # NAME=value before the command
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    assert "--Voila.ip=127.0.0.1" in words and "--no-browser" in words
    return words, env


@pytest.fixture(scope="module")
def voila(jupyter_env, tmp_path_factory):
    """`make demo`'s own command line, on a free port instead of 3000."""
    port = free_port()
    cmd, env = demo_command("chat", port, jupyter_env)
    server = Server(cmd, f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("voila") / "voila.log", env)
    yield server.wait_ready("/voila/static/voila.js")  # a static file: the notebook runs only for the page
    server.stop()


@pytest.fixture(scope="module")
def lab(jupyter_env, tmp_path_factory):
    port, token = free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        f"--ServerApp.port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={ROOT / 'notebooks'}",
        "--LabApp.expose_app_in_browser=True",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    server = Server(cmd, f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("lab") / "lab.log", jupyter_env)
    server.token = token
    yield server.wait_ready(f"/api/status?token={token}")
    server.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(  # a fresh temporary profile every launch
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS
            + [
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={MIC_SAMPLE}",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module", autouse=True)
def saved_conversations_cleaned():
    """The notebooks' chats save every turn next to the notebook: leave the checkout as it was."""
    before = {folder: set(folder.iterdir()) if folder.is_dir() else set() for folder in (SAVED, DEMO_SAVED)}
    yield
    for folder, old in before.items():
        for path in set(folder.iterdir()) - old if folder.is_dir() else ():
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


@pytest.fixture(scope="module")
def page(browser, voila):
    """The chat served by Voilà, one kernel shared by the interaction tests below, in order."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=voila.url)
    context.add_init_script(SPEECH_STAND_IN)
    page = context.new_page()
    page.goto(voila.url + "/", timeout=SLOW)
    page.locator(".course-chat .course-prompt-area").wait_for(timeout=SLOW)
    page.locator(".course-chat-status", has_text="Conectado").wait_for(timeout=SLOW)
    yield page
    context.close()


def prompt_value(page) -> str:
    return page.locator(".course-prompt-area").input_value()


def send(page, text: str) -> None:
    area = page.locator(".course-prompt-area")
    area.fill(text)
    area.press("Enter")


def last_answer(page):
    return page.locator(".course-assistant").last


def test_jupyterlab_opens_runs_and_chats(browser, lab, ollama_double, artifacts):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    try:
        page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}", timeout=SLOW)
        page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-NotebookPanel')", timeout=SLOW)
        page.wait_for_function(  # the kernel has started and is idle
            "() => { const w = window.jupyterapp.shell.currentWidget;"
            " return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
            " && w.sessionContext.session.kernel.status === 'idle'; }",
            timeout=SLOW,
        )
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        area = page.locator(".course-chat .course-prompt-area")
        area.wait_for(timeout=SLOW)
        area.fill("Hola desde JupyterLab")
        area.press("Enter")
        answer = page.locator(".course-assistant", has_text="Hola desde JupyterLab")
        answer.wait_for(timeout=SLOW)
        assert PREFIX in answer.inner_text()
        assert ollama_double.chats()[-1]["messages"][-1]["content"] == "Hola desde JupyterLab"
        assert area.input_value() == ""  # Enter sent the text instead of running the cell or adding a line
        page.locator(".course-chat").screenshot(path=str(artifacts / "chat_widget_lab.png"))
    finally:
        context.close()


KERNEL_IDLE = (
    "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
    " return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
    " && w.sessionContext.session.kernel.status === 'idle'; }"
)


def test_jupyterlab_keys_controls_and_restore_after_a_restart(browser, lab, ollama_double, artifacts):
    """In JupyterLab, Esc and ↑ belong to the chat (not to the notebook), the buttons work, and after
    restarting the kernel a new widget opens the autosaved conversation from the picker."""
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab.url)
    page = context.new_page()
    try:
        page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}", timeout=SLOW)
        page.wait_for_function(KERNEL_IDLE, timeout=SLOW)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        area = page.locator(".course-chat .course-prompt-area")
        area.wait_for(timeout=SLOW)
        ollama_double.replies += ["Respuesta en Lab", "Respuesta regenerada en Lab"]
        area.fill("Primera pregunta en Lab")
        area.press("Enter")
        answer = finished_answer(page, "Respuesta en Lab")
        assert re.search(r"tokens/s", answer.locator(".course-stats").inner_text())
        answer.get_by_role("button", name="Copiar la respuesta").click()
        assert clipboard(page) == "Respuesta en Lab"
        answer.get_by_role("button", name="Regenerar").click()
        finished_answer(page, "Respuesta regenerada en Lab")
        # The real speech engine: the buttons are shown exactly when the browser has voices.
        voices = page.evaluate("() => window.speechSynthesis ? window.speechSynthesis.getVoices().length : 0")
        assert page.locator(".course-speak").last.is_visible() == (voices > 0)

        area.fill("")
        area.press("ArrowUp")
        page.wait_for_function(
            "() => document.querySelector('.course-prompt-area').value === 'Primera pregunta en Lab'", timeout=SLOW
        )
        area.fill("Pregunta editada en Lab")
        area.press("Enter")
        finished_answer(page, "Pregunta editada en Lab")

        ollama_double.replies.append(" ".join(f"lab{i}" for i in range(40)))
        ollama_double.chunk_delay = 0.5
        area.fill("Cuenta despacio en Lab")
        area.press("Enter")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.course-assistant')].pop().innerText.includes('lab3')", timeout=SLOW
        )
        area.press("Escape")
        page.locator(".course-assistant", has_text="lab3").last.locator(".course-stopped").wait_for(timeout=SLOW)
        assert page.evaluate("() => document.activeElement.classList.contains('course-prompt-area')")
        ollama_double.chunk_delay = 0.0
        page.wait_for_function(  # the stopped turn is saved too
            "() => document.querySelector('.course-chat-saved select').options.length > 1", timeout=SLOW
        )
        page.locator(".course-chat").screenshot(path=str(artifacts / "chat_controls_lab.png"))
        shown = page.locator(".course-chat-pane .course-bubble").count()

        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
        page.wait_for_timeout(1000)
        page.wait_for_function(KERNEL_IDLE, timeout=SLOW)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function(  # the new widget, empty, in place of the old one
            "() => document.querySelectorAll('.course-chat').length === 1"
            " && !document.querySelector('.course-chat-pane .course-bubble')"
            " && document.querySelector('.course-chat-saved select')",
            timeout=SLOW,
        )
        saved = max(SAVED.glob("*.json"), key=lambda p: p.stat().st_mtime)
        picker = page.locator(".course-chat-saved select")
        listed = "() => [...document.querySelectorAll('.course-chat-saved option')].some(o => o.text.includes(%r))"
        page.wait_for_function(listed % saved.name, timeout=SLOW)
        label = next(o for o in picker.locator("option").all_inner_texts() if saved.name in o)
        picker.select_option(label=label)
        page.get_by_role("button", name="Abrir").click()
        page.locator(".course-chat-status", has_text="recuperada").wait_for(timeout=SLOW)
        assert page.locator(".course-chat-pane .course-bubble").count() == shown
        assert page.locator(".course-user.course-replaced", has_text="Primera pregunta en Lab").count() == 2
    finally:
        context.close()


def test_answer_streams_and_stop_keeps_the_partial_text(page, ollama_double):
    words = [f"palabra{i}" for i in range(40)]
    ollama_double.replies.append(" ".join(words))
    ollama_double.chunk_delay = 0.5  # Parar is clicked long before the last word, even on a loaded machine
    send(page, "Cuenta despacio")
    answer = last_answer(page)
    page.wait_for_function(  # part of the answer is on screen while the rest is still coming
        "() => { const a = [...document.querySelectorAll('.course-assistant')].pop();"
        " return !!a && a.innerText.includes('palabra3') && !a.innerText.includes('palabra39'); }",
        timeout=SLOW,
    )
    send(page, "Me cuelo")  # ignored: an answer is streaming
    page.get_by_role("button", name="Parar").click()
    page.locator(".course-stopped").last.wait_for(timeout=SLOW)
    assert "palabra39" not in answer.inner_text()
    assert [c["messages"][-1]["content"] for c in ollama_double.chats()] == ["Cuenta despacio"]
    assert prompt_value(page) == "Me cuelo"  # the ignored text is still there to send later


def test_text_is_sent_with_shift_enter_as_new_line(page, ollama_double):
    area = page.locator(".course-prompt-area")
    area.fill("")
    area.type("Primera línea")
    area.press("Shift+Enter")
    area.type("segunda línea")
    assert prompt_value(page) == "Primera línea\nsegunda línea"
    area.press("Enter")
    page.locator(".course-assistant", has_text="segunda línea").wait_for(timeout=SLOW)
    assert ollama_double.chats()[-1]["messages"][-1]["content"] == "Primera línea\nsegunda línea"


def test_attached_image_reaches_the_model(page, ollama_double):
    photo = sample_path("gato.jpg")
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name=re.compile("Adjuntar imagen")).click()
    chooser.value.set_files(str(photo))
    page.locator(".course-chat-attachment img").wait_for(timeout=SLOW)
    send(page, "¿Qué animal ves?")
    page.locator(".course-assistant", has_text="Imágenes: JPEG").wait_for(timeout=SLOW)
    sent = ollama_double.chats()[-1]["messages"][-1]
    image = Image.open(io.BytesIO(base64.b64decode(sent["images"][0])))
    assert image.size == Image.open(photo).size
    assert page.locator(".course-user img.course-thumb").count() >= 1
    assert not page.locator(".course-chat-attachment").is_visible()


def test_server_error_is_shown_in_spanish_and_the_text_kept(page, ollama_double):
    ollama_double.failures.append((500, "model runner has unexpectedly stopped"))
    errors_before = page.locator(".course-error").count()
    send(page, "Esta pregunta fallará")
    page.locator(".course-error").nth(errors_before).wait_for(timeout=SLOW)
    assert prompt_value(page) == "Esta pregunta fallará"
    page.locator(".course-prompt-area").fill("")


def test_recording_with_the_fake_microphone_is_transcribed(page):
    page.locator(".course-prompt-area").fill("")
    page.get_by_role("button", name=re.compile("Grabar")).click()
    stop = page.get_by_role("button", name=re.compile("Detener"))
    stop.wait_for(timeout=SLOW)
    page.wait_for_timeout(2500)  # let the fake microphone play part of the sample
    stop.click()
    page.locator(".course-chat-status", has_text="Transcripción lista").wait_for(timeout=SLOW)
    assert prompt_value(page).strip()
    assert "modelo de prueba" in page.locator(".course-chat-status").inner_text().lower()


def test_answer_with_xss_payload_does_not_execute(page, ollama_double):
    ollama_double.replies.append(
        'Mira: <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
        '[a](javascript:window.__xss=3) <a href="javascript:window.__xss=4">b</a> fin'
    )
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    send(page, "Repite el texto")
    answer = page.locator(".course-assistant", has_text="Mira:")
    answer.wait_for(timeout=SLOW)
    page.locator(".course-assistant", has_text="fin").last.wait_for(timeout=SLOW)
    assert "onerror" in answer.inner_text()  # shown as text, not as an element
    assert answer.locator("script, img, [onerror]").count() == 0
    for link in answer.locator("a").all():
        link.click()
    answer.get_by_text("[a](javascript:").click()
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__xss") is None and dialogs == []


def test_export_offers_markdown_and_json_downloads(page):
    page.get_by_role("button", name="Exportar").click()
    link = page.locator(".course-chat a[download$='.json']")
    link.wait_for(timeout=SLOW)
    names = [a.get_attribute("download") for a in page.locator(".course-chat a[download]").all()]
    try:
        with page.expect_download() as download:
            link.click()
        data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
        assert {m["role"] for m in data["messages"]} == {"user", "assistant"}
        assert any(m["images"] for m in data["messages"])  # the image travels inside the JSON
        assert [n.rsplit(".", 1)[1] for n in names] == ["md", "json"]
    finally:  # the kernel wrote them next to the notebook: leave the checkout clean
        folder = ROOT / "notebooks" / "conversaciones"
        for name in names:
            (folder / name).unlink(missing_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def finished_answer(page, text: str):
    """The answer bubble containing `text`, once it has finished (its statistics are shown)."""
    answer = page.locator(".course-assistant", has_text=text).last
    answer.locator(".course-stats").wait_for(timeout=SLOW)
    return answer


def clipboard(page) -> str:
    return page.evaluate("() => navigator.clipboard.readText()")


def test_answers_show_their_statistics(page, ollama_double):
    send(page, "¿Cuántos tokens?")
    stats = finished_answer(page, "¿Cuántos tokens?").locator(".course-stats").inner_text()
    figures = r"[\d,]+ tokens/s · primer token en [\d,]+ s · carga del modelo [\d,]+ s · \d+ tokens"
    assert re.fullmatch(figures, stats), stats


def test_copy_buttons_copy_messages_and_code_blocks(page, ollama_double):
    ollama_double.replies.append("**Negrita** y `código`")
    send(page, "Copia esto")
    answer = finished_answer(page, "Negrita")
    button = answer.get_by_role("button", name="Copiar la respuesta")
    button.click()
    answer.locator("button.course-copied", has_text="Copiado").wait_for(timeout=10_000)  # after the clipboard's yes
    assert clipboard(page) == "**Negrita** y `código`"  # the Markdown as it arrived
    page.locator(".course-user", has_text="Copia esto").last.get_by_role("button", name="Copiar").click()
    assert clipboard(page) == "Copia esto"
    # A code block as the renderer writes it (issue 15's contract), inserted here so that the handler is
    # tested on its own: scope, source, its own button.
    answer.evaluate(
        """a => a.querySelector('.course-body').insertAdjacentHTML('beforeend',
        '<div class="course-code course-copy-scope"><button type="button" class="course-copy" '
        + 'aria-label="Copiar código">Copiar</button><pre class="course-copy-source">x = 1\\nprint(x)</pre></div>')"""
    )
    answer.get_by_role("button", name="Copiar código").click()
    assert clipboard(page) == "x = 1\nprint(x)"
    page.wait_for_function("() => !document.querySelector('button.course-copied')")  # «Copiado» goes away


def test_read_aloud_is_hidden_without_voices_and_reads_in_spanish(page):
    answer = page.locator(".course-assistant", has_text="Negrita").last
    speak = answer.locator(".course-speak")
    assert speak.count() == 1 and not speak.is_visible()  # the browser has no voices yet
    page.evaluate("() => window.__speech.addVoices()")
    speak.wait_for(state="visible", timeout=10_000)
    assert speak.get_attribute("aria-label") == "Leer la respuesta en voz alta"
    speak.focus()
    page.keyboard.press("Enter")  # reachable and usable from the keyboard
    page.wait_for_function("() => window.__speech.spoken.length === 1", timeout=10_000)
    spoken = page.evaluate("() => window.__speech.spoken[0]")
    assert spoken["lang"] == "es-ES" and spoken["voice"] == "es-ES"
    # What the student sees, the code block inserted above included: no Markdown marks, no buttons' labels.
    assert spoken["text"] == "Negrita y código x = 1 print(x)"


def test_regenerate_keeps_the_replaced_answer_on_screen(page, ollama_double):
    ollama_double.replies += ["Respuesta A", "Respuesta B"]
    send(page, "Pregunta para regenerar")
    first = finished_answer(page, "Respuesta A")
    first.get_by_role("button", name="Regenerar").focus()
    page.keyboard.press("Enter")
    finished_answer(page, "Respuesta B")
    old = page.locator(".course-assistant.course-replaced", has_text="Respuesta A")
    assert old.is_visible() and "(respuesta sustituida)" in old.inner_text()
    assert old.get_by_role("button", name="Regenerar").count() == 0
    sent = ollama_double.chats()[-1]["messages"]
    assert sent[-1]["content"] == "Pregunta para regenerar"
    assert "Respuesta A" not in [m["content"] for m in sent]  # the replaced turn is not sent again


def test_arrow_up_in_the_empty_box_edits_the_last_question(page, ollama_double):
    area = page.locator(".course-prompt-area")
    area.fill("")
    area.press("ArrowUp")
    page.wait_for_function(
        "() => document.querySelector('.course-prompt-area').value === 'Pregunta para regenerar'", timeout=SLOW
    )
    assert "Editando" in page.locator(".course-chat-status").inner_text()
    area.fill("Pregunta editada")
    area.press("Enter")
    finished_answer(page, "Pregunta editada")
    assert page.locator(".course-user.course-replaced", has_text="Pregunta para regenerar").count() == 2
    sent = [m["content"] for m in ollama_double.chats()[-1]["messages"]]
    assert sent[-1] == "Pregunta editada" and "Pregunta para regenerar" not in sent
    area.fill("Algo a medias")
    area.press("ArrowUp")  # the box is not empty: the arrow moves the cursor, nothing is replaced
    page.wait_for_timeout(500)
    assert prompt_value(page) == "Algo a medias"
    area.fill("")


def test_escape_stops_the_answer(page, ollama_double):
    ollama_double.replies.append(" ".join(f"lenta{i}" for i in range(40)))
    ollama_double.chunk_delay = 0.5
    send(page, "Otra cuenta despacio")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.course-assistant')].pop().innerText.includes('lenta3')", timeout=SLOW
    )
    page.locator(".course-prompt-area").press("Escape")
    stopped = page.locator(".course-assistant", has_text="lenta3").last.locator(".course-stopped")
    stopped.wait_for(timeout=SLOW)
    assert "detenida" in stopped.inner_text()
    assert "lenta39" not in last_answer(page).inner_text()


def test_conversation_is_autosaved_and_restored_from_the_picker(page, artifacts):
    saved = max(DEMO_SAVED.rglob("*.json"), key=lambda p: p.stat().st_mtime)
    data = json.loads(saved.read_text(encoding="utf-8"))
    assert data["autosave"] and data["messages"][-1]["stopped"]  # saved after the last turn, stopped included
    assert any(m.get("replaced") for m in data["messages"]) and any(m.get("stats") for m in data["messages"])
    shown = page.locator(".course-chat-pane .course-bubble:not(.course-error)").count()
    page.get_by_role("button", name="Borrar conversación").click()
    page.wait_for_function("() => !document.querySelector('.course-chat-pane .course-bubble')", timeout=SLOW)
    picker = page.locator(".course-chat-saved select")
    label = next(o for o in picker.locator("option").all_inner_texts() if saved.name in o)
    picker.select_option(label=label)
    page.get_by_role("button", name="Abrir").click()
    page.locator(".course-chat-status", has_text="recuperada").wait_for(timeout=SLOW)
    # an answer where nothing arrived has no bubble, live or restored (its red message said why)
    with_bubble = [m for m in data["messages"] if m["role"] == "user" or m["content"]]
    assert page.locator(".course-chat-pane .course-bubble").count() == len(with_bubble) == shown
    assert page.locator(".course-replaced").count() >= 2
    page.locator(".course-chat").screenshot(path=str(artifacts / "chat_controls.png"))


def test_screenshot_shows_a_usable_chat(page, ollama_double, artifacts):
    send(page, "¿Se ve el último mensaje?")
    page.locator(".course-assistant", has_text="el último mensaje").wait_for(state="attached", timeout=SLOW)
    page.wait_for_function(  # the conversation follows the newest message
        "() => { const p = document.querySelector('.course-chat-pane');"
        " return p.scrollHeight > p.clientHeight && p.scrollHeight - p.scrollTop - p.clientHeight < 4; }",
        timeout=10_000,
    )
    page.locator(".course-prompt-area").fill("¿Qué es un transformer de visión?")
    chat = page.locator(".course-chat")
    for label in ("Enviar", "Parar", "Borrar conversación", "Exportar"):
        assert chat.get_by_role("button", name=label).is_visible()
    assert chat.get_by_text("Adjuntar imagen").is_visible()
    chat.screenshot(path=str(artifacts / "chat_widget.png"))
    assert (artifacts / "chat_widget.png").stat().st_size > 10_000
