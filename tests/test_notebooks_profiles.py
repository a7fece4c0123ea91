"""Lessons 07 and 08 follow the model the server has, not one model.

nbval runs every notebook against the session's Ollama double: Ollama 0.24.0 with llama3.2-vision, the seed's
model. This runs 07 and 08 again, each in a fresh kernel, against today's Ollama (the 0.32.15 double): with a
current vision model (Qwen2.5-VL) they work and send several images in one message; with llama3.2-vision,
which that Ollama can no longer load, they show both ways out instead of crashing. A cell that raises fails
the test (only the exercises the student has not written yet may raise NotImplementedError).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from course_utils import vision_models
from tests.ollama_double import CURRENT, OLD, PREFIX
from tests.test_notebooks_no_server import outputs_text

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = ROOT / "instructor" / "source"
LESSONS = ("07_llama_vision_prompts", "08_chat_multimodal")
QWEN, LLAMA = vision_models.SUGGESTED_MODEL, "llama3.2-vision"
PIN = vision_models.OLLAMA_INSTALL.format(version=vision_models.MLLAMA_LAST_OLLAMA)
EXERCISES_NOT_WRITTEN = {"NotImplementedError"}


def both_ways_out(text: str) -> bool:
    return PIN in text and f"ollama pull {QWEN}" in text and f"COURSE_LLM_MODEL={QWEN}" in text


@pytest.fixture
def current(ollama_release):
    """Today's Ollama (0.32.15) on loopback as the configured server."""
    return ollama_release(CURRENT)


@pytest.fixture
def old(ollama_release):
    """Ollama 0.24.0, the last that loads llama3.2-vision, on its own loopback port."""
    return ollama_release(OLD)


def run_lesson(lesson: str, model: str, monkeypatch, path: Path | None = None) -> tuple[str, list[str]]:
    """Execute notebooks/<lesson>.ipynb (or `path`) with COURSE_LLM_MODEL=model; return its outputs' text and the
    names of the exceptions its cells showed (a cell that raises without the raises-exception tag fails here)."""
    monkeypatch.setenv("COURSE_LLM_MODEL", model)  # the kernel inherits it
    nb = nbformat.read(path or NOTEBOOKS / f"{lesson}.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    raised = [o.ename for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    return outputs_text(nb), raised


def box(lesson: str, folder: Path) -> str:
    """The notebook's «⚠️ Si tu Ollama rechaza llama3.2-vision» box."""
    path = folder / f"{lesson}.ipynb" if folder == NOTEBOOKS else folder / lesson / f"{lesson}.ipynb"
    nb = nbformat.read(path, as_version=4)
    boxes = [c.source for c in nb.cells if c.cell_type == "markdown" and "Si tu Ollama rechaza" in c.source]
    assert len(boxes) == 1, f"{path.name}: un recuadro «⚠️ Si tu Ollama rechaza llama3.2-vision», y solo uno"
    return boxes[0]


# --- the box says what vision_models says -------------------------------------------------------------------


@pytest.mark.parametrize("folder", [NOTEBOOKS, SOURCES], ids=["estudiante", "profesor"])
@pytest.mark.parametrize("lesson", LESSONS)
def test_the_box_gives_the_reason_both_ways_out_and_the_licence(lesson, folder):
    text = box(lesson, folder)
    assert text.startswith("> ⚠️"), "a quoted box that stands out"
    assert "0.30" in text and "llama.cpp" in text and "mllama" in text, "why: llama.cpp's server has no mllama"
    assert both_ways_out(text), "the same two fixes as vision_models.ways_out()"
    assert f"Ollama {vision_models.MLLAMA_LAST_OLLAMA}" in text
    assert vision_models.LLAMA_POLICY_URL in text and "UE" in text


# --- a current vision model on today's Ollama ------------------------------------------------------------------


def test_lesson07_works_with_a_current_model_and_sends_several_images_in_one_message(current, monkeypatch):
    text, raised = run_lesson("07_llama_vision_prompts", QWEN, monkeypatch)
    assert set(raised) <= EXERCISES_NOT_WRITTEN, raised
    assert f"Ollama {current.version}" in text and f"Modelo: {QWEN}" in text
    assert "familia: qwen25vl (Qwen2.5-VL)" in text and "imágenes por mensaje: sin límite" in text
    assert PREFIX in text, "the answers come from the stand-in, and say so"
    assert "Imágenes: JPEG 451×300; JPEG 600×400." in text, "gato.jpg and cafe.jpg went in one message"
    assert "TooManyImages" not in text and "ModelNotSupported" not in text
    assert {chat["model"] for chat in current.chats()} == {QWEN, "modelo-que-no-existe"}  # §10 asks for a missing one


def test_lesson08_works_with_a_current_model(current, monkeypatch):
    text, raised = run_lesson("08_chat_multimodal", QWEN, monkeypatch)
    assert set(raised) <= EXERCISES_NOT_WRITTEN, raised
    assert f"«{QWEN}» está descargado" in text and "familia: qwen25vl (Qwen2.5-VL)" in text
    assert "imágenes por mensaje: sin límite" in text and "imágenes de la conversación que recibe: todas" in text
    assert not both_ways_out(text) and "ModelNotSupported" not in text


def test_lesson08_with_its_exercises_written_talks_to_a_current_model(current, monkeypatch):
    """The teacher's version (solutions written): the live turns of exercise 1 reach the current model."""
    source = SOURCES / "08_chat_multimodal" / "08_chat_multimodal.ipynb"
    text, raised = run_lesson("08_chat_multimodal", QWEN, monkeypatch, path=source)
    assert raised == []
    assert f"{PREFIX} Recibí 2 mensaje(s)" in text and f"{PREFIX} Recibí 4 mensaje(s)" in text
    assert [chat["model"] for chat in current.chats()] == [QWEN, QWEN]


# --- llama3.2-vision on today's Ollama: both ways out, no crash ---------------------------------------------


@pytest.mark.parametrize("lesson", LESSONS)
def test_llama_vision_on_a_current_server_shows_both_ways_out(current, monkeypatch, lesson):
    text, raised = run_lesson(lesson, LLAMA, monkeypatch)
    assert set(raised) <= EXERCISES_NOT_WRITTEN, raised
    assert "Traceback" not in text
    assert both_ways_out(text) and "familia: mllama (Llama 3.2 Vision)" in text
    assert "❌" in text and PREFIX not in text, "no answer: today's Ollama cannot load mllama"
    assert vision_models.LLAMA_POLICY_URL in text, "the EU licence line, for the seed's model"


# --- the seed's model where it still runs --------------------------------------------------------------------


def test_lesson07_on_the_old_server_shows_llama_visions_one_image_limit(old, monkeypatch):
    text, raised = run_lesson("07_llama_vision_prompts", LLAMA, monkeypatch)
    assert set(raised) <= EXERCISES_NOT_WRITTEN, raised
    assert "familia: mllama (Llama 3.2 Vision)" in text and "imágenes por mensaje: 1" in text
    assert "Hay 2 imágenes en un mismo mensaje y el modelo acepta 1." in text
    assert PREFIX in text and not both_ways_out(text)
    assert all(len(m.get("images") or []) <= 1 for chat in old.chats() for m in chat["messages"])
