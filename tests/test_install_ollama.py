"""deploy/install_ollama.sh installs the Ollama that runs the course's model: 0.24.0 for llama3.2-vision
(the last release that loads mllama), the latest for another model, nothing when the right one is there.

`curl` and `ollama` are stand-ins on PATH: the stand-in curl hands over an install script that only
writes down the version it was asked for, so nothing is downloaded or installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_utils import vision_models

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "install_ollama.sh"


@pytest.fixture
def fake_bin(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "installed.log"
    (bin_dir / "curl").write_text(
        f"#!/bin/sh\necho 'echo \"install.sh (stand-in) OLLAMA_VERSION=${{OLLAMA_VERSION:-latest}}\" >> {log}'\n"
    )
    (bin_dir / "curl").chmod(0o755)
    return bin_dir, log


def run(fake_bin, model: str | None = None, installed: str | None = None, version: str | None = None) -> str:
    bin_dir, log = fake_bin
    if installed:
        (bin_dir / "ollama").write_text(f"#!/bin/sh\necho 'ollama version is {installed}'\n")
        (bin_dir / "ollama").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_LLM_MODEL", "OLLAMA_VERSION")}
    env.update({"PATH": f"{bin_dir}:{env['PATH']}", "PYTHON": sys.executable})
    env.update({"COURSE_LLM_MODEL": model} if model else {})
    env.update({"OLLAMA_VERSION": version} if version is not None else {})
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return log.read_text() if log.exists() else ""


def test_llama_vision_gets_the_last_ollama_that_loads_it(fake_bin):
    assert run(fake_bin) == f"install.sh (stand-in) OLLAMA_VERSION={vision_models.MLLAMA_LAST_OLLAMA}\n"


def test_a_current_model_gets_the_latest_ollama(fake_bin):
    assert run(fake_bin, model="qwen2.5vl:7b") == "install.sh (stand-in) OLLAMA_VERSION=latest\n"


def test_the_right_version_already_installed_is_left_alone(fake_bin):
    assert run(fake_bin, installed=vision_models.MLLAMA_LAST_OLLAMA) == ""


def test_a_newer_ollama_under_llama_vision_is_replaced_by_the_pinned_one(fake_bin):
    assert run(fake_bin, installed="0.32.15") == "install.sh (stand-in) OLLAMA_VERSION=0.24.0\n"


def test_the_administrator_can_choose_the_version(fake_bin):
    assert run(fake_bin, version="0.32.15") == "install.sh (stand-in) OLLAMA_VERSION=0.32.15\n"
