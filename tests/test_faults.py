"""The fault battery (issue 10, item 6): bad inputs and server faults, table by table.

Every case goes through a public helper (`open_image`, `load_audio`, `config`, `vision`, `speech`, `llm`)
or a headless `ChatWidget`, and checks the exact `CourseError` subclass, a key phrase of its Spanish
message and the right output where there is one. The chat cases also check that nothing is lost (the
question, its image and any partial answer stay in `history`, marked interrupted or stopped, and in the
export), that the pane shows the Spanish message (never "Error inesperado") and that the widget works
again afterwards. Server faults come from the loopback Ollama double (tests/ollama_double.py).
"""

from __future__ import annotations

import base64
import builtins
import html
import io
import json
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from course_utils import chat_store, config, llm, speech, vision
from course_utils.audio import SAMPLE_RATE, load_audio
from course_utils.chat import ChatWidget
from course_utils.dictation import NoSpeechError
from course_utils.errors import (
    AudioError,
    Cancelled,
    ConfigError,
    CourseError,
    ExportError,
    ImageError,
    ModelLoadError,
    ModelNotPulled,
    OllamaError,
    OptionError,
    ServerBusy,
    ServerTimeout,
    ServerUnreachable,
    StreamCut,
    TooManyImages,
)
from course_utils.images import open_image
from tests.ollama_double import BUSY_ERROR, ERROR_LINE, MALFORMED_LINE, NON_OBJECT_LINES, PREFIX
from tests.test_browser import browser, jupyter_env, voila  # noqa: F401 - fixtures used by name
from tests.test_chat import upload_item

LIMIT = 10.0  # seconds: a generous bound for "ends instead of hanging"
REPLY = "uno dos tres cuatro cinco seis siete ocho nueve diez"  # streamed one word per chunk
FIRST_3 = "uno dos tres "  # what arrives before a fault injected after 3 chunks
MB = 1_000_000
NOT_STUDENT_TEXT = ("Traceback", "Error inesperado")


def xfail(reason: str):
    return pytest.mark.xfail(strict=True, reason=reason)


@pytest.fixture
def env(ollama_double, monkeypatch, closed_port, tmp_path, samples):
    """What a case needs to set itself up; COURSE_DEVICE's cache is emptied around each case."""
    monkeypatch.setattr(llm, "BUSY_BACKOFF", 0.01)  # retries on a busy server take milliseconds
    config._device.cache_clear()
    yield SimpleNamespace(double=ollama_double, mp=monkeypatch, closed=closed_port, tmp=tmp_path, samples=samples)
    config._device.cache_clear()


def check_error(exc: BaseException, cls: type, phrase: str) -> None:
    """The exact class, the key phrase, and a message a student can read."""
    assert type(exc) is cls, f"{type(exc).__name__} instead of {cls.__name__}: {exc}"
    assert phrase in exc.message, f"«{phrase}» not in «{exc.message}»"
    assert exc.message.strip() and not any(bad in str(exc) for bad in NOT_STUDENT_TEXT)


def raises(cls: type, phrase: str, call) -> CourseError:
    """Run `call` in a thread (a hang fails after LIMIT seconds instead of blocking the suite)."""
    outcome = {}

    def target():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(LIMIT)
    assert not thread.is_alive(), f"still running after {LIMIT:g} s"
    error = outcome.get("error")
    assert error is not None, f"no error; it returned {str(outcome.get('value'))[:200]!r}"
    if not isinstance(error, CourseError):
        raise error  # a raw exception fails the case with its own traceback
    check_error(error, cls, phrase)
    return error


def finishes(call):
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(value=call()), daemon=True)
    thread.start()
    thread.join(LIMIT)
    assert not thread.is_alive(), f"still running after {LIMIT:g} s"
    assert "value" in outcome, "it raised (see the thread's traceback above)"
    return outcome["value"]


def deny_reading(env, path: Path) -> Path:
    """Make opening `path` raise PermissionError, as a file without read permission does (the tests may
    run as root, for whom chmod 000 changes nothing)."""
    real = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(os.fspath(file)) == os.path.abspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real(file, *args, **kwargs)

    env.mp.setattr(builtins, "open", guarded)
    env.mp.setattr(io, "open", guarded)  # pathlib's Path.open goes through io.open
    return path


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width×height pixels but holds almost no data (how a decompression bomb starts)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def write(env, name: str, data: bytes) -> Path:
    path = env.tmp / name
    path.write_bytes(data)
    return path


def sample_bytes(env, name: str) -> bytes:
    return (env.samples / name).read_bytes()


def tone(seconds: float = 1.0, peak: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return peak * np.sin(2 * np.pi * 440 * t)


def wav_bytes(samples: np.ndarray) -> bytes:
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return buffer.getvalue()


# --- images -------------------------------------------------------------------------------------------

IMAGE_FAULTS = [
    pytest.param(lambda e: b"esto es texto, no una imagen", "no es una imagen", id="image-bytes-not-an-image"),
    pytest.param(lambda e: sample_bytes(e, "gato.jpg")[:15_000], "dañada o incompleta", id="image-truncated-jpeg"),
    pytest.param(lambda e: sample_bytes(e, "gato.jpg")[:300], "dañada o incompleta", id="image-jpeg-header-only"),
    pytest.param(lambda e: b"", "vacío (0 bytes)", id="image-empty-bytes"),
    pytest.param(
        lambda e: write(e, "foto.jpg", b"Apuntes de la clase\n" * 20),
        "no es una imagen",
        id="image-text-file-renamed-jpg",
    ),
    pytest.param(lambda e: write(e, "vacia.png", b""), "no es una imagen", id="image-empty-file"),
    pytest.param(
        lambda e: write(e, "falsa.jpg", sample_bytes(e, "hola.wav")), "no es una imagen", id="image-wav-renamed-jpg"
    ),
    pytest.param(lambda e: e.tmp, "es una carpeta", id="image-path-is-a-folder"),
    pytest.param(lambda e: e.tmp / "no-existe.jpg", "No encuentro el archivo", id="image-missing-file"),
    pytest.param(
        lambda e: deny_reading(e, write(e, "privada.jpg", sample_bytes(e, "gato.jpg"))),
        "No tengo permiso para leer",
        id="image-unreadable-file",
    ),
    pytest.param(lambda e: np.full((8, 8, 3), np.nan), "NaN o infinitos", id="image-nan-array"),
    pytest.param(lambda e: np.array([[0.2, np.inf], [0.1, 0.5]]), "NaN o infinitos", id="image-inf-array"),
    pytest.param(lambda e: np.full((8, 8, 3), 1.5), "debe ir de 0 a 1", id="image-float-above-one"),
    pytest.param(
        lambda e: np.linspace(-1, 1, 192).reshape(8, 8, 3), "debe ir de 0 a 1", id="image-float-minus-one-to-one"
    ),
    pytest.param(lambda e: np.full((8, 8, 3), 200.0), "debe ir de 0 a 1", id="image-float-0-255"),
    pytest.param(lambda e: np.full((8, 8), -5, np.int64), "valores negativos", id="image-int-negative"),
    pytest.param(lambda e: np.array([[-100, 100]], np.int8), "valores negativos", id="image-int8-signed"),
    pytest.param(lambda e: np.zeros((8, 8, 2), np.uint8), "no es una imagen", id="image-shape-two-channels"),
    pytest.param(lambda e: np.zeros((8, 8, 5), np.uint8), "no es una imagen", id="image-shape-five-channels"),
    pytest.param(lambda e: np.zeros(64, np.uint8), "no es una imagen", id="image-shape-1d"),
    pytest.param(lambda e: np.zeros((2, 8, 8, 3), np.uint8), "no es una imagen", id="image-shape-batch-4d"),
    pytest.param(lambda e: np.zeros((0, 0, 3), np.uint8), "no es una imagen", id="image-shape-empty"),
    pytest.param(lambda e: np.array([["a", "b"]]), "no es una imagen", id="image-array-of-strings"),
    pytest.param(lambda e: np.zeros((8, 8), complex), "no es una imagen", id="image-array-complex"),
    pytest.param(lambda e: png_header(8_000, 8_000), "demasiado grande", id="image-huge-64-megapixels"),
    pytest.param(
        lambda e: write(e, "bomba.png", png_header(60_000, 60_000)),
        "demasiado grande",
        id="image-huge-decompression-bomb",
    ),
    pytest.param(lambda e: 42, "No sé abrir una imagen", id="image-not-a-source"),
]


@pytest.mark.parametrize("make, phrase", IMAGE_FAULTS)
def test_bad_image(env, make, phrase):
    source = make(env)
    raises(ImageError, phrase, lambda: open_image(source))


def _pixel(image) -> list[int]:
    return np.asarray(image).reshape(-1, 3)[0].tolist()


IMAGE_OUTPUTS = [
    pytest.param(lambda e: np.full((4, 4, 3), 1.0001), [255, 255, 255], id="image-float-rounding-noise-is-white"),
    pytest.param(lambda e: np.full((4, 4, 3), 0.5, np.float16), [128, 128, 128], id="image-float16-half-grey"),
    pytest.param(lambda e: np.full((4, 4, 1), 65535, np.uint16), [255, 255, 255], id="image-uint16-full-white"),
    pytest.param(lambda e: np.ones((4, 4), bool), [255, 255, 255], id="image-bool-white"),
    pytest.param(
        lambda e: np.dstack([np.full((4, 4, 3), 200, np.uint8), np.zeros((4, 4, 1), np.uint8)]),
        [255, 255, 255],
        id="image-transparent-rgba-on-white",
    ),
]


@pytest.mark.parametrize("make, pixel", IMAGE_OUTPUTS)
def test_edge_image_gives_the_right_pixels(env, make, pixel):
    image = open_image(make(env))
    assert image.mode == "RGB" and image.size == (4, 4) and _pixel(image) == pixel


# --- audio --------------------------------------------------------------------------------------------

AUDIO_FAULTS = [
    pytest.param(
        lambda e: b"hola, esto es texto y no audio " * 20, "no es un archivo de audio", id="audio-bytes-not-audio"
    ),
    pytest.param(lambda e: e.samples / "gato.jpg", "no contiene ninguna pista de audio", id="audio-image-file"),
    pytest.param(lambda e: b"", "vacío (0 bytes)", id="audio-empty-bytes"),
    pytest.param(lambda e: write(e, "nada.wav", b""), "vacío (0 bytes)", id="audio-empty-file"),
    pytest.param(lambda e: sample_bytes(e, "hola.wav")[:44], "ninguna muestra", id="audio-wav-header-only"),
    pytest.param(lambda e: np.zeros(SAMPLE_RATE, np.float32), "en silencio", id="audio-silent-array"),
    pytest.param(lambda e: wav_bytes(np.zeros(SAMPLE_RATE)), "en silencio", id="audio-silent-wav"),
    pytest.param(lambda e: np.zeros(0, np.float32), "ninguna muestra", id="audio-empty-array"),
    pytest.param(lambda e: np.full(100, np.nan), "NaN o infinito", id="audio-nan-array"),
    pytest.param(lambda e: np.ones(100, bool), "tipo bool", id="audio-dtype-bool"),
    pytest.param(lambda e: np.ones(100, complex), "tipo complex128", id="audio-dtype-complex"),
    pytest.param(lambda e: np.array(["a", "b"]), "tipo <U1", id="audio-dtype-strings"),
    pytest.param(lambda e: np.zeros((2, 100, 2), np.float32), "forma (2, 100, 2)", id="audio-shape-3d"),
    pytest.param(lambda e: np.ones((16, 16), np.float32), "forma (16, 16)", id="audio-shape-not-channels"),
    # Integer samples stored as floats (e.g. `array.astype(float)` of an int16 recording) are not ±1 audio.
    pytest.param(lambda e: (tone() * 16000).astype(np.float32), "de -1 a 1", id="audio-float-at-int16-scale"),
    pytest.param(lambda e: e.tmp / "no-existe.wav", "No existe el archivo", id="audio-missing-file"),
    pytest.param(lambda e: e.tmp, "es una carpeta", id="audio-path-is-a-folder"),
    pytest.param(
        lambda e: deny_reading(e, write(e, "privado.wav", sample_bytes(e, "hola.wav"))),
        "No tengo permiso para leer",
        id="audio-unreadable-file",
    ),
    pytest.param(lambda e: [0.1, 0.2], "No sé leer audio", id="audio-not-a-source"),
]


@pytest.mark.parametrize("make, phrase", AUDIO_FAULTS)
def test_bad_audio(env, make, phrase):
    source = make(env)
    raises(AudioError, phrase, lambda: load_audio(source))


AUDIO_OUTPUTS = [
    pytest.param(
        lambda: np.stack([tone() * 32768, tone() * 32768], axis=1).astype(np.int16),
        tone(),
        id="audio-int16-stereo-channels-last",
    ),
    pytest.param(
        lambda: np.stack([tone() * 32768, np.zeros(SAMPLE_RATE)]).astype(np.int16),
        tone() / 2,
        id="audio-int16-stereo-channels-first",
    ),
    pytest.param(lambda: (tone() * 128 + 128).astype(np.uint8), tone(), id="audio-uint8-centred"),
    pytest.param(lambda: (tone() * 2**31).astype(np.int32), tone(), id="audio-int32"),
    pytest.param(lambda: tone(peak=1.2), tone(peak=1.2), id="audio-float-slight-overshoot-kept"),
]


@pytest.mark.parametrize("make, expected", AUDIO_OUTPUTS)
def test_edge_audio_gives_the_right_samples(make, expected):
    audio = load_audio(make())
    assert audio.dtype == np.float32 and audio.shape == expected.shape
    np.testing.assert_allclose(audio, expected, atol=2 / 128)  # within uint8's step, the coarsest here


# --- configuration, models and options ------------------------------------------------------------------


def _vit_copy(env, name: str) -> Path:
    folder = env.tmp / name
    shutil.copytree(os.environ["COURSE_VIT_MODEL"], folder)
    return folder


def _vit_config_only(env, config_json: str) -> Path:
    folder = env.tmp / "modelo"
    folder.mkdir()
    (folder / "config.json").write_text(config_json, encoding="utf-8")
    return folder


def _vit_damaged_weights(env) -> Path:
    folder = _vit_copy(env, "danado")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    return folder


def _vit_without_weights(env) -> Path:
    folder = _vit_copy(env, "sin-pesos")
    (folder / "model.safetensors").unlink()
    return folder


def _host(value: str):
    return lambda e: e.mp.setenv("OLLAMA_HOST", value)


def _device(value: str, gpu: bool = False):
    def setup(e):
        import torch

        e.mp.setenv("COURSE_DEVICE", value)
        e.mp.setattr(torch.cuda, "is_available", lambda: gpu)  # the same answer on every machine
        e.mp.setattr(torch.cuda, "device_count", lambda: int(gpu))

    return setup


def _vit(make):
    return lambda e: e.mp.setenv("COURSE_VIT_MODEL", str(make(e)))


def _whisper(make):
    return lambda e: e.mp.setenv("COURSE_WHISPER_MODEL", str(make(e)))


_BERT = json.dumps({"model_type": "bert", "architectures": ["BertModel"]})


CONFIG_FAULTS = [
    pytest.param(
        _host("localhost:114340"), config.settings, ConfigError, "el puerto debe ser", id="config-ollama-host-port-typo"
    ),
    pytest.param(
        _host("http://[::1"), config.ollama_host, ConfigError, "IPv6 está mal escrita", id="config-ollama-host-bad-ipv6"
    ),
    pytest.param(
        _host("ftp://localhost:11434"),
        config.ollama_host,
        ConfigError,
        "el protocolo «ftp» no vale",
        id="config-ollama-host-ftp",
    ),
    pytest.param(
        _host("http://"),
        config.ollama_host,
        ConfigError,
        "falta el nombre del servidor",
        id="config-ollama-host-no-server",
    ),
    pytest.param(
        _host("local host:11434"), config.ollama_host, ConfigError, "tiene espacios", id="config-ollama-host-space"
    ),
    pytest.param(
        _host("servidor!:11434"),
        config.ollama_host,
        ConfigError,
        "no es un nombre de servidor",
        id="config-ollama-host-bad-name",
    ),
    pytest.param(
        _host("localhost:abc"),
        lambda: llm.ask("hola"),
        ConfigError,
        "OLLAMA_HOST=«localhost:abc»",
        id="config-ollama-host-through-llm-ask",
    ),
    pytest.param(
        _device("tpu"), config.device, ConfigError, "COURSE_DEVICE=tpu no es válido", id="config-device-bogus"
    ),
    pytest.param(_device("cuda"), config.device, ConfigError, "no ve ninguna GPU", id="config-device-cuda-without-gpu"),
    pytest.param(
        _device("cuda:abc", gpu=True),
        config.device,
        ConfigError,
        "COURSE_DEVICE=cuda:abc no es válido",
        id="config-device-cuda-bad-index",
    ),
    pytest.param(
        _device("cuda:1", gpu=True),
        config.device,
        ConfigError,
        "COURSE_DEVICE=cuda:1 pero PyTorch ve solo",
        id="config-device-cuda-missing-gpu",
    ),
    pytest.param(
        _vit(lambda e: e.tmp),
        vision.load_classifier,
        ModelLoadError,
        "le falta config.json",
        id="config-vit-folder-not-a-model",
    ),
    pytest.param(
        _vit(lambda e: e.tmp / "no" / "existe"),
        vision.load_classifier,
        ModelLoadError,
        "No encuentro la carpeta",
        id="config-vit-missing-folder",
    ),
    pytest.param(
        _vit(lambda e: "esto no es un modelo!!"),
        vision.load_classifier,
        ModelLoadError,
        "ni un identificador de Hugging Face válido",
        id="config-vit-malformed-id",
    ),
    pytest.param(
        _vit(lambda e: _vit_config_only(e, _BERT)),
        vision.load_classifier,
        ModelLoadError,
        "no es un clasificador de imágenes",
        id="config-vit-text-model",
    ),
    pytest.param(
        _vit(lambda e: _vit_config_only(e, "{esto no es json")),
        vision.load_classifier,
        ModelLoadError,
        "config.json de la carpeta",
        id="config-vit-config-not-json",
    ),
    pytest.param(
        _vit(_vit_damaged_weights),
        vision.load_classifier,
        ModelLoadError,
        "dañados o incompletos",
        id="config-vit-corrupt-weights",
    ),
    pytest.param(
        _vit(_vit_without_weights),
        vision.load_classifier,
        ModelLoadError,
        "no tiene los pesos del modelo",
        id="config-vit-no-weights",
    ),
    pytest.param(
        _whisper(lambda e: "gigante"),
        speech.load_model,
        ModelLoadError,
        "no es un modelo de Whisper",
        id="config-whisper-unknown-name",
    ),
    pytest.param(
        _whisper(lambda e: write(e, "roto.pt", b"no es un checkpoint" * 10)),
        speech.load_model,
        ModelLoadError,
        "dañado",
        id="config-whisper-corrupt-checkpoint",
    ),
    pytest.param(
        lambda e: None,
        lambda: speech.transcribe(tone(), beam_sise=5),
        OptionError,
        "no conoce la opción «beam_sise»",
        id="speech-unknown-option",
    ),
    pytest.param(
        lambda e: None,
        lambda: speech.transcribe(tone(), task="traducir"),
        OptionError,
        "task='traducir' no es válido",
        id="speech-unknown-task",
    ),
    pytest.param(
        lambda e: None,
        lambda: speech.transcribe(tone(), language="klingon"),
        OptionError,
        "no es un código de idioma",
        id="speech-unknown-language",
    ),
    pytest.param(
        lambda e: None, lambda: speech.transcribe(np.zeros(SAMPLE_RATE)), AudioError, "en silencio", id="speech-silence"
    ),
]


@pytest.mark.parametrize("setup, call, cls, phrase", CONFIG_FAULTS)
def test_bad_configuration(env, setup, call, cls, phrase):
    setup(env)
    raises(cls, phrase, call)


def test_unknown_speech_option_names_the_valid_ones():
    with pytest.raises(OptionError) as info:
        speech.transcribe(tone(), beam_sise=5)
    assert "¿Querías decir beam_size?" in info.value.hint and "temperature" in info.value.hint


# --- Ollama through llm ---------------------------------------------------------------------------------


def _queue(reply: bool = False, **attributes):
    """Set the double's fault attributes (lists are extended); `reply` queues REPLY, one word per chunk."""

    def setup(e):
        if reply:
            e.double.replies.append(REPLY)
        for name, value in attributes.items():
            current = getattr(e.double, name)
            if isinstance(current, list):
                current.extend(value)
            else:
                setattr(e.double, name, value)

    return setup


def _refused(e):
    e.mp.setenv("OLLAMA_HOST", e.closed)


def _not_ollama(e):
    e.mp.setenv("OLLAMA_HOST", e.double.url + "/otro")


def _not_pulled(e):
    e.double.models = []


def _cancel_when_hanging(e):
    e.double.hang = True
    cancel = threading.Event()
    threading.Thread(target=lambda: e.double.hanging.wait(LIMIT) and cancel.set(), daemon=True).start()
    return {"cancel": cancel}


def _cancel_mid_answer(e):
    e.double.replies.append(REPLY)
    e.double.chunk_delay = 0.05
    cancel = threading.Event()
    pieces = llm.stream("cuenta", cancel=cancel)
    first = next(pieces)
    cancel.set()
    try:
        return first + "".join(pieces)
    except Cancelled as exc:
        assert exc.partial.startswith(first)
        raise


LLM_FAULTS = [
    # (setup, extra keyword arguments, class, phrase, expected .partial or None)
    pytest.param(_refused, {}, ServerUnreachable, "No hay ningún servidor de Ollama", None, id="ollama-refused"),
    pytest.param(_not_ollama, {}, OllamaError, "respondió con el error 404", None, id="ollama-wrong-path-404"),
    pytest.param(_not_pulled, {}, ModelNotPulled, "no está descargado", None, id="ollama-model-not-pulled"),
    pytest.param(
        _queue(failures=[(500, "llama runner process has terminated: signal: killed")]),
        {},
        OllamaError,
        "error 500",
        None,
        id="ollama-500",
    ),
    pytest.param(
        _queue(failures=[(400, "invalid options")]),
        {},
        OllamaError,
        "rechazó la petición (error 400",
        None,
        id="ollama-400",
    ),
    pytest.param(
        _queue(failures=[(503, BUSY_ERROR)] * llm.BUSY_ATTEMPTS),
        {},
        ServerBusy,
        f"Se intentó {llm.BUSY_ATTEMPTS} veces",
        None,
        id="ollama-503-busy-every-try",
    ),
    pytest.param(
        _queue(html_failures=[502]),
        {},
        OllamaError,
        "error 502 (502 Bad Gateway)",
        None,
        id="ollama-html-502-from-proxy",
    ),
    pytest.param(
        _queue(html_failures=[504]),
        {},
        OllamaError,
        "error 504 (504 Gateway Timeout)",
        None,
        id="ollama-html-504-from-proxy",
    ),
    pytest.param(
        _queue(html_failures=[500]), {}, OllamaError, "500 Internal Server Error", None, id="ollama-html-500-from-proxy"
    ),
    pytest.param(_cancel_when_hanging, {}, Cancelled, "No había llegado nada", "", id="ollama-hang-then-cancel"),
    pytest.param(
        _queue(hang=True),
        {"timeout": 0.5},
        ServerTimeout,
        "no empezó a responder a tiempo",
        None,
        id="ollama-hang-with-short-timeout",
    ),
    pytest.param(
        _queue(reply=True, cut_after_chunks=3), {}, StreamCut, "se cortó a mitad", FIRST_3, id="ollama-cut-stream"
    ),
    pytest.param(_queue(cut_after_chunks=0), {}, StreamCut, "No llegó nada", "", id="ollama-cut-before-any-text"),
    pytest.param(
        _queue(reply=True, drop_after_chunks=3),
        {},
        StreamCut,
        "se perdió la conexión",
        FIRST_3,
        id="ollama-connection-dropped-mid-stream",
    ),
    pytest.param(
        _queue(drop_after_chunks=0), {}, StreamCut, "No llegó nada", "", id="ollama-connection-dropped-before-any-text"
    ),
    pytest.param(
        _queue(reply=True, line_after_chunks=(3, MALFORMED_LINE)),
        {},
        StreamCut,
        "llegó una línea que no se entiende",
        FIRST_3,
        id="ollama-malformed-line",
    ),
    pytest.param(
        _queue(line_after_chunks=(0, MALFORMED_LINE)),
        {},
        OllamaError,
        "no se entiende",
        None,
        id="ollama-malformed-first-line",
    ),
    *[
        pytest.param(
            _queue(reply=True, line_after_chunks=(3, line)),
            {},
            StreamCut,
            "no es un objeto JSON",
            FIRST_3,
            id=f"ollama-non-object-line-{kind}",
        )
        for kind, line in zip(("array", "string", "number"), NON_OBJECT_LINES)
    ],
    pytest.param(
        _queue(line_after_chunks=(0, "[1, 2]")),
        {},
        OllamaError,
        "no es un objeto JSON",
        None,
        id="ollama-non-object-first-line",
    ),
    pytest.param(
        _queue(reply=True, line_after_chunks=(3, ERROR_LINE)),
        {},
        StreamCut,
        "el servidor envió un error (an error was encountered",
        FIRST_3,
        id="ollama-error-line-mid-stream",
    ),
    pytest.param(
        _queue(line_after_chunks=(0, ERROR_LINE)),
        {},
        OllamaError,
        "devolvió un error",
        None,
        id="ollama-error-line-first",
    ),
]


@pytest.mark.parametrize("setup, kwargs, cls, phrase, partial", LLM_FAULTS)
def test_ollama_fault(env, setup, kwargs, cls, phrase, partial):
    extra = setup(env) or {}
    error = raises(cls, phrase, lambda: "".join(llm.stream("hola", **kwargs, **extra)))
    if partial is not None:
        assert error.partial == partial
    if setup is _cancel_when_hanging:
        assert env.double.disconnected.wait(LIMIT), "the HTTP request was left open"


# Faults caught before anything is sent.
REQUEST_FAULTS = [
    pytest.param(
        lambda e: llm.ask("compara", images=[e.samples / "gato.jpg", e.samples / "cafe.jpg"]),
        TooManyImages,
        "2 imágenes en un mismo mensaje",
        id="request-two-images",
    ),
    pytest.param(lambda e: llm.ask("   "), OllamaError, "El mensaje está vacío", id="request-empty-prompt"),
    pytest.param(
        lambda e: llm.ask("hola", temperatura=0.2),
        OllamaError,
        "no tiene la opción «temperatura»",
        id="request-unknown-option",
    ),
    pytest.param(
        lambda e: llm.ask("¿qué ves?", images=b"no es una imagen"),
        ImageError,
        "no es una imagen",
        id="request-bad-image",
    ),
    pytest.param(
        lambda e: llm.ask("¿y?", history=[{"role": "robot", "content": "hola"}]),
        OllamaError,
        "no tiene un rol válido",
        id="request-bad-history-role",
    ),
    pytest.param(lambda e: llm.ask(["¿qué", "ves?"]), OllamaError, "debe ser una cadena", id="request-prompt-not-text"),
]


@pytest.mark.parametrize("call, cls, phrase", REQUEST_FAULTS)
def test_bad_request_sends_nothing(env, call, cls, phrase):
    raises(cls, phrase, lambda: call(env))
    assert env.double.chats() == []


# Lines a broken server or proxy can put in a stream: the message must stay short Spanish, without the
# JSON parser's or pydantic's English internals.
PARSER_JARGON = ("Unterminated", "Expecting", "validation error", "Field required", "input_value", "char ")


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(MALFORMED_LINE, id="stream-line-cut-json"),
        pytest.param("{}", id="stream-line-object-without-message"),
        pytest.param(NON_OBJECT_LINES[0], id="stream-line-not-an-object"),
    ],
)
def test_bad_stream_line_is_said_in_plain_spanish(env, line):
    env.double.replies.append(REPLY)
    env.double.line_after_chunks = (3, line)
    error = raises(StreamCut, "llegó una línea que no se entiende", lambda: llm.ask("hola"))
    assert error.partial == FIRST_3
    assert not [word for word in PARSER_JARGON if word in error.message], error.message
    assert len(error.message) <= 160, error.message


def test_cancel_mid_answer_keeps_the_partial(env):
    error = raises(Cancelled, "Se conserva lo recibido", lambda: _cancel_mid_answer(env))
    assert error.partial and REPLY.startswith(error.partial) and error.partial != REPLY


def _big(e) -> str:
    e.double.reply_size, e.double.piece_size = MB, 4096
    return e.double.answer({})  # the stand-in text the double will stream


RECOVERED = [
    pytest.param(_queue(failures=[(503, BUSY_ERROR)] * 2), 2, id="ollama-503-twice-then-answers"),
    pytest.param(_queue(html_failures=[503]), 1, id="ollama-html-503-then-answers"),
]


@pytest.mark.parametrize("setup, retries", RECOVERED)
def test_busy_server_is_retried_and_answers(env, setup, retries):
    setup(env)
    said: list[str] = []
    answer = finishes(lambda: llm.ask("hola", on_status=said.append))
    assert answer.startswith(PREFIX) and "«hola»" in answer
    assert len(said) == retries and all("Servidor ocupado, reintento en" in s for s in said)


def test_one_megabyte_answer_arrives_whole(env):
    expected = _big(env)
    assert len(expected) == MB
    assert finishes(lambda: llm.ask("escribe mucho")) == expected


# --- the chat widget, headless ------------------------------------------------------------------------


class Chat:
    """A headless ChatWidget that records the errors it shows and every status it displays."""

    def __init__(self, tmp: Path):
        self.widget = ChatWidget(export_dir=tmp / "conversaciones")
        self.errors: list[BaseException] = []
        self.statuses: list[str] = []
        show = self.widget._show_error

        def recording(exc):
            self.errors.append(exc)
            show(exc)

        self.widget._show_error = recording
        self.widget.status.observe(lambda change: self.statuses.append(change["new"]), "value")

    def bubbles(self) -> list[str]:
        return [bubble.value for bubble in self.widget.pane.children]


@pytest.fixture
def chat(env):
    chat = Chat(env.tmp)
    assert not chat.bubbles(), "the widget did not start cleanly"
    yield chat
    chat.widget.stop()
    chat.widget.wait(LIMIT)


def _stop_when_hanging(e, chat):
    assert e.double.hanging.wait(LIMIT)
    chat.widget.stop()


def _stop_after_two_words(e, chat):
    deadline = time.monotonic() + LIMIT
    while "dos" not in "".join(chat.bubbles()[-1:]) and time.monotonic() < deadline:
        time.sleep(0.01)
    chat.widget.stop()


def _bad_host_now(e):
    e.mp.setenv("OLLAMA_HOST", "localhost:114340")


CHAT_FAULTS = [
    # (setup, action after send, class shown (None: no error), phrase, expected partial answer, how it ends)
    pytest.param(
        _refused, None, ServerUnreachable, "No hay ningún servidor de Ollama", "", "interrupted", id="chat-refused"
    ),
    pytest.param(
        _bad_host_now,
        None,
        ConfigError,
        "OLLAMA_HOST=«localhost:114340»",
        "",
        "interrupted",
        id="chat-malformed-ollama-host",
    ),
    pytest.param(
        _not_pulled, None, ModelNotPulled, "no está descargado", "", "interrupted", id="chat-model-not-pulled"
    ),
    pytest.param(
        _queue(failures=[(500, "model runner has unexpectedly stopped")]),
        None,
        OllamaError,
        "error 500",
        "",
        "interrupted",
        id="chat-500",
    ),
    pytest.param(
        _queue(failures=[(503, BUSY_ERROR)] * llm.BUSY_ATTEMPTS),
        None,
        ServerBusy,
        "está ocupado",
        "",
        "interrupted",
        id="chat-503-busy-every-try",
    ),
    pytest.param(
        _queue(html_failures=[502]),
        None,
        OllamaError,
        "error 502 (502 Bad Gateway)",
        "",
        "interrupted",
        id="chat-html-502",
    ),
    pytest.param(_queue(hang=True), _stop_when_hanging, None, "", "", "stopped", id="chat-hang-then-stop"),
    pytest.param(
        _queue(reply=True, chunk_delay=0.2), _stop_after_two_words, None, "", None, "stopped", id="chat-stop-mid-answer"
    ),
    pytest.param(
        _queue(reply=True, cut_after_chunks=3),
        None,
        StreamCut,
        "se cortó a mitad",
        FIRST_3,
        "interrupted",
        id="chat-cut-stream",
    ),
    pytest.param(
        _queue(reply=True, drop_after_chunks=3),
        None,
        StreamCut,
        "se perdió la conexión",
        FIRST_3,
        "interrupted",
        id="chat-connection-dropped",
    ),
    pytest.param(
        _queue(reply=True, line_after_chunks=(3, MALFORMED_LINE)),
        None,
        StreamCut,
        "línea que no se entiende",
        FIRST_3,
        "interrupted",
        id="chat-malformed-line",
    ),
    *[
        pytest.param(
            _queue(reply=True, line_after_chunks=(3, line)),
            None,
            StreamCut,
            "no es un objeto JSON",
            FIRST_3,
            "interrupted",
            id=f"chat-non-object-line-{kind}",
        )
        for kind, line in zip(("array", "string", "number"), NON_OBJECT_LINES)
    ],
    pytest.param(
        _queue(line_after_chunks=(0, "[1, 2]")),
        None,
        OllamaError,
        "no es un objeto JSON",
        "",
        "interrupted",
        id="chat-non-object-first-line",
    ),
    pytest.param(
        _queue(reply=True, line_after_chunks=(3, ERROR_LINE)),
        None,
        StreamCut,
        "el servidor envió un error",
        FIRST_3,
        "interrupted",
        id="chat-error-line-mid-stream",
    ),
]


@pytest.mark.parametrize("with_image", [False, True], ids=["text", "with-image"])
@pytest.mark.parametrize("setup, action, cls, phrase, partial, ending", CHAT_FAULTS)
def test_chat_fault_loses_nothing_and_recovers(env, chat, setup, action, cls, phrase, partial, ending, with_image):
    widget, question = chat.widget, "¿Qué ves en la foto?"
    if with_image:
        widget.attach_image(env.samples / "gato.jpg")
        image = widget._image
    setup(env)
    assert widget.send(question)
    if action:
        action(env, chat)
    assert widget.wait(LIMIT), "the answer never ended"

    # nothing lost: the question, its image and what arrived of the answer
    asked, answer = widget.history
    assert (asked.role, asked.content, asked.images) == ("user", question, [image] if with_image else [])
    assert answer.role == "assistant"
    if partial is not None:
        assert answer.content == partial
    else:
        assert answer.content and REPLY.startswith(answer.content) and answer.content != REPLY
    assert answer.stopped == (ending == "stopped") and bool(answer.interrupted) == (ending == "interrupted")
    note = "respuesta detenida" if ending == "stopped" else "respuesta interrumpida"
    if ending == "interrupted" and not answer.content:  # nothing arrived: the red message alone says why
        assert len(chat.bubbles()) == 2 and "course-error" in chat.bubbles()[1]
    else:
        assert note in chat.bubbles()[1]
    if answer.content:
        assert html.escape(answer.content.split()[0]) in chat.bubbles()[1]
    assert question in chat.bubbles()[0] and ('src="data:image/jpeg' in chat.bubbles()[0]) == with_image

    # the Spanish message, in the pane, with the exact class; never "Error inesperado"
    if cls is None:
        assert chat.errors == [] and len(chat.bubbles()) == 2 and widget.status.value == "Respuesta detenida."
    else:
        (error,) = chat.errors
        check_error(error, cls, phrase)
        assert answer.interrupted == error.message
        assert "course-error" in chat.bubbles()[-1] and html.escape(phrase) in chat.bubbles()[-1]
        assert "Algo falló" in widget.status.value
        # offered again, without the student retyping or reattaching
        assert widget.prompt.value == question and (widget._image is not None) == with_image
    assert not any(bad in text for text in chat.bubbles() + chat.statuses for bad in NOT_STUDENT_TEXT)
    if ending == "stopped" and partial == "":
        assert any("esperando la primera palabra" in s for s in chat.statuses)
        assert env.double.disconnected.wait(LIMIT), "Parar left the HTTP request open"

    # the export keeps the unfinished turn
    md_path, json_path = widget.export(env.tmp / "exportes")
    exported = json.loads(json_path.read_text(encoding="utf-8"))["messages"]
    assert [m["content"] for m in exported] == [question, answer.content]
    assert exported[1].get("stopped" if ending == "stopped" else "interrupted")
    assert f"*({note})*" in md_path.read_text(encoding="utf-8")

    # usable again: the server is back and the next send gets a whole answer
    env.double.reset()
    env.mp.setenv("OLLAMA_HOST", env.double.url)
    if cls is None and with_image:  # after Parar the student attaches the photo again to ask again
        widget.attach_image(env.samples / "gato.jpg")
    assert widget.send() if cls is not None else widget.send(question)
    assert widget.wait(LIMIT) and len(widget.history) == 4 and not chat.errors[1:]
    again, reply = widget.history[2:]
    assert again.content == question and bool(again.images) == with_image
    assert reply.content.startswith(PREFIX) and not (reply.stopped or reply.interrupted)
    assert ("Imágenes: JPEG" in reply.content) == with_image
    assert widget.status.value == "Respuesta completa."


def test_chat_busy_server_shows_the_retry_in_the_status(env, chat):
    env.double.failures.extend([(503, BUSY_ERROR)] * 2)
    assert chat.widget.send("hola") and chat.widget.wait(LIMIT)
    assert chat.errors == [] and chat.widget.history[-1].content.startswith(PREFIX)
    assert sum("Servidor ocupado, reintento en" in s for s in chat.statuses) == 2


def test_chat_one_megabyte_answer_arrives_whole(env, chat):
    expected = _big(env)
    assert chat.widget.send("escribe mucho") and chat.widget.wait(LIMIT)
    answer = chat.widget.history[-1]
    assert answer.content == expected and not (answer.stopped or answer.interrupted)
    assert expected[-40:] in chat.bubbles()[-1] and chat.errors == []


@pytest.mark.parametrize("reply", ["", "  \n "], ids=["empty", "blank"])
def test_chat_empty_answer_is_explained(env, chat, reply):
    env.double.replies.append(reply)
    assert chat.widget.send("hola") and chat.widget.wait(LIMIT)
    assert [m.content for m in chat.widget.history] == ["hola", reply]  # kept as it came
    shown = re.sub(r"<[^>]*>", " ", chat.bubbles()[-1]).replace("Asistente", "").strip()
    assert shown and chat.widget.status.value != "Respuesta completa."


def _upload(data_of, name):
    def act(e, chat):
        chat.widget.upload.value = (upload_item(data_of(e), name),)

    return act


def _attach(make):
    def act(e, chat):
        source = make(e)
        with pytest.raises(ImageError) as info:
            chat.widget.attach_image(source)
        chat.errors.append(info.value)  # raised to the caller, not shown: recorded here to check it

    return act


def _record(data: bytes):
    def act(e, chat):
        chat.widget.transcribe(data)
        assert chat.widget.wait(LIMIT)

    return act


def _export_to_a_file(e, chat):
    target = write(e, "no-soy-carpeta", b"x")
    with pytest.raises(ExportError) as info:
        chat.widget.export(target)
    chat.errors.append(info.value)


def _restore(data: bytes | None):
    def act(e, chat):
        path = e.tmp / "guardada.json" if data is None else write(e, "guardada.json", data)
        assert not chat.widget.restore(path)

    return act


CHAT_INPUT_FAULTS = [
    pytest.param(
        _upload(lambda e: b"esto no es una imagen", "notas.jpg"),
        ImageError,
        "no es una imagen",
        id="chat-upload-not-an-image",
    ),
    pytest.param(
        _upload(lambda e: sample_bytes(e, "gato.jpg")[:15_000], "cortada.jpg"),
        ImageError,
        "dañada o incompleta",
        id="chat-upload-truncated-jpeg",
    ),
    pytest.param(_upload(lambda e: b"", "vacia.jpg"), ImageError, "vacío", id="chat-upload-empty"),
    pytest.param(_attach(lambda e: np.full((8, 8, 3), np.nan)), ImageError, "NaN", id="chat-attach-nan-array"),
    pytest.param(
        _attach(lambda e: deny_reading(e, write(e, "privada.jpg", sample_bytes(e, "gato.jpg")))),
        ImageError,
        "No tengo permiso",
        id="chat-attach-unreadable-file",
    ),
    pytest.param(_record(b""), AudioError, "vacío", id="chat-recording-empty"),
    pytest.param(_record(b"no es audio " * 30), AudioError, "no es un archivo de audio", id="chat-recording-not-audio"),
    pytest.param(
        _record(wav_bytes(np.zeros(SAMPLE_RATE))), NoSpeechError, "No se oyó ninguna voz", id="chat-recording-silent"
    ),
    pytest.param(_export_to_a_file, ExportError, "no es una carpeta", id="chat-export-to-a-file"),
    pytest.param(_restore(None), ExportError, "No existe la conversación", id="chat-restore-missing-file"),
    pytest.param(_restore(b"{"), ExportError, "no es una conversación", id="chat-restore-not-json"),
    pytest.param(_restore(b'{"messages": 3}'), ExportError, "no es una conversación", id="chat-restore-not-a-chat"),
    pytest.param(
        _restore(b'{"messages": [{"role": "user"}]}'), ExportError, "no es una conversación", id="chat-restore-no-text"
    ),
]


@pytest.mark.parametrize("act, cls, phrase", CHAT_INPUT_FAULTS)
def test_chat_bad_input_is_explained_and_the_chat_goes_on(env, chat, act, cls, phrase):
    widget = chat.widget
    widget.prompt.value = "lo que estaba escribiendo"
    act(env, chat)
    (error,) = chat.errors
    check_error(error, cls, phrase)
    assert widget.prompt.value == "lo que estaba escribiendo" and widget._image is None
    assert not any(bad in text for text in chat.bubbles() + chat.statuses for bad in NOT_STUDENT_TEXT)
    if chat.bubbles() and "course-error" in chat.bubbles()[-1]:
        assert html.escape(phrase) in chat.bubbles()[-1]
    before = len(widget.history)
    assert widget.send() and widget.wait(LIMIT)
    assert len(widget.history) == before + 2 and widget.history[-1].content.startswith(PREFIX)


def test_chat_autosave_that_fails_loses_nothing_and_a_bad_restore_keeps_the_conversation(env, chat):
    widget = chat.widget
    assert widget.send("Primera") and widget.wait(LIMIT)
    saved = widget.store.path
    assert saved is not None and saved.exists()
    folder = saved.parent
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    folder.write_text("ahora soy un archivo")  # the folder became a file: the next save cannot be written
    assert widget.send("Segunda") and widget.wait(LIMIT)
    (error,) = chat.errors
    check_error(error, ExportError, "No se pudo guardar la conversación automáticamente")
    assert [m.content for m in widget.history][::2] == ["Primera", "Segunda"]
    assert widget.history[-1].content.startswith(PREFIX)  # the answer arrived and is shown
    md_path, json_path = widget.export(env.tmp / "otra")  # and it can still be saved elsewhere
    assert len(json.loads(json_path.read_text(encoding="utf-8"))["messages"]) == 4
    assert not widget.restore(env.tmp / "no-existe.json")
    assert len(widget.history) == 4 and len(chat.bubbles()) == 6  # four messages and both errors, all still there
    assert "No existe la conversación" in chat.bubbles()[-1] and "Segunda" in chat.bubbles()[2]


# --- issue 22: a second battery (data loss, hangs, raw text, arguments, saved files) ----------------------


class RawServer:
    """A loopback TCP server whose every connection goes to `serve(conn)`: the faults an HTTP server never
    makes on purpose (headers one byte at a time, a redirect loop, garbage, another protocol)."""

    def __init__(self, serve):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self._closed = threading.Event()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._serve = serve
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn) -> None:
        with conn:
            try:
                conn.recv(65536)  # the request: its content does not matter here
                self._serve(conn, self._closed)
                conn.shutdown(socket.SHUT_WR)  # then read what is left, so that closing sends no reset
                conn.settimeout(1.0)
                while conn.recv(65536):
                    pass
            except OSError:
                pass

    def close(self) -> None:
        self._closed.set()
        self._sock.close()


@pytest.fixture
def raw_server():
    servers = []

    def start(serve) -> str:
        servers.append(RawServer(serve))
        return servers[-1].url

    yield start
    for server in servers:
        server.close()


def _trickle_headers(conn, closed):
    """A status line, then one byte of a header every 0.3 s, forever: every read gets a byte in time."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Lento: ")
    while not closed.wait(0.3):
        conn.sendall(b"a")


def _redirect_loop(conn, closed):
    conn.sendall(
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /api/chat\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )


def _gzip_garbage(conn, closed):
    body = b"\x1f\x8b esto no es gzip" * 4
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nContent-Encoding: gzip\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def _not_http(conn, closed):
    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a 16 KiB file system filled to the last byte (a real «No space left on device»)."""
    folder = tmp_path / "lleno"
    folder.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(folder)], check=True, capture_output=True
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("mounting a small file system needs root")
    try:
        filler = os.open(folder / "relleno", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(filler, b"x" * 512):
                pass
        except OSError:  # ENOSPC: full
            pass
        finally:
            os.close(filler)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill_then_fail_autosave(chat, folder: Path) -> None:
    """One saved turn, then the conversations folder becomes a file: the next turn is not saved."""
    widget = chat.widget
    assert widget.send("Primera") and widget.wait(LIMIT)
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    folder.write_text("ahora soy un archivo")
    assert widget.send("Segunda") and widget.wait(LIMIT)
    assert [type(e) for e in chat.errors] == [ExportError]


# 1. Borrar must not throw away the only copy


def test_clear_refuses_an_unsaved_conversation_until_asked_twice(env, chat):
    widget = chat.widget
    _fill_then_fail_autosave(chat, env.tmp / "conversaciones")
    widget.clear()
    assert len(widget.history) == 4 and "Segunda" in "".join(chat.bubbles())
    assert "no está guardada" in widget.status.value and "Exportar" in widget.status.value
    assert "sigue guardada" not in widget.status.value
    widget.clear()  # the second press discards it, as the status said
    assert widget.history == [] and "sin guardar" in widget.status.value


def test_clear_after_exporting_the_unsaved_conversation_says_where_it_is(env, chat):
    widget = chat.widget
    _fill_then_fail_autosave(chat, env.tmp / "conversaciones")
    md_path, _ = widget.export(env.tmp / "otra")
    widget.clear()
    assert widget.history == [] and md_path.name in widget.status.value


# 2. Abrir must not replace an unsaved conversation without a word


def test_restore_refuses_to_replace_an_unsaved_conversation_until_asked_twice(env, chat):
    widget = chat.widget
    other = env.tmp / "otra.json"
    other.write_text(json.dumps({"messages": [{"role": "user", "content": "Vieja"}]}), encoding="utf-8")
    _fill_then_fail_autosave(chat, env.tmp / "conversaciones")
    assert not widget.restore(other)
    assert [m.content for m in widget.history][::2] == ["Primera", "Segunda"]
    assert "no está guardada" in widget.status.value
    assert widget.restore(other) and [m.content for m in widget.history] == ["Vieja"]


# 3. Disk full: no truncated or empty files left behind, and the reason in Spanish


def test_autosave_on_a_full_disk_leaves_no_empty_files(env, full_disk):
    chat = Chat(env.tmp)
    chat.widget.export_dir = full_disk
    chat.widget.store = chat.widget.store.__class__(full_disk)
    for question in ("Primera", "Segunda", "Tercera"):
        assert chat.widget.send(question) and chat.widget.wait(LIMIT)
    assert sorted(p.name for p in full_disk.iterdir()) == ["relleno"]
    assert len(chat.errors) == 3
    for error in chat.errors:
        check_error(error, ExportError, "no queda espacio")
        assert "No space" not in str(error)


def test_export_on_a_full_disk_leaves_no_truncated_markdown(env, chat, full_disk):
    assert chat.widget.send("Una pregunta") and chat.widget.wait(LIMIT)
    with pytest.raises(ExportError) as info:
        chat.widget.export(full_disk)
    check_error(info.value, ExportError, "no queda espacio")
    assert "No space" not in str(info.value)
    assert sorted(p.name for p in full_disk.iterdir()) == ["relleno"]


# 4. Exportar while an answer streams keeps the question being answered


def test_export_while_streaming_keeps_the_question_and_what_arrived(env, chat):
    env.double.replies.append(REPLY)
    env.double.chunk_delay = 0.2
    widget = chat.widget
    assert widget.send("¿Cuántos números?")
    deadline = time.monotonic() + LIMIT
    while "dos" not in "".join(chat.bubbles()[-1:]) and time.monotonic() < deadline:
        time.sleep(0.01)
    md_path, json_path = widget.export(env.tmp / "exportes")
    widget.stop()
    assert widget.wait(LIMIT)
    messages = json.loads(json_path.read_text(encoding="utf-8"))["messages"]
    assert messages[0]["content"] == "¿Cuántos números?"
    assert messages[1]["content"].startswith("uno dos") and messages[1]["interrupted"]
    assert "¿Cuántos números?" in md_path.read_text(encoding="utf-8")


# 5. A whole-call deadline when the caller gives `timeout`


def test_ask_timeout_bounds_the_whole_call(env, raw_server):
    env.mp.setenv("OLLAMA_HOST", raw_server(_trickle_headers))
    raises(ServerTimeout, "(timeout=1 s para toda la respuesta)", lambda: llm.ask("hola", timeout=1))


# 6. FIFOs, /dev/zero and other files that are not regular files


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_load_audio_refuses_a_fifo_instead_of_blocking(env):
    fifo = _fifo(env.tmp / "tuberia.wav")
    raises(AudioError, "no es un archivo normal", lambda: load_audio(fifo))


def test_open_image_refuses_a_fifo_instead_of_blocking(env):
    fifo = _fifo(env.tmp / "tuberia.jpg")
    raises(ImageError, "no es un archivo normal", lambda: open_image(fifo))


def test_chat_starts_with_a_fifo_among_the_conversations(env):
    folder = env.tmp / "conversaciones"
    folder.mkdir()
    fifo = _fifo(folder / "chat-tuberia.json")
    chat = finishes(lambda: Chat(env.tmp))
    assert chat.widget.saved_picker.options == (("(conversaciones guardadas)", ""),)
    assert not finishes(lambda: chat.widget.restore(fifo))
    check_error(chat.errors[-1], ExportError, "no es un archivo normal")


_LOW_MEMORY = 2_000_000_000  # bytes of data a child process may take: reading /dev/zero without limit ends there


def _in_a_small_child(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a Python child whose memory is capped, so that a read without limit fails there
    instead of filling this machine's memory."""
    import resource

    def cap():
        resource.setrlimit(resource.RLIMIT_DATA, (_LOW_MEMORY, _LOW_MEMORY))

    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, preexec_fn=cap, cwd=Path.cwd()
    )


def test_dev_zero_among_the_conversations_is_left_out_and_refused(env):
    folder = env.tmp / "conversaciones"
    folder.mkdir()
    (folder / "chat-cero.json").symlink_to("/dev/zero")
    code = f"""
from course_utils import chat_store
from course_utils.errors import ExportError
print("listed:", len(chat_store.saved({str(folder)!r})))
for path in ({str(folder / "chat-cero.json")!r}, "/dev/zero"):
    try:
        chat_store.load(path)
    except ExportError as exc:
        print("refused:", exc.message)
"""
    child = _in_a_small_child(code)
    assert child.returncode == 0, child.stderr[-2000:]
    assert "listed: 0" in child.stdout and child.stdout.count("no es un archivo normal") == 2


def test_restore_of_a_huge_file_is_refused(env, chat):
    huge = env.tmp / "enorme.json"
    with open(huge, "wb") as file:
        file.truncate(chat_store.MAX_SAVED_BYTES + 1)  # sparse: takes no disk
    assert not finishes(lambda: chat.widget.restore(huge))
    check_error(chat.errors[-1], ExportError, "demasiado grande")


# 7. Highlighting has a time budget


def _short_lines(size: int) -> str:
    """Thousands of one-letter lines: C#'s lexer took 2.6 s on 4 KB of them, and time growing with the square."""
    return "a\n" * (size // 2)


def test_highlighting_out_of_time_shows_plain_escaped_code(monkeypatch):
    from course_utils import safe_html

    monkeypatch.setattr(safe_html, "HIGHLIGHT_SECONDS", 0.0)
    safe_html._highlighted.cache_clear()
    html_text = safe_html.render_markdown("```python\nx = '<b>'\n```")
    assert "x = &#39;&lt;b&gt;&#39;" in html_text or "x = '&lt;b&gt;'" in html_text
    assert 'class="s' not in html_text  # no token spans: plain text
    safe_html._highlighted.cache_clear()


@pytest.mark.slow
def test_every_lexer_renders_short_lines_in_bounded_time():
    """Pygments' lexers over thousands of very short lines (the pattern that made 82 of them slow)."""
    from pygments.lexers import get_all_lexers

    from course_utils import safe_html

    code = _short_lines(20_000)
    names = sorted({aliases[0] for _, aliases, _, _ in get_all_lexers(plugins=False) if aliases})
    assert len(names) > 500
    for name in names:
        safe_html._highlighted.cache_clear()
        rendered = finishes(lambda name=name: safe_html.render_markdown(f"```{name}\n{code}\n```"))
        text = html.unescape(re.sub(r"<[^>]*>", "", rendered))
        assert code.strip() in text, name  # the whole code, highlighted or plain


# 8. check_server says what went wrong in Spanish


class _FakeOllama(BaseHTTPRequestHandler):
    tags: bytes | None = b'{"models": []}'  # None: never answer

    def do_GET(self):
        if self.path == "/api/version":
            body = b'{"version": "0.6.0"}'
        elif self.tags is None:
            time.sleep(llm.CHECK_TIMEOUT + 2)
            return
        else:
            body = self.tags
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    "tags, cls, phrase",
    [
        pytest.param(b"no es json", OllamaError, "la lista de modelos", id="check-tags-not-json"),
        pytest.param(b'{"models": 5}', OllamaError, "la lista de modelos", id="check-tags-wrong-fields"),
        pytest.param(None, ServerTimeout, "la lista de modelos", id="check-tags-timeout"),
    ],
)
def test_check_server_explains_a_bad_model_list_in_spanish(env, tags, cls, phrase):
    handler = type("Handler", (_FakeOllama,), {"tags": tags})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env.mp.setenv("OLLAMA_HOST", f"http://127.0.0.1:{server.server_address[1]}")
        status = finishes(llm.check_server)
    finally:
        server.shutdown()
        server.server_close()
    check_error(status.error, cls, phrase)
    shown = str(status.error)
    assert not any(word in shown for word in (*PARSER_JARGON, "timed out", "validation", "ListResponse"))


# 9. A saved file is checked whole before the current conversation is touched


def _saved_conversation(message: dict) -> bytes:
    return json.dumps({"messages": [message, {"role": "assistant", "content": "ok"}]}).encode()


@pytest.mark.parametrize(
    "data, phrase",
    [
        pytest.param(
            _saved_conversation({"role": "user", "content": 5}), "no es una conversación", id="content-number"
        ),
        pytest.param(
            _saved_conversation({"role": "user", "content": "hola", "images": ["aGVsbG8="]}),
            "no es una imagen",
            id="image-not-an-image",
        ),
        pytest.param(
            _saved_conversation({"role": "user", "content": "hola", "images": ["no base64!"]}),
            "no es una conversación",
            id="image-not-base64",
        ),
        pytest.param(
            _saved_conversation(
                {"role": "user", "content": "hola", "images": [base64.b64encode(png_header(20_000, 20_000)).decode()]}
            ),
            "demasiado grande",
            id="image-400-megapixels",
        ),
        pytest.param(_saved_conversation({"role": "robot", "content": "hola"}), "no es una conversación", id="role"),
    ],
)
def test_bad_saved_conversation_leaves_the_current_one_working(env, chat, data, phrase):
    widget = chat.widget
    assert widget.send("Mi pregunta") and widget.wait(LIMIT)
    before = chat.bubbles()
    assert not widget.restore(write(env, "mala.json", data))
    check_error(chat.errors[-1], ExportError, phrase)
    assert chat.bubbles()[:2] == before[:2] and [m.content for m in widget.history][0] == "Mi pregunta"
    assert widget.send("Otra") and widget.wait(LIMIT)
    assert widget.history[-1].content.startswith(PREFIX) and len(chat.errors) == 1


# 10. Arguments are checked, in Spanish


def _tiny_image() -> np.ndarray:
    return np.zeros((8, 8, 3), np.uint8)


ARGUMENT_FAULTS = [
    pytest.param(
        lambda e: llm.prepare_image(_tiny_image(), max_pixels=-1), "max_pixels", id="prepare-image-max-pixels"
    ),
    pytest.param(lambda e: llm.prepare_image(_tiny_image(), max_side=0), "max_side", id="prepare-image-max-side-0"),
    pytest.param(lambda e: llm.ask("hola", cancel=True), "cancel", id="ask-cancel-true"),
    pytest.param(lambda e: llm.ask("hola", timeout=-1), "timeout", id="ask-timeout-negative"),
    pytest.param(lambda e: llm.ask("hola", temperature=float("nan")), "temperature", id="ask-temperature-nan"),
    pytest.param(lambda e: speech.transcribe(tone(), beam_size=0), "beam_size", id="transcribe-beam-size-0"),
    pytest.param(lambda e: speech.transcribe(tone(), temperature=-1.0), "temperature", id="transcribe-temperature"),
    pytest.param(lambda e: speech.speech_regions(tone(), threshold="alto"), "threshold", id="vad-threshold-text"),
    pytest.param(lambda e: vision.top_k(_tiny_image(), k="7"), "k", id="top-k-text"),
    pytest.param(lambda e: vision.top_k(_tiny_image(), k=2.5), "k", id="top-k-float"),
]


@pytest.mark.parametrize("call, phrase", ARGUMENT_FAULTS)
def test_bad_argument_is_explained(env, call, phrase):
    error = raises(OptionError, phrase, lambda: call(env))
    assert f"«{phrase}»" in error.message or f"{phrase}=" in error.message
    assert env.double.chats() == []  # nothing was sent


def test_export_dir_with_a_nul_byte_is_explained_everywhere(env):
    chat = Chat(env.tmp)
    widget = chat.widget
    widget.export_dir = Path("conver\0saciones")
    widget.store = widget.store.__class__(widget.export_dir)
    assert widget.send("hola") and widget.wait(LIMIT)  # autosave in the answer's thread
    widget._export_clicked()
    assert [type(e) for e in chat.errors] == [ExportError, ExportError]
    for error in chat.errors:
        check_error(error, ExportError, "carácter nulo")
    assert widget.history[-1].content.startswith(PREFIX)


def test_export_to_a_number_is_explained(env, chat):
    raises(ExportError, "carpeta", lambda: chat.widget.export(12345))


# 11. Client-side mistakes are not blamed on the server


@pytest.mark.parametrize(
    "serve, cls, phrase",
    [
        pytest.param(_redirect_loop, OllamaError, "redirige", id="redirect-loop"),
        pytest.param(_gzip_garbage, OllamaError, "comprimida", id="gzip-garbage"),
        pytest.param(_not_http, ServerUnreachable, "no es un servidor web", id="not-http"),
    ],
)
def test_server_that_is_not_ollama_is_named(env, raw_server, serve, cls, phrase):
    env.mp.setenv("OLLAMA_HOST", raw_server(serve))
    error = raises(cls, phrase, lambda: llm.ask("hola"))
    assert "se cortó a mitad" not in error.message


# 12. Silently wrong results


def _float_wav(samples: np.ndarray) -> bytes:
    data = np.asarray(samples, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, SAMPLE_RATE, SAMPLE_RATE * 4, 4, 32)
    chunks = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(chunks)) + chunks


def test_float_wav_with_nan_is_refused(env):
    samples = tone().astype(np.float32)
    samples[100:200] = np.nan
    raises(AudioError, "NaN", lambda: load_audio(_float_wav(samples)))
    assert np.allclose(load_audio(_float_wav(tone())), tone(), atol=1e-3)  # a clean one still reads


# 13. Temporary files are created exclusively


def test_autosave_never_writes_through_a_planted_symlink(env, chat):
    widget = chat.widget
    assert widget.send("Primera") and widget.wait(LIMIT)
    victim = write(env, "victima.txt", b"no me toques")
    planted = widget.store.path.with_name(widget.store.path.name + ".partial")
    planted.symlink_to(victim)
    assert widget.send("Segunda") and widget.wait(LIMIT)
    assert victim.read_bytes() == b"no me toques" and chat.errors == []
    saved = json.loads(widget.store.path.read_text(encoding="utf-8"))["messages"]
    assert [m["content"] for m in saved][::2] == ["Primera", "Segunda"]


# 18. The doctor's symbols carry a word


def test_doctor_symbols_carry_a_word():
    from course_utils import doctor

    report = doctor.Report(doctor.Check("prueba", status, "detalle") for status in doctor.ICONS)
    words = {doctor.OK: "bien", doctor.WARN: "aviso", doctor.ERROR: "error", doctor.INFO: "info"}
    text = str(report)
    table = report._repr_html_()
    for status, word in words.items():
        assert re.search(rf"{doctor.ICONS[status].split()[0]}\s*{word}", text, re.IGNORECASE), word
        assert word in table.lower()


# 14. The Voilà demo page loads nothing from outside the course's server


def test_voila_page_loads_no_stylesheet_from_a_cdn(voila, ollama_double):  # noqa: F811
    page = httpx.get(voila.url + "/", timeout=300).text
    assert "rendered_cells" in page or "jp-Notebook" in page  # the notebook's page, not an error
    outside = [
        url
        for url in re.findall(r'<(?:link|script)[^>]+(?:href|src)="([^"]+)"', page)
        if urlsplit(url).hostname not in (None, "127.0.0.1", "localhost")
    ]
    assert outside == []


# 15. Without a server: one red message, pointing to notebook 00 and the doctor, and no empty answer


def test_chat_without_a_server_shows_one_error_and_no_empty_answer(env):
    env.mp.setenv("OLLAMA_HOST", env.closed)
    chat = Chat(env.tmp)  # the check of the server when the chat opens already says it
    assert chat.widget.send("hola") and chat.widget.wait(LIMIT)
    shown = [bubble for bubble in chat.bubbles() if "course-error" in bubble]
    assert len(shown) == 1 and len(chat.errors) == 1
    assert "00_entorno" in shown[0] and "course_utils.doctor" in shown[0]
    assert not any("respuesta interrumpida" in bubble for bubble in chat.bubbles())
    assert "hola" in chat.bubbles()[0]
    # nothing lost: the turn stays in the conversation and the question is offered again
    assert [m.content for m in chat.widget.history] == ["hola", ""] and chat.widget.history[1].interrupted
    assert chat.widget.prompt.value == "hola"


# 16. Notebook 04's widget: the sample list after a reset, the upload's tooltip, one stand-in notice,
# Spanish names beside ImageNet's labels


def test_classifier_demo_reads_well_after_a_choice_and_a_reset(env, monkeypatch):
    from course_utils import vision_widget

    shown = []
    monkeypatch.setattr(vision_widget, "display", lambda *objects: shown.extend(objects))
    demo = vision_widget.ClassifierDemo(env.samples)
    placeholder = demo.sample.label
    assert placeholder and demo.sample.index == 0
    demo.choose("gato.jpg")
    notices = [o for o in shown if "Aviso:" in (getattr(o, "_repr_html_", lambda: "")() or "")]
    figures = [o for o in shown if hasattr(o, "savefig")]
    assert len(figures) == 1 and len(notices) + sum(bool(f._suptitle) for f in figures) == 1
    demo.reset()
    assert demo.sample.index == 0 and demo.sample.label == placeholder  # not a blank list
    assert isinstance(demo.upload.tooltip, str) and demo.upload.tooltip  # None reads «null» in the page
    assert isinstance(chat_upload_tooltip(env), str)


def chat_upload_tooltip(env) -> str | None:
    return Chat(env.tmp).widget.upload.tooltip


def test_imagenet_labels_show_a_spanish_name_where_there_is_one():
    ranking = vision.Ranking(
        [("tabby, tabby cat", 0.6), ("Egyptian cat", 0.3), ("hen-of-the-woods, hen of the woods", 0.1)]
    )
    assert "gato atigrado" in ranking.table() and "gato egipcio" in ranking._repr_html_()
    assert "hen-of-the-woods" in ranking.table()  # without a Spanish name, the original alone
    assert vision.spanish_name("tabby, tabby cat") == "gato atigrado" and vision.spanish_name("nada") is None


# 17. Figures a student can read at the size JupyterLab shows them


LAB_WIDTH_INCHES = 10.0  # a notebook cell is about 1000 px wide; Matplotlib's inline figures are 100 px per inch


def _unreadable(fig) -> list[str]:
    """What a student could not read: a figure wider than the cell (JupyterLab shrinks it, and its text with
    it) with text below 8 points once shrunk, and titles drawn over one another."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # a closed figure has no canvas of its own: draw it as inline figures are
    canvas.draw()
    renderer = canvas.get_renderer()
    shrink = min(1.0, LAB_WIDTH_INCHES / fig.get_figwidth())
    problems = []
    texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text")) if t.get_text()]
    problems += [
        f"«{t.get_text()}» at {t.get_fontsize() * shrink:.1f} pt" for t in texts if t.get_fontsize() * shrink < 8
    ]
    titles = [ax.title for ax in fig.axes if ax.get_title()] + ([fig._suptitle] if fig._suptitle else [])
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in titles]
    for i, (a, box_a) in enumerate(boxes):
        problems += [f"«{a}» over «{b}»" for b, box_b in boxes[i + 1 :] if box_a.overlaps(box_b)]
    return problems


def test_multi_head_attention_figure_is_readable():
    import torch

    from course_utils import attention

    tokens = ["El", " g", "ato", " du", "erme", " sobre", " la", " mesa", "."]
    weights = torch.softmax(torch.randn(4, len(tokens), len(tokens)), dim=-1)
    fig = attention.plot_attention(weights, tokens, "Atención multicabeza (pesos aleatorios)")
    assert _unreadable(fig) == []


def _layer_stacks():
    from course_utils import llama_vision

    published = SimpleNamespace(cross_attention_layers=[3, 8, 13, 18, 23, 28, 33, 38], num_hidden_layers=40)
    tiny = SimpleNamespace(cross_attention_layers=[3, 8], num_hidden_layers=10)
    return llama_vision.plot_layer_stacks({"11B publicado": published, "diminuto (aleatorio)": tiny})


def _layouts():
    from course_utils import llama_vision

    return llama_vision.plot_layouts()


def _scaling():
    from course_utils import attention

    return attention.plot_scaling(attention.scaling_experiment(dims=(4, 16, 64)))


def _patch_sequence(samples):
    from course_utils import patches

    return patches.plot_patch_sequence(open_image(samples / "gato.jpg").resize((224, 224)))


def _prediction(samples):
    ranking = vision.Ranking([("tabby, tabby cat", 0.5), ("tiger cat", 0.3), ("Egyptian cat", 0.2)])
    return vision.show_prediction(samples / "gato.jpg", ranking)


@pytest.mark.parametrize(
    "draw",
    [
        pytest.param(lambda s: _layer_stacks(), id="05-layer-stacks"),
        pytest.param(lambda s: _layouts(), id="05-tile-layouts"),
        pytest.param(lambda s: _scaling(), id="02-scaling"),
        pytest.param(_patch_sequence, id="03-patch-sequence"),
        pytest.param(_prediction, id="04-prediction"),
    ],
)
def test_lesson_figure_is_readable(samples, draw):
    assert _unreadable(draw(samples)) == []


def test_whisper_windows_and_segments_figure_is_readable():
    """Notebook 01 draws it 12 inches wide: its small labels must survive JupyterLab's shrinking."""
    import matplotlib.pyplot as plt

    from course_utils import audio

    fig, ax = plt.subplots(figsize=(12, 4.5), constrained_layout=True)
    segments = [SimpleNamespace(start=0.0, end=30.0), SimpleNamespace(start=30.0, end=38.0)]
    audio.plot_log_mel(tone(38.0).astype(np.float32), windows=[0.0, 30.0], segments=segments, ax=ax)
    plt.close(fig)
    assert _unreadable(fig) == []


@pytest.fixture
def lab_without_ollama(jupyter_env, tmp_path_factory, closed_port):  # noqa: F811
    """JupyterLab whose kernels find no Ollama server (OLLAMA_HOST on a closed loopback port)."""
    from tests.test_browser import ROOT, Server, free_port

    port, token = free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={port}",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT / 'notebooks'}",
        "--LabApp.expose_app_in_browser=True", *(["--allow-root"] if os.geteuid() == 0 else []),
    ]  # fmt: skip
    env = {**jupyter_env, "OLLAMA_HOST": closed_port}
    server = Server(cmd, f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("lab") / "lab.log", env)
    server.token = token
    yield server.wait_ready(f"/api/status?token={token}")
    server.stop()


@pytest.mark.browser
def test_jupyterlab_chat_without_a_server_shows_one_error(browser, lab_without_ollama, artifacts):  # noqa: F811
    from tests.test_browser import KERNEL_IDLE, NOTEBOOK, SLOW

    lab = lab_without_ollama
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    try:
        page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?token={lab.token}", timeout=SLOW)
        page.wait_for_function(KERNEL_IDLE, timeout=SLOW)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        chat = page.locator(".course-chat").last
        area = chat.locator(".course-prompt-area")
        area.wait_for(timeout=SLOW)
        chat.locator(".course-error").first.wait_for(timeout=SLOW)  # the check of the server when it opens
        area.fill("¿Hay alguien?")
        area.press("Enter")
        chat.locator(".course-user", has_text="¿Hay alguien?").wait_for(timeout=SLOW)
        page.wait_for_function(  # the question is offered again once the send has failed
            "() => [...document.querySelectorAll('.course-chat .course-prompt-area')].pop().value === '¿Hay alguien?'",
            timeout=SLOW,
        )
        chat.screenshot(path=str(artifacts / "chat_without_server_lab.png"))
        errors = chat.locator(".course-error")
        assert errors.count() == 1
        assert "00_entorno" in errors.first.inner_text() and "course_utils.doctor" in errors.first.inner_text()
        assert chat.locator(".course-assistant").count() == 0  # no empty «respuesta interrumpida» bubble
    finally:
        context.close()
