"""The notebooks that talk to Ollama also run green with no server at all: they show the diagnosis.

nbval already runs every notebook against the Ollama double (pytest collects notebooks/); this runs
00, 07 and 08 a second time, in a fresh kernel whose OLLAMA_HOST points at a closed port. A cell that
raises fails the test.
"""

import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.ollama_double import PREFIX

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def outputs_text(nb) -> str:
    """Every text output, and the widgets' saved state (a widget's HTML is not a cell output)."""
    parts = [json.dumps(nb.metadata.get("widgets", {}), ensure_ascii=False)]
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.extend(str(v) for k, v in output.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


def run_without_server(name: str, closed_port: str, monkeypatch) -> str:
    """Execute notebooks/<name> with OLLAMA_HOST at a closed port; return the text of its outputs."""
    monkeypatch.setenv("OLLAMA_HOST", closed_port)  # the kernel inherits it
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    # jupyter_client starts the "python3" kernel with this interpreter (sys.executable), as nbval does.
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError if any cell errors
    return outputs_text(nb)


def test_environment_notebook_says_what_is_missing(closed_port, monkeypatch):
    text = run_without_server("00_entorno.ipynb", closed_port, monkeypatch)
    assert f"No hay ningún servidor de Ollama respondiendo en {closed_port}" in text
    assert "ollama serve" in text and "❌" in text
    assert "Modelo de prueba" in text  # the stand-ins say what they are


def test_chat_notebook_builds_and_shows_the_diagnosis(closed_port, monkeypatch):
    text = run_without_server("08_chat_multimodal.ipynb", closed_port, monkeypatch)
    assert PREFIX not in text
    # The widget was built and shows the diagnosis inside its conversation pane.
    assert f"No hay ningún servidor de Ollama respondiendo en {closed_port}" in text and "ollama serve" in text


def test_notebook07_runs_without_a_server(closed_port, monkeypatch):
    text = run_without_server("07_llama_vision_prompts.ipynb", closed_port, monkeypatch)
    assert closed_port in text and "ollama serve" in text
    assert text.count("No hay ningún servidor de Ollama") >= 5  # every call to the server was diagnosed
    assert PREFIX not in text
    assert "TooManyImages" in text and "ImageError" in text  # local errors show without a server too
