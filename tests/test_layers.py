"""The package's layers (docs and DESIGN.md): a module imports only from its own layer or the ones below."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "course_utils"

LAYERS = {
    # 1. errors, configuration and display helpers (the package's __init__ runs first, so it stays here)
    "__init__": 1,
    "errors": 1,
    "config": 1,
    "display": 1,
    "safe_html": 1,
    # 2. data
    "audio": 2,
    "images": 2,
    "samples": 2,
    "files": 2,
    # 3. models and services
    "speech": 3,
    "subtitles": 3,
    "word_timing": 3,
    "language_detection": 3,
    "whisper_weights": 3,
    "whisper_compare": 3,
    "standins": 3,
    "vision": 3,
    "hf_hub": 3,
    "hf_progress": 3,
    "attention": 3,
    "patches": 3,
    "llama_vision": 3,
    "qwen_vision": 3,
    "evaluation": 3,
    "llm": 3,
    "vision_models": 3,
    "conversation": 3,
    "answer_stats": 3,
    "chat_store": 3,
    "dictation": 3,
    # 4. interactive: widgets, the chat, the doctor, commands for the teacher, the notebooks' self-check
    "vision_widget": 4,
    "dictation_widget": 4,
    "chat": 4,
    "chat_bubbles": 4,
    "prompt_box": 4,
    "recorder": 4,
    "doctor": 4,
    "prepare_class": 4,
    "exercises": 4,
    "grading": 4,
    "grading_preprocessors": 4,
}


def _modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py"))


def _imported(module: str) -> set[str]:
    """The course_utils modules that `module` imports, at the top or inside a function."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("course_utils.")}
        elif isinstance(node, ast.ImportFrom) and node.module == "course_utils":
            found |= {a.name for a in node.names if a.name in LAYERS}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_utils."):
            found.add(node.module.split(".")[1])
    return found


def test_every_module_has_a_layer():
    missing = [m for m in _modules() if m not in LAYERS]
    assert not missing, f"add these modules to LAYERS in tests/test_layers.py: {missing}"


@pytest.mark.parametrize("module", _modules())
def test_no_module_imports_an_upper_layer(module):
    upward = {m: LAYERS.get(m) for m in _imported(module) if LAYERS.get(m, 99) > LAYERS.get(module, 0)}
    assert not upward, f"{module} (layer {LAYERS.get(module)}) imports upper layers: {upward}"


def test_the_check_sees_imports_inside_functions():
    # doctor imports llm only inside check_ollama: the walk must find it, or the test above proves nothing
    assert {"llm", "config", "audio"} <= _imported("doctor")
    assert "errors" in _imported("__init__")
