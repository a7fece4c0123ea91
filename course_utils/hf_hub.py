"""Where `from_pretrained` reads a Hugging Face model from, decided before any download starts.

A model already in the local cache loads with no network call; one that must be downloaded while the
hub is out of reach fails at once with a Spanish error, instead of after a minute of retries.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

from course_utils import config
from course_utils.errors import ModelLoadError


class NotDownloaded(ModelLoadError):
    """The hub model is not in the local cache and the hub is out of reach (COURSE_STANDINS=1 offers a stand-in)."""


def in_cache(name: str) -> bool:
    """Whether the hub model `name` is in the local Hugging Face cache; ModelLoadError if `name` is malformed."""
    from huggingface_hub import try_to_load_from_cache  # looked up at each call, so a test can replace it

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # huggingface_hub's HFValidationError
        raise ModelLoadError(
            f"«{name}» no es una carpeta ni un identificador de Hugging Face válido.",
            f"Revisa COURSE_VIT_MODEL (por ejemplo {config.DEFAULTS['COURSE_VIT_MODEL']}).",
        ) from None  # the validation error only restates that the name is malformed


def pretrained_source(name: str) -> dict:
    """from_pretrained's extra arguments for `name`: {"local_files_only": True} when it is cached, else {}."""
    if Path(name).is_dir():
        return {}
    from huggingface_hub import constants  # only for hub ids: a local folder needs no hub

    if in_cache(name):
        return {"local_files_only": True}
    if constants.HF_HUB_OFFLINE or not reachable(constants.ENDPOINT):
        raise NotDownloaded(
            f"El modelo «{name}» no está descargado y no hay conexión con {constants.ENDPOINT}.",
            "Con conexión, descárgalo una vez (unos 350 MB) con `python -m course_utils.prepare_class` o "
            "volviendo a ejecutar esta celda; o pon en COURSE_VIT_MODEL la carpeta de un modelo guardado. "
            "Sin conexión, sigue con un modelo de sustitución (pesos aleatorios: sus predicciones no "
            "significan nada): ejecuta `%env COURSE_STANDINS=1` en una celda y vuelve a ejecutar esta, o "
            "abre JupyterLab con `COURSE_STANDINS=1 make lab` para que «Run All» llegue al final.",
        )
    return {}


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the URL's host opens within `timeout` seconds."""
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False
