"""Which models, server and device the course uses, read from environment variables.

The same notebook runs the real models on the lab server and small stand-ins in CI:
only the environment differs, never the code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from course_utils.errors import ConfigError

DEFAULTS = {
    "COURSE_WHISPER_MODEL": "base",
    "COURSE_VIT_MODEL": "google/vit-base-patch16-224",
    "COURSE_LLM_MODEL": "llama3.2-vision",
    "OLLAMA_HOST": "http://localhost:11434",
    "COURSE_DEVICE": "auto",
}

# A directory (or a checkpoint's directory) holding this file is a test stand-in, not a real model.
STANDIN_MARKER = "STANDIN.txt"


@dataclass(frozen=True)
class Settings:
    whisper_model: str
    vit_model: str
    llm_model: str
    ollama_host: str
    device: str

    @property
    def fp16(self) -> bool:
        """Half precision only pays off (and only works well) on CUDA."""
        return self.device.startswith("cuda")


def _env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or DEFAULTS[name]


def normalize_host(host: str) -> str:
    """Accept `localhost:11434`, `0.0.0.0` or a full URL, as the ollama client does."""
    from urllib.parse import urlsplit

    parts = urlsplit(host.strip() if "://" in host else "http://" + host.strip())
    hostname = parts.hostname or "localhost"
    hostname = "localhost" if hostname == "0.0.0.0" else hostname
    if ":" in hostname:  # IPv6 literal
        hostname = f"[{hostname}]"
    return f"{parts.scheme}://{hostname}:{parts.port or 11434}{parts.path.rstrip('/')}"


def choose_device(requested: str = "auto") -> str:
    requested = requested.lower()
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"COURSE_DEVICE={requested} pero PyTorch no ve ninguna GPU.",
            "Quita COURSE_DEVICE (se elegirá la CPU) o instala el PyTorch con CUDA en el servidor.",
        )
    if requested not in ("cpu",) and not requested.startswith("cuda"):
        raise ConfigError(f"COURSE_DEVICE={requested} no es válido.", "Usa 'auto', 'cpu' o 'cuda'.")
    return requested


def settings() -> Settings:
    """Read the configuration now (environment changes are picked up on every call)."""
    return Settings(
        whisper_model=_env("COURSE_WHISPER_MODEL"),
        vit_model=_env("COURSE_VIT_MODEL"),
        llm_model=_env("COURSE_LLM_MODEL"),
        ollama_host=normalize_host(_env("OLLAMA_HOST")),
        device=_device(_env("COURSE_DEVICE")),
    )


@lru_cache(maxsize=None)
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
