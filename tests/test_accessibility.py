"""Accessibility of the chat in a real browser, in Voilà and in JupyterLab (the course's notebook 08).

axe-core (bundled by the axe-playwright-python package, no network) audits the chat's element in the states
a student sees: a conversation with an image and an error, a pending attachment, a recording with its level
meter. No serious or critical violation may remain; every finding, minor ones included, is written to
test-artifacts/axe_chat_<page>.txt. The keyboard alone must reach every control of the chat, and the
status line must be a live region (role=status), so that a screen reader says what the chat reports.
"""

from __future__ import annotations

import base64
import re

from axe_playwright_python.sync_playwright import Axe

from course_utils.samples import sample_path
from tests.test_browser import (  # noqa: F401 - fixtures used by name
    BROWSER_MARKS,
    NOTEBOOK,
    SLOW,
    browser,
    jupyter_env,
    lab,
    saved_conversations_cleaned,
    voila,
)
from tests.test_browser_input import drop

pytestmark = BROWSER_MARKS

BLOCKING = ("serious", "critical")
KERNEL_IDLE = (
    "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
    " return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
    " && w.sessionContext.session.kernel.status === 'idle'); }"
)
# Every control a student needs, by role and accessible name: the keyboard must reach each one.
CONTROLS = [
    ("combobox", "Modelo"),
    ("slider", "Temperatura"),
    ("textbox", "Tu pregunta"),
    ("button", "Enviar"),
    ("button", "Quitar imagen"),
    ("button", "Adjuntar imagen"),
    ("button", "Grabar"),
    ("combobox", "Idioma hablado"),
    ("button", "Borrar conversación"),
    ("button", "Exportar"),
]
PHOTO = sample_path("gato.jpg")


def audit(page, state: str, findings: list[str]) -> list[dict]:
    """axe-core on the chat's element; every finding goes to the report, the blocking ones are returned."""
    results = Axe().run(page, context=".course-chat")
    for v in results.response["violations"]:
        targets = "; ".join(", ".join(map(str, node["target"])) for node in v["nodes"])
        findings.append(f"[{state}] {v['id']} ({v['impact']}): {v['help']} — {len(v['nodes'])} nodo(s): {targets}")
    return [v for v in results.response["violations"] if v["impact"] in BLOCKING]


def walk_with_tab(page, start) -> None:
    """Press Tab from `start` until focus leaves the chat, marking each element it lands on."""
    start.focus()
    for step in range(60):
        inside = page.evaluate(
            "(step) => { const a = document.activeElement; if (!a || !a.closest('.course-chat')) return false;"
            " a.setAttribute('data-tab-step', String(step)); return true; }",
            step,
        )
        if not inside:
            return
        page.keyboard.press("Tab")


def unreached(page) -> list[str]:
    """The CONTROLS the Tab walk did not land on (or that have no such accessible name)."""
    chat = page.locator(".course-chat")
    missing = []
    for role, name in CONTROLS:
        control = chat.get_by_role(role, name=re.compile(re.escape(name)))
        if not control.count():
            missing.append(f"{role} «{name}» (no hay ninguno con ese nombre accesible)")
        elif control.first.get_attribute("data-tab-step") is None:
            missing.append(f"{role} «{name}»")
    return missing


def exercise_and_audit(page, ollama_double, findings: list[str]) -> tuple[list[dict], list[str]]:
    """Put the chat in each state a student sees and audit it there; walk it with Tab. Returns the blocking
    violations and the controls the keyboard did not reach."""
    blocking = audit(page, "vacío", findings)
    area = page.locator(".course-chat .course-prompt-area")
    drop(page, ".course-chat-pane", base64.b64encode(PHOTO.read_bytes()).decode(), "gato.jpg", "image/jpeg")
    page.locator(".course-chat-attachment img").wait_for(timeout=SLOW)
    ollama_double.replies.append("Un **gato** atigrado.\n\n```python\nprint('miau')\n```\n\nY $x^2$ al final.")
    area.fill("¿Qué animal es?")
    area.press("Enter")
    page.locator(".course-assistant", has_text="al final").wait_for(timeout=SLOW)
    ollama_double.failures.append((500, "model runner has unexpectedly stopped"))
    area.fill("Esta fallará")
    area.press("Enter")
    page.locator(".course-error").last.wait_for(timeout=SLOW)
    drop(page, ".course-chat-pane", base64.b64encode(PHOTO.read_bytes()).decode(), "gato.jpg", "image/jpeg")
    page.locator(".course-chat-attachment img").wait_for(timeout=SLOW)
    blocking += audit(page, "conversación, imagen adjunta y error", findings)

    walk_with_tab(page, page.locator(".course-chat select").first)
    missing = unreached(page)
    if not page.locator(".course-chat-status [role='status']").count():  # else a screen reader never hears it
        missing.append("la línea de estado como región viva (role=status)")

    page.get_by_role("button", name=re.compile("Grabar")).click()
    page.get_by_role("meter", name="Nivel del micrófono").wait_for(timeout=SLOW)
    blocking += audit(page, "grabando", findings)
    page.get_by_role("button", name=re.compile("Detener")).click()
    page.locator(".course-chat-status", has_text=re.compile("Transcripción lista|Algo falló")).wait_for(timeout=SLOW)
    return blocking, missing


def report(artifacts, name: str, findings: list[str]) -> None:
    text = "\n".join(findings) if findings else "Sin hallazgos."
    (artifacts / f"axe_chat_{name}.txt").write_text(f"axe-core en .course-chat ({name})\n{text}\n", encoding="utf-8")


def explain(blocking: list[dict], missing: list[str]) -> str:
    lines = [
        f"{v['id']} ({v['impact']}): {v['help']} → " + " | ".join(n["html"][:160] for n in v["nodes"][:4])
        for v in blocking
    ]
    return "\n".join(lines + [f"Falta: {', '.join(missing)}"] * bool(missing))


def test_voila_chat_has_no_serious_accessibility_violation(browser, voila, ollama_double, artifacts):  # noqa: F811
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    findings: list[str] = []
    try:
        page.goto(voila.url + "/", timeout=SLOW)
        page.locator(".course-chat-status", has_text="Conectado").wait_for(timeout=SLOW)
        blocking, missing = exercise_and_audit(page, ollama_double, findings)
    finally:
        report(artifacts, "voila", findings)
        context.close()
    assert not blocking and not missing, explain(blocking, missing)


def test_jupyterlab_chat_has_no_serious_accessibility_violation(browser, lab, ollama_double, artifacts):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    page = context.new_page()
    findings: list[str] = []
    try:
        page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}", timeout=SLOW)
        page.wait_for_function(KERNEL_IDLE, timeout=SLOW)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.locator(".course-chat-status", has_text="Conectado").wait_for(timeout=SLOW)
        blocking, missing = exercise_and_audit(page, ollama_double, findings)
    finally:
        report(artifacts, "lab", findings)
        context.close()
    assert not blocking and not missing, explain(blocking, missing)
