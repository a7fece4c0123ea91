"""Rich answers in a real browser: code highlighted on the server with its copy button, and maths drawn by
Chromium from MathML, in the chat of JupyterLab and of the Voilà page (Debian's Chromium driven by Playwright).

The servers and the browser come from tests/test_browser.py's fixtures.
"""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe

from tests.test_browser import (  # noqa: F401 - fixtures used by name
    BROWSER_MARKS,
    KERNEL_IDLE,
    NOTEBOOK,
    SLOW,
    browser,
    clipboard,
    finished_answer,
    jupyter_env,
    lab,
    saved_conversations_cleaned,
    voila,
)

pytestmark = BROWSER_MARKS

CODE = 'def media(xs):\n    """Cuesta $5 y $10."""\n    return sum(xs) / len(xs)  # <b>no</b> es HTML\n'
ANSWER = (
    "La media es $\\bar{x} = \\frac{1}{n}\\sum_{i=1}^{n} x_i$ y en Python:\n\n"
    f"```python\n{CODE}```\n\n"
    "La varianza:\n\n$$\\sigma^2 = \\frac{1}{n}\\sum_{i=1}^{n} (x_i - \\bar{x})^2$$\n\nfin del ejemplo."
)
KEYWORD_COLOUR = "rgb(169, 13, 145)"  # Pygments' xcode keyword colour, from safe_html.css

# Where a fraction's numerator and denominator are drawn: one above the other only if MathML is laid out.
FRACTION_BOXES = """math => { const f = math.querySelector('mfrac');
  const [top, bottom] = [...f.children].map(c => c.getBoundingClientRect());
  return {numeratorBottom: top.bottom, denominatorTop: bottom.top, width: math.getBoundingClientRect().width}; }"""


def ask_for_the_rich_answer(page, ollama_double):
    """Sends a question whose answer has maths and a code block; checks the fence is shown as a code block
    while it is still open; returns the finished answer."""
    area = page.locator(".course-chat .course-prompt-area")
    area.wait_for(timeout=SLOW)
    ollama_double.replies.append(ANSWER)
    ollama_double.chunk_delay = 0.2  # slow enough to see the open code fence while it streams
    try:
        area.fill("Explícame la media")
        area.press("Enter")
        page.wait_for_function(
            "() => { const a = [...document.querySelectorAll('.course-assistant')].pop();"
            " return a && a.querySelector('.course-code') && !a.innerText.includes('La varianza'); }",
            timeout=SLOW,
        )
    finally:
        ollama_double.chunk_delay = 0.0
    return finished_answer(page, "fin del ejemplo")


def check_the_rich_answer(page, answer, screenshot):
    code = answer.locator(".course-code")
    assert code.count() == 1
    assert code.locator("span.sd").count() == 1 and code.locator("b").count() == 0
    answer.scroll_into_view_if_needed()
    answer.screenshot(path=str(screenshot))
    code.get_by_role("button", name="Copiar código").click()
    assert clipboard(page) == CODE  # the code as written, without the highlighting's markup

    inline, block = answer.locator('math[display="inline"]'), answer.locator('math[display="block"]')
    assert inline.count() == 1 and block.count() == 1
    for math in (inline, block):
        boxes = math.evaluate(FRACTION_BOXES)
        assert boxes["width"] > 0 and boxes["numeratorBottom"] <= boxes["denominatorTop"], boxes
    assert "$5 y $10" in code.inner_text() and "$" not in answer.locator("p").first.inner_text()

    audit = Axe().run(page, context=".course-assistant").response["violations"]
    assert [(v["id"], v["impact"]) for v in audit if v["impact"] in ("serious", "critical")] == []
    keyword = code.locator("span.k", has_text="def")
    assert keyword.evaluate("k => getComputedStyle(k).color") == KEYWORD_COLOUR, (
        "safe_html.css is not loaded: the chat's style widget must carry it next to chat.css"
    )


def test_code_and_maths_in_jupyterlab(browser, lab, ollama_double, artifacts):  # noqa: F811 - imported fixtures
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab.url)
    page = context.new_page()
    try:
        page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}", timeout=SLOW)
        page.wait_for_function(KERNEL_IDLE, timeout=SLOW)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        answer = ask_for_the_rich_answer(page, ollama_double)
        check_the_rich_answer(page, answer, artifacts / "chat_rich_answer_lab.png")
    finally:
        context.close()


def test_code_and_maths_in_voila(browser, voila, ollama_double, artifacts):  # noqa: F811 - imported fixtures
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=voila.url)
    page = context.new_page()
    try:
        page.goto(voila.url + "/", timeout=SLOW)
        page.locator(".course-chat-status", has_text="Conectado").wait_for(timeout=SLOW)
        answer = ask_for_the_rich_answer(page, ollama_double)
        check_the_rich_answer(page, answer, artifacts / "chat_rich_answer_voila.png")
        check_hostile_code_and_maths_stay_inert(page, ollama_double)
    finally:
        context.close()


HOSTILE = (
    "Fórmula $\\href{javascript:window.__xss=1}{clic}$ y $\\text{<img src=x onerror=window.__xss=2>}$.\n\n"
    '```"><img src=x onerror=window.__xss=3>\n</code></pre><script>window.__xss=4</script>\n```\n\nfin hostil'
)


def check_hostile_code_and_maths_stay_inert(page, ollama_double):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    ollama_double.replies.append(HOSTILE)
    area = page.locator(".course-chat .course-prompt-area")
    area.fill("Repite esto")
    area.press("Enter")
    answer = finished_answer(page, "fin hostil")
    assert answer.locator("script, img, [onerror], [href^='javascript']").count() == 0
    assert "window.__xss=4" in answer.locator("pre").inner_text()  # the code is shown as code
    for target in (answer.locator("math").first, answer.locator("pre")):
        target.click()
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__xss") is None and dialogs == []
