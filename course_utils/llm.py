"""Talking to Llama 3.2 Vision on an Ollama server through the official `ollama` client."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import ollama

from course_utils import config
from course_utils.errors import CourseError, ModelNotPulled, OllamaError, ServerUnreachable

CHECK_TIMEOUT = 3.0  # seconds: a diagnosis must answer fast even when the host is wrong


@dataclass
class ServerStatus:
    host: str
    model: str
    reachable: bool = False
    version: str | None = None
    models: list[str] = field(default_factory=list)
    error: CourseError | None = None

    @property
    def model_pulled(self) -> bool:
        return _has_model(self.models, self.model)

    @property
    def ok(self) -> bool:
        return self.reachable and self.model_pulled


def client(timeout: float | None = None) -> ollama.Client:
    return ollama.Client(host=config.settings().ollama_host, timeout=timeout)


def check_server(model: str | None = None) -> ServerStatus:
    """Is the server reachable, which version is it, is the configured model pulled?"""
    cfg = config.settings()
    status = ServerStatus(host=cfg.ollama_host, model=model or cfg.llm_model)
    try:
        response = httpx.get(f"{cfg.ollama_host}/api/version", timeout=CHECK_TIMEOUT)
        response.raise_for_status()
        status.version = response.json().get("version")
        status.reachable = True
        status.models = [m.model for m in client(CHECK_TIMEOUT).list().models]
    except (httpx.HTTPError, ConnectionError, ollama.ResponseError, ValueError) as exc:
        status.error = _unreachable(cfg.ollama_host, exc) if not status.reachable else OllamaError(
            f"El servidor de Ollama en {cfg.ollama_host} respondió con un error: {exc}",
            "Comprueba que OLLAMA_HOST apunta a un servidor de Ollama y que está actualizado.",
        )
        return status
    if not status.model_pulled:
        status.error = ModelNotPulled(
            f"El modelo «{status.model}» no está descargado en {cfg.ollama_host}.",
            f"Descárgalo con `ollama pull {status.model}` (en la máquina del servidor).",
        )
    return status


def _unreachable(host: str, exc: Exception) -> ServerUnreachable:
    return ServerUnreachable(
        f"No hay ningún servidor de Ollama respondiendo en {host} ({type(exc).__name__}).",
        "Arráncalo con `ollama serve`, o si está en el servidor del laboratorio, "
        "define OLLAMA_HOST con su dirección (por ejemplo http://servidor:11434).",
    )


def _has_model(available: list[str], wanted: str) -> bool:
    wanted = wanted if ":" in wanted else wanted + ":latest"
    return wanted in available
