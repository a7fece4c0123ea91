"""Notebook 00's responsible-use section (section 7), run against the Ollama double.

nbval runs the notebook as handed out; here its outputs are read: the vision model's licence note with
the link to Llama 3.2's use policy, the samples' credits, where the chat keeps conversations, and the
hallucination probe, whose answers come from the double and are said to be a stand-in's. The
self-check then counts a student's labels, and answers a wrong label with the list of the right ones.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from course_utils.vision_models import LLAMA_POLICY_URL
from tests.ollama_double import PREFIX
from tests.test_notebooks_no_server import outputs_text

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LABELS_CELL = 'clasificacion = {1: None, 2: None, 3: None, 4: None}  # "niega", "inventa" o "duda"'


def run_notebook00(labels: str | None = None) -> str:
    """The text of notebook 00's outputs, with the self-check's labels set to `labels` if given."""
    nb = nbformat.read(NOTEBOOKS / "00_entorno.ipynb", as_version=4)
    if labels is not None:
        cell = next(c for c in nb.cells if c.source.strip() == LABELS_CELL)
        cell.source = f"clasificacion = {labels}"
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return outputs_text(nb)


def test_the_section_names_the_licences_the_data_and_labels_the_stand_ins_answers():
    text = run_notebook00()
    assert "UE" in text and LLAMA_POLICY_URL in text  # the configured model is Llama 3.2 Vision
    assert "Créditos y licencias de las muestras" in text and "CC0" in text
    assert "Conversaciones guardadas en" in text
    probe = [line for line in text.splitlines() if line.strip().startswith("→")]
    assert len(probe) == 4 and all(line.strip().startswith(f"→ {PREFIX}") for line in probe), probe
    assert "Ha respondido el doble de pruebas, no un modelo" in text
    assert "Todavía sin clasificar" in text


def test_the_self_check_counts_the_students_labels():
    text = run_notebook00('{1: "inventa", 2: "inventa", 3: "niega", 4: "niega"}')
    assert "El modelo se inventó algo en 2 de 4 respuestas: [1, 2]." in text
    assert "se inventa lo que la pregunta da por hecho" in text
    text = run_notebook00('{1: "alucina", 2: None, 3: "niega", 4: "niega"}')
    assert "Usa solo niega, inventa, duda (o None): revisa {1: 'alucina'}." in text
