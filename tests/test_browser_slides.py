"""Lesson 03 as slides in a real browser (jupyterlab-rise in Debian's Chromium, driven by Playwright): the
teacher opens /rise/03_vit_parches.ipynb, runs the cells live as the slides go (Shift+Enter) and moves on
with the keyboard; a matplotlib figure appears on its slide. The servers and the browser come from
tests/test_browser.py's fixtures; the kernel uses the test stand-ins (tests/harness.py)."""

from __future__ import annotations

from tests.test_browser import (  # noqa: F401 - fixtures used by name
    BROWSER_MARKS,
    SLOW,
    browser,
    jupyter_env,
    lab,
)

pytestmark = BROWSER_MARKS
LESSON = "03_vit_parches.ipynb"


FIGURE_SLIDE = "3. La imagen cortada en parches"  # the first matplotlib figure of the lesson
RUNNING = "[*]:"


def current_slide(page):
    return page.locator(".reveal .slides section.present").last


def run_selected_code(page) -> None:
    """Runs the code cell the slides have reached (RISE selects it), as the teacher does: Shift+Enter."""
    cell = page.locator(".reveal .jp-CodeCell.jp-mod-selected")
    if not cell.count() or cell.first.locator(".jp-InputArea-prompt").inner_text().strip() != "[ ]:":
        return
    handle = cell.first.element_handle()
    handle.query_selector(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(
        "(c) => /\\[\\d+\\]/.test(c.querySelector('.jp-InputArea-prompt').textContent)", arg=handle, timeout=SLOW
    )
    page.keyboard.press("Escape")  # back from the editor to the slides, whose keys move on


def test_lesson_03_as_slides_shows_its_figure(browser, lab, artifacts):  # noqa: F811 - imported fixtures
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        page.goto(f"{lab.url}/rise/{LESSON}?token={lab.token}", timeout=SLOW)
        page.wait_for_selector(".reveal .slides section.present", timeout=SLOW)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(artifacts / "diapositivas_03_portada.png"))
        titles = []
        for _ in range(40):
            page.keyboard.press("Space")
            page.wait_for_timeout(1000)  # RISE selects the cell the slides reached
            run_selected_code(page)
            title = current_slide(page).locator("h1, h2, h3").first.inner_text()
            if title not in titles:
                titles.append(title)
            figure = current_slide(page).locator(".jp-OutputArea-output img")
            if title == FIGURE_SLIDE and figure.count():
                break
        assert titles[:2] == ["Objetivos", "1. El modelo configurado"], titles
        figure.first.wait_for(state="visible")
        box = figure.first.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100, box
        assert figure.first.get_attribute("src").startswith("data:image/png")
        page.screenshot(path=str(artifacts / "diapositivas_03_figura.png"))
        page.keyboard.press("ArrowRight")  # RISE goes on in order: the subslide of section 3
        page.wait_for_timeout(1000)
        title = current_slide(page).locator("h1, h2, h3").first.inner_text()
        assert title.startswith("Los parches del tensor que entra en el modelo"), title
        page.screenshot(path=str(artifacts / "diapositivas_03_subdiapositiva.png"))
    finally:
        page.close()
