"""Notebook 05 also runs green with no Ollama server at all: each cell that needs one shows the diagnosis.

nbval already runs the notebook against the Ollama double (pytest collects notebooks/); this runs it a
second time, in a fresh kernel whose OLLAMA_HOST points at a closed port. A cell that raises fails the test.
"""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.ollama_double import PREFIX

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "05_llama_vision_prompts.ipynb"


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.extend(str(v) for k, v in output.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


def test_notebook05_runs_without_a_server(closed_port, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", closed_port)  # the kernel inherits it
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # jupyter_client starts the "python3" kernel with this interpreter (sys.executable), as nbval does.
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError if any cell errors

    text = outputs_text(nb)
    assert closed_port in text and "ollama serve" in text
    assert text.count("No hay ningún servidor de Ollama") >= 5  # every call to the server was diagnosed
    assert PREFIX not in text
    assert "TooManyImages" in text and "ImageError" in text  # local errors show without a server too
