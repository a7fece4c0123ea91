"""`make lab` as a student sees it: JupyterLab in Spanish, no news popup, no nbgrader teacher tools, and a
terminal without English warnings. The server runs `make lab`'s own command line (on a free port)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.test_browser import BROWSER_MARKS, CHROMIUM, FLAGS, SLOW, Server, free_port

ROOT = Path(__file__).resolve().parent.parent
TEACHER_PLUGINS = [
    "@jupyter/nbgrader:create-assignment",
    "@jupyter/nbgrader:formgrader",
    "@jupyter/nbgrader:course-list",
    "@jupyter/nbgrader:validate-assignment",
]
# What a student would read as an error in the terminal of `make lab`.
ALARMING = re.compile(r"^\[[WE] |Warning|not trusted|No nbgrader_config|Traceback", re.M)


def _recipe_lines() -> list[str]:
    block = re.search(r"^lab:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    return [line.strip() for line in block.splitlines() if not line.strip().startswith("@")]


def _expand(line: str, rol: str, port: int) -> str:
    root_flag = "--allow-root" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    for name, value in {
        "$(VENV)": str(Path(sys.executable).parent.parent),
        "$(CURDIR)": str(ROOT),
        "$(ROL)": rol,
        "$(PORT)": str(port),
        "$(ROOT_FLAG)": root_flag,
    }.items():
        line = line.replace(name, value)
    return line


def start_lab(rol: str, env: dict, log: Path) -> Server:
    """`make lab ROL=<rol>`'s recipe: its trust step, then JupyterLab with a known token on a free port."""
    port, token = free_port(), secrets.token_hex(16)
    *before, lab = [_expand(line, rol, port) for line in _recipe_lines()]
    for line in before:
        subprocess.run(line, shell=True, cwd=ROOT, env=env, check=True, timeout=120)
    words = shlex.split(lab)
    env = dict(env)
    while "=" in words[0] and not words[0].startswith("-"):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    words += [f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True"]
    server = Server(words, f"http://127.0.0.1:{port}", log, env)
    server.token = token
    return server.wait_ready(f"/api/status?token={token}")


@pytest.fixture
def student_env(tmp_path) -> dict:
    """A student's fresh Jupyter folders: nothing from this machine's own configuration."""
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        env[name] = str(tmp_path / name.lower())
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env.pop("PYTHONWARNINGS", None)  # as in a student's terminal
    return env


def page_config(server: Server) -> dict:
    html = httpx.get(f"{server.url}/lab?token={server.token}", timeout=30).text
    return json.loads(re.search(r'id="jupyter-config-data"[^>]*>\s*(\{.*?\})\s*</script>', html, re.S).group(1))


def test_make_lab_starts_without_english_warnings_and_hides_the_teacher_tools(student_env, tmp_path):
    log = tmp_path / "lab.log"
    server = start_lab("estudiante", student_env, log)
    try:
        for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):  # as JupyterLab opens each one
            url = f"{server.url}/api/contents/{notebook.name}?token={server.token}"
            assert httpx.get(url, timeout=60).status_code == 200
        disabled = set(page_config(server)["disabledExtensions"])
    finally:
        server.stop()
    text = log.read_text(errors="replace")
    assert ALARMING.findall(text) == [], text
    assert set(TEACHER_PLUGINS) <= disabled


def test_the_teacher_keeps_nbgrader_s_tools(student_env, tmp_path):
    server = start_lab("profesor", student_env, tmp_path / "lab.log")
    try:
        disabled = set(page_config(server)["disabledExtensions"])
        formgrader = httpx.get(f"{server.url}/formgrader?token={server.token}", timeout=60)
    finally:
        server.stop()
    assert disabled.isdisjoint(TEACHER_PLUGINS)
    assert formgrader.status_code != 404


HUB_PAGE_CONFIG = """
import json, sys
import jupyter_core.paths
jupyter_core.paths.SYSTEM_CONFIG_PATH = [sys.argv[1]]  # the hub's /etc/jupyter, here a temporary folder
from jupyterlab_server.config import get_static_page_config
print(json.dumps(get_static_page_config()))
"""


def test_on_the_hub_the_teacher_s_own_setting_turns_the_tools_back_on(student_env, tmp_path):
    """deploy/install_hub.sh puts the student's settings at the system level (/etc/jupyter); the teacher's
    ~/.jupyter/labconfig/page_config.json (jupyter/profesor/'s) comes before it, a student's account has none."""
    system = tmp_path / "etc-jupyter" / "labconfig"
    system.mkdir(parents=True)
    (system / "page_config.json").write_text((ROOT / "jupyter/estudiante/labconfig/page_config.json").read_text())

    def disabled() -> set[str]:
        run = subprocess.run(
            [sys.executable, "-c", HUB_PAGE_CONFIG, str(system.parent)],
            env=student_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        return {k for k, v in json.loads(run.stdout).get("disabledExtensions", {}).items() if v}

    assert set(TEACHER_PLUGINS) <= disabled()  # a student
    user = Path(student_env["JUPYTER_CONFIG_DIR"]) / "labconfig"
    user.mkdir(parents=True)
    (user / "page_config.json").write_text((ROOT / "jupyter/profesor/labconfig/page_config.json").read_text())
    assert disabled().isdisjoint(TEACHER_PLUGINS)  # the teacher


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=BROWSER_MARKS[1].kwargs["reason"])
def test_jupyterlab_speaks_spanish_without_the_news_popup(student_env, tmp_path, artifacts):
    from playwright.sync_api import sync_playwright

    server = start_lab("estudiante", student_env, tmp_path / "lab.log")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{server.url}/lab?token={server.token}", timeout=SLOW)
            menu = page.locator(".lm-MenuBar-itemLabel")
            menu.first.wait_for(timeout=SLOW)
            page.wait_for_timeout(5000)  # the news question, when on, comes a moment after the start
            labels = menu.all_inner_texts()
            assert {"Archivo", "Editar", "Ver", "Ayuda"} <= set(labels), labels
            assert "File" not in labels
            menu.filter(has_text="Archivo").click()
            assert page.locator(".lm-Menu-itemLabel", has_text="Nuevo").first.is_visible()
            page.keyboard.press("Escape")
            text = page.locator("body").inner_text()
            assert "news" not in text and "noticias" not in text.lower()
            for plugin in TEACHER_PLUGINS:
                assert page.evaluate(f"() => window.jupyterapp.hasPlugin({plugin!r})") is False, plugin
            assert page.evaluate("() => window.jupyterapp.hasPlugin('@jupyter/nbgrader:assignment-list')")
            page.screenshot(path=str(artifacts / "lab_en_castellano.png"))
            browser.close()
    finally:
        server.stop()
