"""Which models, server and device the course uses, read from environment variables.

The same notebook runs the real models on the lab server and small stand-ins in CI:
only the environment differs, never the code.

| variable | default | meaning |
|---|---|---|
| COURSE_WHISPER_MODEL | base | openai-whisper's model: a name (tiny, base, small…) or a .pt checkpoint |
| COURSE_FASTER_WHISPER_MODEL | base | faster-whisper's model: a name or a CTranslate2 folder (with model.bin) |
| COURSE_WHISPER_BACKEND | whisper | the engine of the chat's dictation and of `python -m course_utils.speech`: |
|   |   | whisper (openai-whisper) or faster-whisper (the notebooks choose their own) |
| COURSE_VIT_MODEL | google/vit-base-patch16-224 | a Hugging Face id or a local folder |
| COURSE_LLM_MODEL | llama3.2-vision | an Ollama vision model |
| OLLAMA_HOST | http://localhost:11434 | the Ollama server |
| COURSE_DEVICE | auto | cpu, cuda or cuda:N |
| COURSE_CACHE_DIR | <user cache>/curso-multimodal | what the course prepares (prepare_class, base rebuilt offline) |
| COURSE_STANDINS | 0 | 1: a model that is missing with no network is replaced by a random-weight stand-in |
|   |   | («modelo de sustitución»), so a lesson runs to the end offline |
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from course_utils.errors import ConfigError

DEFAULTS = {
    "COURSE_WHISPER_MODEL": "base",
    "COURSE_FASTER_WHISPER_MODEL": "base",
    "COURSE_WHISPER_BACKEND": "whisper",
    "COURSE_VIT_MODEL": "google/vit-base-patch16-224",
    "COURSE_LLM_MODEL": "llama3.2-vision",
    "OLLAMA_HOST": "http://localhost:11434",
    "COURSE_DEVICE": "auto",
    "COURSE_STANDINS": "0",
}
WHISPER_BACKENDS = ("whisper", "faster-whisper")  # openai-whisper (PyTorch) and faster-whisper (CTranslate2)
# The one command that prepares, with no network, every model the course can prepare offline.
PREPARE_OFFLINE = "python -m course_utils.prepare_class --sin-red"

# A directory (or a checkpoint's directory) holding this file is a test stand-in, not a real model.
STANDIN_MARKER = "STANDIN.txt"


@dataclass(frozen=True)
class Settings:
    whisper_model: str
    vit_model: str
    llm_model: str
    ollama_host: str
    device: str
    faster_whisper_model: str = DEFAULTS["COURSE_FASTER_WHISPER_MODEL"]
    whisper_backend: str = DEFAULTS["COURSE_WHISPER_BACKEND"]
    standins: bool = False

    @property
    def fp16(self) -> bool:
        """Half precision only pays off (and only works well) on CUDA."""
        return self.device.startswith("cuda")


def _env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or DEFAULTS[name]


def normalize_host(host: str) -> str:
    """Accept `localhost:11434`, `0.0.0.0`, `:11434` or a full http(s) URL, as the ollama client does.

    Anything else (a typo in the port, a broken IPv6 address, another scheme, spaces, no server
    name) raises a ConfigError that names OLLAMA_HOST, the bad value and a good example.
    """
    raw = host.strip()
    if any(c.isspace() for c in raw):
        raise _bad_host(raw, "tiene espacios")
    try:
        parts = urlsplit(raw if "://" in raw else "http://" + raw)
        port = parts.port
    except ValueError as exc:  # urllib's English reason: a bad IPv6 literal or a bad port
        reason = (
            "la dirección IPv6 está mal escrita (va entre corchetes, como http://[::1]:11434)"
            if "IPv6" in str(exc)
            else "el puerto debe ser un número entre 1 y 65535"
        )
        raise _bad_host(raw, reason) from None  # the Spanish reason replaces urllib's, which adds nothing
    if parts.scheme not in ("http", "https"):
        raise _bad_host(raw, f"el protocolo «{parts.scheme}» no vale, solo http:// o https://")
    if port == 0:
        raise _bad_host(raw, "el puerto debe ser un número entre 1 y 65535")
    hostname = parts.hostname
    if hostname is None and "://" in raw:
        raise _bad_host(raw, "falta el nombre del servidor")
    hostname = "localhost" if hostname in (None, "0.0.0.0") else hostname
    if ":" in hostname:  # IPv6 literal
        hostname = f"[{hostname}]"
    elif not _HOSTNAME.fullmatch(hostname):
        raise _bad_host(raw, f"«{hostname}» no es un nombre de servidor")
    return f"{parts.scheme}://{hostname}:{port or 11434}{parts.path.rstrip('/')}"


_HOSTNAME = re.compile(r"[A-Za-z0-9._-]+")  # names and IPv4; IPv6 literals come in brackets


def _bad_host(raw: str, reason: str) -> ConfigError:
    return ConfigError(
        f"OLLAMA_HOST=«{raw}» no es una dirección válida: {reason}.",
        f"Corrígela, por ejemplo OLLAMA_HOST={DEFAULTS['OLLAMA_HOST']} (o quítala para usar esa).",
    )


_CUDA = re.compile(r"cuda(?::([0-9]+))?")  # `cuda` (the current GPU) or `cuda:N` (GPU number N)


def choose_device(requested: str = "auto") -> str:
    """`auto`, `cpu`, `cuda` or `cuda:N` (N, a GPU PyTorch sees) as a torch device name; else a ConfigError."""
    import torch  # heavy: only when a device is asked for

    shown = requested.strip()
    requested = shown.lower()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    match = _CUDA.fullmatch(requested)
    if match is None:
        raise ConfigError(
            f"COURSE_DEVICE={shown} no es válido.",
            "Usa 'auto', 'cpu', 'cuda' o 'cuda:N' con N el número de la GPU (cuda:0, cuda:1…).",
        )
    if not torch.cuda.is_available():
        raise ConfigError(
            f"COURSE_DEVICE={shown} pero PyTorch no ve ninguna GPU.",
            "Quita COURSE_DEVICE (se elegirá la CPU) o instala el PyTorch con CUDA en el servidor.",
        )
    if match.group(1) is None:
        return "cuda"
    index, count = int(match.group(1)), torch.cuda.device_count()
    if index >= count:
        seen = (
            "ninguna GPU"
            if count == 0
            else "solo la GPU cuda:0"
            if count == 1
            else f"{count} GPU (de cuda:0 a cuda:{count - 1})"
        )
        raise ConfigError(
            f"COURSE_DEVICE={shown} pero PyTorch ve {seen}.",
            f"Usa 'cuda' (la GPU por defecto) o un número del 0 al {max(count - 1, 0)} "
            "(cuda:0…); `nvidia-smi` lista las GPU.",
        )
    return f"cuda:{index}"


def settings() -> Settings:
    """Read and validate the whole configuration now (environment changes are picked up on every call).

    A helper that needs one value reads it alone (`vit_model()`, `device()`…), so a typo in one
    variable (say OLLAMA_HOST) does not stop what does not use it (say the ViT classifier).
    """
    return Settings(
        whisper_model(),
        vit_model(),
        llm_model(),
        ollama_host(),
        device(),
        whisper_model("faster-whisper"),
        whisper_backend(),
        standins(),
    )


def whisper_backend() -> str:
    """COURSE_WHISPER_BACKEND: the Whisper engine of the chat's dictation and of the command line."""
    value = _env("COURSE_WHISPER_BACKEND")
    if value not in WHISPER_BACKENDS:
        raise ConfigError(
            f"COURSE_WHISPER_BACKEND={value} no es válido.",
            "Usa 'whisper' (openai-whisper) o 'faster-whisper' (más rápido en CPU), o quítala para usar whisper.",
        )
    return value


def whisper_model(backend: str = "whisper") -> str:
    """The Whisper model of a backend: COURSE_WHISPER_MODEL for openai-whisper (a name or a .pt file),
    COURSE_FASTER_WHISPER_MODEL for faster-whisper (a name or a CTranslate2 folder). A file where a
    folder is needed, or the other way round, is a ConfigError."""
    if backend == "faster-whisper":
        value = _env("COURSE_FASTER_WHISPER_MODEL")
        if value.endswith(".pt") or Path(value).expanduser().is_file():
            raise ConfigError(
                f"COURSE_FASTER_WHISPER_MODEL={value} es un archivo: faster-whisper necesita un nombre "
                "(como base) o una carpeta CTranslate2 con model.bin.",
                "Un checkpoint .pt es del motor openai-whisper: ponlo en COURSE_WHISPER_MODEL, "
                "o quita COURSE_FASTER_WHISPER_MODEL para usar base.",
            )
        return value
    value = _env("COURSE_WHISPER_MODEL")
    if Path(value).expanduser().is_dir():
        raise ConfigError(
            f"COURSE_WHISPER_MODEL={value} es una carpeta: openai-whisper necesita un nombre (como base) "
            "o un archivo .pt.",
            "Una carpeta CTranslate2 es del motor faster-whisper: ponla en COURSE_FASTER_WHISPER_MODEL "
            "(y COURSE_WHISPER_BACKEND=faster-whisper), o quita COURSE_WHISPER_MODEL para usar base.",
        )
    return value


def standins() -> bool:
    """COURSE_STANDINS=1: a model that is not here, with no network, is replaced by a «modelo de sustitución»."""
    value = _env("COURSE_STANDINS").lower()
    if value not in ("0", "1"):
        raise ConfigError(
            f"COURSE_STANDINS={value} no es válido.",
            "Usa 1 (sin conexión, los modelos que falten se sustituyen por modelos diminutos con pesos "
            "aleatorios) o 0 (por defecto).",
        )
    return value == "1"


def vit_model() -> str:
    return _env("COURSE_VIT_MODEL")


def llm_model() -> str:
    return _env("COURSE_LLM_MODEL")


def ollama_host() -> str:
    """OLLAMA_HOST as a full URL; a ConfigError (Spanish) if it is malformed."""
    return normalize_host(_env("OLLAMA_HOST"))


def device() -> str:
    """COURSE_DEVICE resolved: `cpu`, `cuda` or `cuda:N`; a ConfigError (Spanish) if it is not valid here."""
    return _device(_env("COURSE_DEVICE"))


def fp16() -> bool:
    """Half precision only pays off (and only works well) on CUDA."""
    return device().startswith("cuda")


@cache
def _device(requested: str) -> str:
    return choose_device(requested)


def standin_note(model: str) -> str | None:
    """The stand-in's own description if `model` is a local test stand-in, else None."""
    path = Path(model)
    for folder in (path, path.parent):
        marker = folder / STANDIN_MARKER
        if marker.is_file():
            return marker.read_text(encoding="utf-8").strip()
    return None


def user_cache() -> Path:
    """The user's cache folder, $XDG_CACHE_HOME or ~/.cache: where Whisper downloads its checkpoints too."""
    return Path(os.getenv("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")))


def cache_dir() -> Path:
    """Where the course keeps what it builds (such as Whisper base rebuilt offline): COURSE_CACHE_DIR if
    set, else <user cache>/curso-multimodal. Never inside the installed package."""
    value = os.environ.get("COURSE_CACHE_DIR", "").strip()
    return Path(value).expanduser() if value else user_cache() / "curso-multimodal"
