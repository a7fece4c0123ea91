"""Talking to a vision model (Llama 3.2 Vision, Qwen2.5-VL, Gemma 3…) on an Ollama server through the
official `ollama` client.

`build_request` makes the exact body of a `/api/chat` call, `stream` sends it and yields the answer as
it arrives, `ask` returns it whole, `check_server` diagnoses the server, `model_profile` says what the
model does with images (read once from `/api/show`). Every failure becomes a `CourseError` subclass with
a short Spanish message saying what happened and what to do.

An answer can be stopped at any moment with a `threading.Event` (`cancel=`): the request runs on the
official async client in a private event loop, and cancelling its task closes the HTTP connection.
A busy server (HTTP 503, its queue is full) is retried with backoff before any text arrives.
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
import json
import math
import numbers
import os
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import httpx

from course_utils import config, vision_models
from course_utils.errors import (
    Cancelled,
    ConfigError,
    CourseError,
    ModelNotPulled,
    ModelNotSupported,
    NoVision,
    OllamaError,
    OptionError,
    ServerBusy,
    ServerOutOfMemory,
    ServerTimeout,
    ServerUnreachable,
    StreamCut,
    TooManyImages,
)
from course_utils.images import open_image
from course_utils.vision_models import ModelProfile


def _import_ollama():
    # `import ollama` builds a default client from OLLAMA_HOST and raises a raw ValueError on a malformed
    # value; hide it during the import so that config can explain it in Spanish when the host is needed.
    saved = os.environ.pop("OLLAMA_HOST", None)
    try:
        import ollama
    finally:
        if saved is not None:
            os.environ["OLLAMA_HOST"] = saved
    return ollama


ollama = _import_ollama()

CHECK_TIMEOUT = 3.0  # seconds: a diagnosis must answer fast even when the host is wrong
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 300.0  # longest wait for the next piece of an answer: the first load of an 11B model is slow
BUSY_ATTEMPTS = 5  # tries on a busy server (HTTP 503) before giving up
BUSY_BACKOFF = 1.0  # seconds before the first retry, doubled at each one, with ±25 % jitter
BUSY_BACKOFF_CAP = 8.0  # longest wait between two tries
POLL = 0.05  # seconds between two looks at the cancel flag
CLOSE_WAIT = 5.0  # longest wait for a stopped request to close its connection
# What llama3.2-vision (mllama) takes: one image per message, 4 tiles of 560 px laid out 1×4, 2×2, 4×1…
# (notebook 06). Other families have their own limits (vision_models.FAMILIES), read through model_profile().
MAX_IMAGES_PER_MESSAGE = vision_models.FAMILIES["mllama"].images_per_message
MAX_IMAGE_SIDE = vision_models.FAMILIES["mllama"].max_side
MAX_IMAGE_PIXELS = vision_models.FAMILIES["mllama"].max_pixels
JPEG_QUALITY = 90
ROLES = ("system", "user", "assistant")
TOP_LEVEL_OPTIONS = ("keep_alive",)  # request fields; every other option goes in "options"
MODEL_OPTIONS = tuple(ollama.Options.model_fields)  # temperature, seed, top_p, num_ctx, num_predict, ...
# What Ollama reports in the last line of an answer (counts in tokens, durations in nanoseconds).
STAT_FIELDS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


@dataclass
class ServerStatus:
    host: str
    model: str
    reachable: bool = False
    version: str | None = None
    models: list[str] = field(default_factory=list)
    error: CourseError | None = None
    profile: ModelProfile | None = None  # the configured model's, when it is pulled

    @property
    def model_pulled(self) -> bool:
        return _has_model(self.models, self.model)

    @property
    def model_runs(self) -> bool:
        """Does this server's version load the model's family? (llama3.2-vision: not on Ollama 0.30+)"""
        return self.profile is None or vision_models.runs_on(self.profile, self.version)

    @property
    def ok(self) -> bool:
        return self.reachable and self.model_pulled and self.model_runs

    def __str__(self) -> str:
        if not self.reachable:
            return f"❌ {self.error}"
        lines = [
            f"✅ Ollama {self.version} en {self.host}",
            f"   modelos descargados: {', '.join(self.models) or 'ninguno'}",
        ]
        lines.append(f"✅ «{self.model}» está descargado" if self.model_pulled else f"❌ {self.error}")
        if self.model_pulled and not self.model_runs:
            lines.append(f"❌ {self.error}")
        return "\n".join(lines)


def client(timeout: float | httpx.Timeout | None = None) -> ollama.Client:
    """The official client on OLLAMA_HOST; by default it connects fast and waits long for answers."""
    return ollama.Client(host=config.ollama_host(), timeout=_timeout(timeout))


def check_server(model: str | None = None) -> ServerStatus:
    """Is the server reachable, which version is it, is the configured model pulled?

    Never raises: a malformed OLLAMA_HOST comes back as `error` (a ConfigError), with the raw value as host.
    """
    model = model or config.llm_model()
    try:
        host = config.ollama_host()
    except ConfigError as exc:
        return ServerStatus(host=os.environ.get("OLLAMA_HOST", ""), model=model, error=exc)
    status = ServerStatus(host=host, model=model)
    try:
        response = httpx.get(f"{host}/api/version", timeout=CHECK_TIMEOUT)
        response.raise_for_status()
        status.version = response.json()["version"]
        status.reachable = True
        with client(CHECK_TIMEOUT) as c:
            status.models = [m.model for m in c.list().models]
    except (httpx.HTTPError, ConnectionError, ollama.ResponseError, ValueError, KeyError, TypeError) as exc:
        status.error = _diagnose_check(host, exc, status.reachable)
        return status
    if not status.model_pulled:
        status.error = ModelNotPulled(
            f"El modelo «{status.model}» no está descargado en {host}.",
            f"Descárgalo con `ollama pull {status.model}` (en la máquina del servidor).",
        )
        return status
    status.profile = model_profile(status.model)
    if not status.model_runs:
        status.error = not_supported(status.model, status.profile, status.version)
    return status


_profiles: dict[tuple[str, str], ModelProfile] = {}


def model_profile(model: str | None = None, host: str | None = None) -> ModelProfile:
    """What the model does with images: its family and capabilities, asked once per server (`/api/show`).

    When the server cannot be asked, the cautious defaults (one image, vision assumed) are returned and not
    remembered: the request itself will then say what is wrong.
    """
    model = model or config.llm_model()
    try:
        host = host or config.ollama_host()
    except ConfigError:  # the request will explain it
        return vision_models.default_profile(model)
    key = (host, full_tag(model))
    if key not in _profiles:
        try:
            with ollama.Client(host=host, timeout=CHECK_TIMEOUT) as c:
                show = c.show(model).model_dump(by_alias=True)
        except (httpx.HTTPError, ConnectionError, ollama.ResponseError, ValueError, TypeError, AttributeError):
            return vision_models.default_profile(model)
        _profiles[key] = vision_models.profile_from_show(model, show)
    return _profiles[key]


def load_model(model: str | None = None, host: str | None = None) -> float:
    """Load the model into the server's memory (an empty `/api/generate`, as Ollama documents) and return the
    seconds it took; a model the server cannot load fails here, with the fix, and not in front of a class."""
    model = model or config.llm_model()
    host = host or config.ollama_host()
    start = time.monotonic()
    try:
        with ollama.Client(host=host, timeout=httpx.Timeout(900.0, connect=CONNECT_TIMEOUT)) as c:
            c.generate(model=model, prompt="")
    except ollama.ResponseError as exc:
        raise _from_response(exc, model, host) from None
    except (httpx.HTTPError, ConnectionError) as exc:
        raise _translate(exc, model, host, "") from None
    return time.monotonic() - start


def prepare_image(source, max_side: int = MAX_IMAGE_SIDE, max_pixels: int = MAX_IMAGE_PIXELS) -> bytes:
    """Any image input (path, bytes, PIL, numpy) as RGB JPEG bytes, no side longer than `max_side` and
    no more than `max_pixels` pixels (the aspect ratio kept)."""
    _check_positive("max_side", max_side, integer=True)
    _check_positive("max_pixels", max_pixels, integer=True)
    image = open_image(source)
    width, height = image.size
    scale = min(1.0, max_side / max(width, height), (max_pixels / (width * height)) ** 0.5)
    if scale < 1.0:
        image.thumbnail((max(1, int(width * scale)), max(1, int(height * scale))))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def build_request(
    prompt: str, images=None, system: str | None = None, history=None, model: str | None = None, **options
) -> dict:
    """The exact JSON body that `stream`/`ask` send to `/api/chat` (images as base64)."""
    model = model or config.llm_model()
    profile = model_profile(model) if _has_images(images, history) else vision_models.default_profile(model)
    messages = [_message("system", system)] if system else []
    messages += [_history_message(item, i, profile) for i, item in enumerate(history or [], start=1)]
    if not isinstance(prompt, str):
        raise OllamaError(
            f"La pregunta debe ser una cadena de texto, no {_kind(prompt)}.",
            'Pasa el texto entre comillas, como llm.ask("¿Qué ves?"); si tienes varias partes, '
            'únelas antes con " ".join(partes).',
        )
    if not prompt.strip() and not _as_list(images):
        raise OllamaError("El mensaje está vacío.", "Escribe una pregunta o una instrucción (o adjunta una imagen).")
    messages.append(_message("user", prompt, images, profile))
    request = {"model": model, "messages": messages, "stream": True}
    model_options, top_level = _split_options(options)
    _check_finite(model_options)
    if model_options:
        request["options"] = model_options
    request.update(top_level)
    return request


def stream(
    prompt: str,
    images=None,
    system: str | None = None,
    history=None,
    model: str | None = None,
    *,
    timeout: float | httpx.Timeout | None = None,
    cancel: threading.Event | None = None,
    on_status: Callable[[str], None] | None = None,
    on_stats: Callable[[dict], None] | None = None,
    **options,
) -> Iterator[str]:
    """Send the request and yield the answer's text pieces as they arrive.

    Raises CourseError subclasses; if the answer stops before Ollama's final `done` line, raises
    `StreamCut` whose `.partial` holds the text received. The request is checked before returning.
    Setting `cancel` stops at any moment (even before the first piece): the HTTP request is closed and
    `Cancelled` is raised, its `.partial` holding all the text received. Closing the iterator (or an
    exception in the loop that reads it) closes the request too. While the server is busy (HTTP 503),
    it retries up to BUSY_ATTEMPTS times and tells `on_status` (in the reading thread) how long it waits.
    When the answer ends, `on_stats` receives the statistics of Ollama's last line (STAT_FIELDS).
    """
    _check_call(timeout, cancel)
    request = build_request(prompt, images, system, history, model, **options)
    return _pieces(request, timeout, cancel or threading.Event(), on_status, on_stats)


def ask(
    prompt: str,
    images=None,
    system: str | None = None,
    history=None,
    model: str | None = None,
    *,
    timeout: float | httpx.Timeout | None = None,
    cancel: threading.Event | None = None,
    on_status: Callable[[str], None] | None = None,
    **options,
) -> str:
    """Send the request and return the whole answer (streamed underneath, so long answers don't time out)."""
    return "".join(
        stream(prompt, images, system, history, model, timeout=timeout, cancel=cancel, on_status=on_status, **options)
    )


def format_request(request: dict, keep: int = 40) -> str:
    """The request as indented JSON for display, each base64 image shortened to its start and length."""

    def shorten(message: dict) -> dict:
        if not message.get("images"):
            return message
        images = [f"{data[:keep]}… ({len(data)} caracteres en base64)" for data in message["images"]]
        return {**message, "images": images}

    shown = {**request, "messages": [shorten(m) for m in request.get("messages", [])]}
    return json.dumps(shown, indent=2, ensure_ascii=False)


# --- building the request ---------------------------------------------------------------------------


def _has_images(images, history) -> bool:
    return bool(_as_list(images)) or any(isinstance(m, Mapping) and m.get("images") for m in history or [])


def _message(role: str, content, images=None, profile: ModelProfile | None = None) -> dict:
    if not isinstance(content, str):
        raise OllamaError(
            f"El texto de un mensaje debe ser una cadena de texto, no {_kind(content)}.",
            "Pasa el texto entre comillas.",
        )
    images = _as_list(images)
    profile = profile or vision_models.default_profile("")
    if images and not profile.vision:
        raise NoVision(
            f"El modelo «{profile.name}» no ve imágenes (solo texto), así que la imagen no se envía.",
            "Elige un modelo de visión (en el chat, los que no llevan «sin visión») o quita la imagen.",
        )
    limit = profile.images_per_message
    if limit is not None and len(images) > limit:
        raise TooManyImages(
            f"Hay {len(images)} imágenes en un mismo mensaje y el modelo acepta {limit}.",
            f"Adjunta {'una sola imagen' if limit == 1 else f'hasta {limit} imágenes'} por mensaje "
            "(puedes enviar otra en el mensaje siguiente).",
        )
    message = {"role": role, "content": content}
    if images:
        side, pixels = profile.rules.max_side, profile.rules.max_pixels
        message["images"] = [base64.b64encode(prepare_image(img, side, pixels)).decode("ascii") for img in images]
    # The official client leaves out empty fields; so do we, so that what we show is what is sent.
    return {key: value for key, value in message.items() if value}


_KINDS = {
    list: "una lista",
    tuple: "una tupla",
    dict: "un diccionario",
    set: "un conjunto",
    int: "un número",
    float: "un número",
    bool: "un booleano",
    bytes: "bytes",
    bytearray: "bytes",
    type(None): "None",
}


def _kind(value) -> str:
    """What a value is, in Spanish, for messages that say what was expected instead."""
    return _KINDS.get(type(value), type(value).__name__)


def _as_list(images) -> list:
    """One image or a list of them (a numpy array is one image, not a list)."""
    return [] if images is None else list(images) if isinstance(images, (list, tuple)) else [images]


def _history_message(item, position: int, profile: ModelProfile | None = None) -> dict:
    role = item.get("role") if isinstance(item, Mapping) else None
    if role not in ROLES:
        raise OllamaError(
            f"El mensaje {position} del historial no tiene un rol válido ({role!r}).",
            "Cada mensaje es un diccionario con role 'user', 'assistant' o 'system' y content.",
        )
    return _message(role, item.get("content", ""), item.get("images"), profile)


def _split_options(options: dict) -> tuple[dict, dict]:
    unknown = [name for name in options if name not in MODEL_OPTIONS + TOP_LEVEL_OPTIONS]
    if unknown:
        raise OllamaError(
            f"Ollama no tiene la opción «{unknown[0]}».",
            "Opciones habituales: temperature, seed, top_p, top_k, num_ctx, num_predict, stop, keep_alive.",
        )
    given = {name: value for name, value in options.items() if value is not None}
    model_options = {k: v for k, v in given.items() if k in MODEL_OPTIONS}
    return model_options, {k: v for k, v in given.items() if k in TOP_LEVEL_OPTIONS}


# --- sending it and reading the answer --------------------------------------------------------------


def _timeout(timeout) -> float | httpx.Timeout:
    return httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT) if timeout is None else timeout


def _pieces(request: dict, timeout, cancel: threading.Event, on_status, on_stats=None) -> Iterator[str]:
    host = config.ollama_host()
    deadline = _deadline(timeout)
    for attempt in range(1, BUSY_ATTEMPTS + 1):
        try:
            yield from _attempt(request, host, timeout, cancel, on_stats, deadline)
            return
        except ServerBusy as busy:  # only before any text: a 503 is an HTTP status
            if attempt == BUSY_ATTEMPTS:
                raise ServerBusy(f"{busy.message} Se intentó {BUSY_ATTEMPTS} veces.") from None
            delay = _retry_delay(attempt)
            if on_status:
                on_status(f"Servidor ocupado, reintento en {_seconds(delay)} s ({attempt + 1}/{BUSY_ATTEMPTS})")
            if cancel.wait(delay):
                raise _cancelled("") from None


def _attempt(
    request: dict, host: str, timeout, cancel: threading.Event, on_stats=None, deadline: float | None = None
) -> Iterator[str]:
    """One request: yield its pieces, raise its errors translated, close it however the reading ends."""
    received: list[str] = []
    if cancel.is_set():
        raise _cancelled("")
    call = _Call(request, host, _timeout(timeout), cancel)
    finished = False
    try:
        while True:
            try:
                kind, value = call.items.get(timeout=POLL)
            except queue.Empty:
                kind, value = "wait", None
            if cancel.is_set():
                unread = [value] if kind == "text" else []
                raise _cancelled("".join(received + unread + call.pending_text()))
            if deadline is not None and time.monotonic() > deadline:
                unread = [value] if kind == "text" else []
                raise _out_of_time(timeout, host, "".join(received + unread + call.pending_text()))
            if kind == "text":
                received.append(value)
                yield value
            elif kind == "done":
                finished = True
                if on_stats:
                    on_stats(value)
            elif kind == "error":
                raise _translate(value, request["model"], host, "".join(received)) from value
            elif kind == "end":  # the request is over and its connection closed
                break
    finally:
        call.close()
    if not finished:  # Ollama always ends with a `"done": true` line: without it the answer is incomplete
        raise _cut("la conexión terminó sin el final de la respuesta", "".join(received))


class _Call:
    """One /api/chat request on the official async client, in a private event loop on a daemon thread,
    so that it can be stopped at any moment: cancelling its task closes the HTTP connection.

    It puts ("text", str), ("done", statistics), ("error", exception) and finally ("end", None) in `items`.
    """

    def __init__(self, request: dict, host: str, timeout, cancel: threading.Event):
        self.items: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._cancel = cancel
        main = self._main(request, host, timeout)
        self._thread = threading.Thread(target=asyncio.run, args=(main,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the request if it still runs and wait (briefly) until its connection is closed."""
        self._stop.set()
        self._thread.join(CLOSE_WAIT)

    def pending_text(self) -> list[str]:
        """The text that arrived but was not read yet."""
        texts = []
        while True:
            try:
                kind, value = self.items.get_nowait()
            except queue.Empty:
                return texts
            if kind == "text":
                texts.append(value)

    async def _main(self, request: dict, host: str, timeout) -> None:
        task = asyncio.create_task(self._chat(request, host, timeout))
        while not task.done():
            if self._stop.is_set() or self._cancel.is_set():
                task.cancel()
                break
            await asyncio.wait([task], timeout=POLL)
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001 - handed to the reading thread, which translates it
            self.items.put(("error", exc))
        self.items.put(("end", None))

    async def _chat(self, request: dict, host: str, timeout) -> None:
        async with ollama.AsyncClient(host=host, timeout=timeout) as c:
            try:
                async for part in await c.chat(**request):
                    if text := part.message.content:
                        self.items.put(("text", text))
                    if part.done:
                        self.items.put(("done", {name: getattr(part, name, None) for name in STAT_FIELDS}))
            except AttributeError as exc:  # the client read a line that is JSON but not an object
                raise _NotAnObject("una línea no es un objeto JSON") from exc


class _NotAnObject(ValueError):
    """A line of the stream that is JSON but not an object ([1, 2], "x", 3)."""


def _retry_delay(attempt: int) -> float:
    """Seconds to wait after the `attempt`-th busy answer: exponential, capped, with jitter so that a whole
    class does not come back at the same instant."""
    return min(BUSY_BACKOFF * 2 ** (attempt - 1), BUSY_BACKOFF_CAP) * random.uniform(0.75, 1.25)


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 1 else f"{value:.1f}".replace(".", ",")


def _cancelled(partial: str) -> Cancelled:
    kept = f" Se conserva lo recibido ({len(partial)} caracteres)." if partial else " No había llegado nada."
    return Cancelled(f"Se canceló la respuesta.{kept}", partial)


def _translate(exc: Exception, model: str, host: str, partial: str) -> OllamaError:
    if partial:
        return _cut(_cause(exc), partial)
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, ConnectionError)):
        return _unreachable(host, exc)
    if isinstance(exc, httpx.TimeoutException):
        return ServerTimeout(
            f"El servidor de Ollama en {host} no empezó a responder a tiempo.",
            "La primera vez el modelo tarda en cargarse: espera un poco y vuelve a intentarlo, "
            "o reduce num_predict / el tamaño de la imagen.",
        )
    if isinstance(exc, ollama.ResponseError):
        return _from_response(exc, model, host)
    if (not_ollama := _not_ollama(exc, host)) is not None:
        return not_ollama
    if isinstance(exc, httpx.HTTPError):
        return _cut(_cause(exc), "")
    return OllamaError(
        f"La respuesta de {host} no se entiende ({_unreadable(exc)}).",
        "Comprueba que OLLAMA_HOST apunta a un servidor de Ollama actualizado.",
    )


def _from_response(exc: ollama.ResponseError, model: str, host: str) -> OllamaError:
    status, error = exc.status_code, _summary(exc.error)
    if status == 404 and "model" in error.lower():
        return ModelNotPulled(
            f"El modelo «{model}» no está descargado en {host}.",
            f"Descárgalo con `ollama pull {model}` o elige otro de los que muestra check_server().",
        )
    if "image" in error.lower() and ("single" in error.lower() or "only" in error.lower()):
        return TooManyImages(f"El servidor rechazó las imágenes: {error}.")
    if known := _known_failure(exc.error, model, host):
        return known
    if status == 503:
        return ServerBusy(f"El servidor de Ollama está ocupado: {host} respondió con el error 503 ({error}).")
    if status in (502, 504):  # a gateway's errors: the proxy in front of Ollama did not get an answer
        return OllamaError(
            f"{host} respondió con el error {status} ({error}): el proxy no pudo hablar con Ollama.",
            "Comprueba que Ollama está en marcha detrás del proxy (o avisa al profesor) y vuelve a intentarlo.",
        )
    if status >= 500:
        return OllamaError(
            f"El servidor de Ollama falló al responder (error {status}: {error}).",
            "Suele ser falta de memoria o un modelo dañado: mira el registro del servidor "
            "(la terminal de `ollama serve` o `journalctl -u ollama`) y vuelve a intentarlo.",
        )
    if status == 400:
        return OllamaError(
            f"El servidor rechazó la petición (error 400: {error}).",
            "Revisa las opciones: build_request() muestra exactamente lo que se envía.",
        )
    if status == -1:  # an error line inside the stream
        return OllamaError(f"El servidor de Ollama devolvió un error: {error}.")
    return OllamaError(
        f"{host} respondió con el error {status} ({error}).",
        "Comprueba que OLLAMA_HOST apunta a un servidor de Ollama (puerto 11434 por defecto).",
    )


def _known_failure(error: str, model: str, host: str) -> OllamaError | None:
    """The errors of a current Ollama that have a known fix (docs/laboratorio.md, «Qué Ollama y qué modelo»)."""
    text = str(error).lower()
    if "unknown model architecture" in text or "no longer compatible with your version of ollama" in text:
        return not_supported(model, model_profile(model, host), None, f"«{_summary(error, 90)}»")
    if "does not support multimodal" in text or "image input is not supported" in text:
        return NoVision(
            f"El modelo «{model}» no ve imágenes (solo texto): el servidor rechazó la imagen.",
            "Elige un modelo de visión (en el chat, los que no llevan «sin visión») o quita la imagen.",
        )
    if any(sign in text for sign in ("out-of-memory", "out of memory", "failed to allocate", "more system memory")):
        return ServerOutOfMemory(
            f"El servidor {host} no tiene memoria suficiente para cargar «{model}» ({_summary(error, 90)}).",
            "Usa una variante más pequeña del modelo (por ejemplo con cuantización q4), cierra otros modelos "
            "(`ollama ps`, `ollama stop <modelo>`) o avisa al profesor.",
        )
    return None


def not_supported(model: str, profile: ModelProfile | None, version: str | None, said: str = "") -> ModelNotSupported:
    """The error for a pulled model this Ollama cannot load; for llama3.2-vision on Ollama 0.30+, both ways out."""
    on = f"Ollama {version}" if version else "Este servidor de Ollama"
    because = f" (responde {said})" if said else ""
    if profile is not None and profile.family in ("mllama", "") or "llama3.2-vision" in model:
        return ModelNotSupported(
            f"{on} no puede cargar «{model}» (Llama 3.2 Vision, arquitectura mllama){because}: "
            "desde Ollama 0.30 ya no existe.",
            vision_models.ways_out(model, version),
        )
    return ModelNotSupported(
        f"{on} no puede cargar «{model}»{because}.",
        f"Actualiza Ollama en el servidor o vuelve a descargar el modelo (`ollama pull {model}`).",
    )


def _cut(cause: str, partial: str) -> StreamCut:
    kept = f" Se conserva lo recibido ({len(partial)} caracteres)." if partial else " No llegó nada."
    return StreamCut(f"La respuesta se cortó a mitad: {cause}.{kept}", partial)


def _cause(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "el servidor dejó de enviar texto y se agotó el tiempo de espera"
    if isinstance(exc, ollama.ResponseError):
        return f"el servidor envió un error ({_summary(exc.error)})"
    if isinstance(exc, ValueError):
        return f"llegó una línea que no se entiende ({_unreadable(exc)})"
    return f"se perdió la conexión ({type(exc).__name__})"


def _unreadable(exc: Exception) -> str:
    """Why a line could not be read, in a few Spanish words: the JSON parser's and pydantic's English texts
    (positions, field lists, links) help no student, and stay chained on the exception for whoever debugs."""
    if isinstance(exc, _NotAnObject):
        return "no es un objeto JSON"
    if isinstance(exc, json.JSONDecodeError):
        return "no es JSON válido o está incompleta"
    if isinstance(exc, ValueError):  # pydantic's ValidationError: JSON, but not the fields of an Ollama answer
        return "no tiene la forma de una respuesta de Ollama"
    return f"error {type(exc).__name__}"


def _summary(text, limit: int = 120) -> str:
    """One short line from an error text: an HTML page's <title> (else its text), without tags."""
    text = str(text)
    if re.search(r"<(html|head|body|title)\b", text, re.IGNORECASE):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        text = html.unescape(title.group(1) if title else re.sub(r"<[^>]*>", " ", text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- diagnosis --------------------------------------------------------------------------------------


def _diagnose_check(host: str, exc: Exception, reachable: bool) -> OllamaError:
    if reachable:
        return _model_list_error(host, exc)
    if isinstance(exc, (httpx.ConnectError, ConnectionError)):
        return _unreachable(host, exc)
    if isinstance(exc, httpx.TimeoutException):
        return ServerUnreachable(
            f"{host} no contesta (se agotaron {CHECK_TIMEOUT:g} s de espera).",
            "Revisa OLLAMA_HOST: ¿la dirección y el puerto son los del servidor? ¿Estás en la red del "
            "laboratorio (o en su VPN)?",
        )
    return ServerUnreachable(
        f"En {host} responde algo, pero no es un servidor de Ollama ({_short(exc)}).",
        "Revisa OLLAMA_HOST: debe ser la dirección de Ollama, normalmente con el puerto 11434 "
        "(por ejemplo http://servidor:11434).",
    )


def _unreachable(host: str, exc: Exception) -> ServerUnreachable:
    return ServerUnreachable(
        f"No hay ningún servidor de Ollama respondiendo en {host} ({type(exc).__name__}).",
        "Arráncalo con `ollama serve`, o si está en el servidor del laboratorio, "
        "define OLLAMA_HOST con su dirección (por ejemplo http://servidor:11434). "
        "El cuaderno 00_entorno (o `python -m course_utils.doctor` en una terminal) lo comprueba.",
    )


def _short(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"respondió {exc.response.status_code} a /api/version"
    return type(exc).__name__


def full_tag(name: str) -> str:
    """The model's tag as Ollama lists it: a name without a tag means `:latest` (llama3.2-vision:latest)."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"  # a registry's port is not a tag


def _has_model(available: list[str], wanted: str) -> bool:
    return full_tag(wanted) in available


# --- checks of the caller's arguments, and faults that are not the server's (issue 22) --------------------


def _check_positive(name: str, value, integer: bool = False) -> None:
    """`value` must be a finite number above zero (an integer if `integer`)."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or value <= 0:
        what = "un número entero mayor que 0" if integer else "un número mayor que 0"
        raise OptionError(f"«{name}» debe ser {what}, y vale {value!r}.", f"Por ejemplo {name}=1024, o no lo pases.")


def _check_finite(options: dict) -> None:
    """A NaN or infinite option would be sent as invalid JSON."""
    for name, value in options.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise OptionError(
                f"La opción «{name}» vale {value}: debe ser un número normal.",
                f"Revisa el cálculo que da {name} (por ejemplo temperature=0.7).",
            )


def _check_call(timeout, cancel) -> None:
    if timeout is not None and not isinstance(timeout, httpx.Timeout):
        try:
            _check_positive("timeout", timeout)
        except OptionError:
            raise OptionError(
                f"timeout={timeout!r} no vale: son los segundos que se espera como mucho, un número mayor que 0.",
                "Por ejemplo timeout=60, o no lo pases para esperar lo necesario (Parar o cancel detienen).",
            ) from None
    if cancel is not None and not (
        callable(getattr(cancel, "is_set", None)) and callable(getattr(cancel, "set", None))
    ):
        raise OptionError(
            f"cancel={cancel!r} no vale: debe ser un threading.Event, que otro hilo activa con .set().",
            "Crea uno con cancel = threading.Event() y pásalo; cancel.set() detiene la respuesta.",
        )


def _deadline(timeout) -> float | None:
    """When the whole call must end: `timeout` seconds from now, if the caller gave a number."""
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        return time.monotonic() + timeout
    return None


def _out_of_time(timeout, host: str, partial: str) -> OllamaError:
    if partial:
        return _cut(f"se agotó el tiempo (timeout={timeout:g} s) antes del final", partial)
    return ServerTimeout(
        f"El servidor de Ollama en {host} no empezó a responder a tiempo "
        f"(timeout={timeout:g} s para toda la respuesta).",
        "Da más tiempo con un timeout mayor, o no lo pases (Parar, o cancel, detienen la espera).",
    )


def _not_ollama(exc: Exception, host: str) -> OllamaError | None:
    """Faults of what answers at `host` that are not a cut answer: a redirect loop, a body that claims a
    compression it does not have, something that does not speak HTTP."""
    if isinstance(exc, httpx.TooManyRedirects):
        return OllamaError(
            f"{host} redirige la petición una y otra vez (un bucle de redirecciones).",
            "OLLAMA_HOST no apunta a Ollama, o el proxy de delante está mal configurado: revísalo "
            "(cuaderno 00_entorno, o el diagnóstico de course_utils.doctor).",
        )
    if isinstance(exc, httpx.DecodingError):
        return OllamaError(
            f"La respuesta de {host} dice venir comprimida, pero no se puede descomprimir.",
            "Un proxy delante de Ollama la está dañando: avisa a quien lo administra (o al profesor).",
        )
    message = str(exc).lower()
    if isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in message:
        return ServerUnreachable(
            f"En {host} algo aceptó la conexión y la cerró sin una respuesta HTTP: no es un servidor web "
            "de Ollama (o se cayó al recibir la petición).",
            "Revisa el puerto de OLLAMA_HOST (el de Ollama es 11434) con el cuaderno 00_entorno; "
            "si es el correcto, mira el registro del servidor.",
        )
    if isinstance(exc, httpx.RemoteProtocolError) and not any(w in message for w in ("peer closed", "incomplete")):
        return ServerUnreachable(
            f"En {host} responde algo que no es un servidor web (no habla HTTP), así que no es Ollama.",
            "Revisa el puerto de OLLAMA_HOST (el de Ollama es 11434): cuaderno 00_entorno.",
        )
    return None


def _model_list_error(host: str, exc: Exception) -> OllamaError:
    """`check_server`: the version answered, the list of models did not (or not as Ollama's)."""
    if isinstance(exc, httpx.TimeoutException):
        return ServerTimeout(
            f"El servidor de Ollama en {host} contestó, pero no envió la lista de modelos en {CHECK_TIMEOUT:g} s.",
            "Quizá está cargando un modelo o muy ocupado: vuelve a comprobarlo dentro de un momento.",
        )
    if isinstance(exc, ollama.ResponseError):
        why = f"error {exc.status_code}: {_summary(exc.error)}"
    elif isinstance(exc, ValueError):
        why = _unreadable(exc)
    else:
        why = f"error {type(exc).__name__}"
    return OllamaError(
        f"El servidor de Ollama en {host} contestó, pero la lista de modelos no se entiende ({why}).",
        "Comprueba que OLLAMA_HOST apunta a un servidor de Ollama y que está actualizado (cuaderno 00_entorno).",
    )
