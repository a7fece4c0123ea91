"""A loopback HTTP server that speaks Ollama's documented API, for tests.

It implements /api/version, /api/tags, /api/show, /api/generate (the empty request that loads a model,
or one JSON body) and /api/chat (streamed NDJSON or one JSON body, images as base64) with Ollama's error
bodies, and records every request. /api/ps answers too, and so do the administration endpoints of
Ollama's API (docs/api.md: DELETE /api/delete, POST /api/pull, /api/push, /api/create, /api/copy,
/api/embed, /api/embeddings, HEAD and POST /api/blobs/<digest>) with their success bodies, so that a test
can prove that a proxy did NOT let them through: each one is recorded like any other request, and
/api/delete really removes the model from /api/tags. Its answers say that they come from a stand-in.
Tests set its fault and load modes through the attributes of `OllamaDouble`; `reset()` puts every one
back to normal.

It is versioned: `OllamaDouble(release=OLD)` is an Ollama 0.2x that runs llama3.2-vision (mllama), and
`release=CURRENT` one of today's (0.30 and later) that refuses it and serves current vision models. Each
release's catalogue (`/api/tags`, `/api/show`) and error bodies come from tests/fixtures/ollama/<release>/,
taken from the real releases (that folder's README says where each file came from).
"""

from __future__ import annotations

import base64
import io
import json
import random
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ollama"
OLD, CURRENT = "old", "current"
PREFIX = "[doble de pruebas de Ollama]"
FILLER = "Texto de relleno del doble de pruebas, no de un modelo. "
# Ollama's exact body when its queue is full (server/sched.go, ErrMaxQueue), with HTTP 503.
BUSY_ERROR = "server busy, please try again.  maximum pending requests exceeded"
# Lines for `line_after_chunks`: what a broken server or proxy can put in the middle of a stream.
ERROR_LINE = '{"error": "an error was encountered while running the model: unexpected EOF"}'
MALFORMED_LINE = '{"model": "llama3.2-vision", "message": {"role": "assis'
NON_OBJECT_LINES = ("[1, 2]", '"x"', "3")
HANG_LIMIT = 120.0  # seconds a hanging chat waits for its client before giving up
BATCH_BYTES = 64 * 1024  # without a delay, lines are sent in chunks of about this size


@dataclass(frozen=True)
class Release:
    """One Ollama release as the double plays it: its version, its catalogue and its error bodies."""

    name: str
    version: str  # with «-doble» appended, so that nobody mistakes it for a real server
    pulled: tuple[str, ...]  # the models a fresh double has
    tags: dict  # full tag -> its /api/tags entry
    shows: dict  # full tag -> its /api/show answer
    errors: dict  # case -> {"status": int, "error": str, "source": str}

    def show(self, name: str) -> dict:
        """The model's /api/show answer (show_<name before «:»>.json); a name outside the catalogue is a vision
        model like the release's first one."""
        base = name.split(":", 1)[0]
        return self.shows.get(base) or self.shows.get(next(iter(self.tags)).split(":", 1)[0])

    def family(self, name: str) -> str:
        show = self.show(name)
        return (show.get("model_info") or {}).get("general.architecture") or show["details"]["family"]

    def error(self, case: str, model: str = "") -> tuple[int, str]:
        """The release's exact status and body for a case of errors.json (`<model>`: the name as sent)."""
        entry = self.errors[case]
        return entry["status"], entry["error"].replace("<model>", model)


def load_release(name: str) -> Release:
    folder = FIXTURES / name
    read = lambda file: json.loads((folder / file).read_text(encoding="utf-8"))  # noqa: E731
    tags = {entry["model"]: entry for entry in read("tags.json")["models"]}
    shows = {path.stem.removeprefix("show_"): read(path.name) for path in sorted(folder.glob("show_*.json"))}
    version = read("version.json")["version"] + "-doble"
    errors = {**load_errors(CURRENT), **read("errors.json")} if name != CURRENT else read("errors.json")
    return Release(name, version, tuple(tags), tags, shows, errors)


def load_errors(name: str) -> dict:
    return json.loads((FIXTURES / name / "errors.json").read_text(encoding="utf-8"))


def _tag(name: str) -> str:
    return name if ":" in name else name + ":latest"


@dataclass
class Recorded:
    method: str
    path: str
    body: dict | None


@dataclass
class OllamaDouble:
    """State shared with the handler. Start with `start()`, stop with `stop()`."""

    release: Release | str = OLD
    models: list[str] | None = None  # the pulled models; None: those of the release's catalogue
    requests: list[Recorded] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)  # queued answers, else an echo
    # Queued (status, error) answers for /api/chat, as Ollama's JSON body {"error": ...};
    # (503, BUSY_ERROR) is exactly what Ollama answers when its queue is full.
    failures: list[tuple[int, str]] = field(default_factory=list)
    html_failures: list[int] = field(default_factory=list)  # queued statuses answered with nginx's HTML page
    cut_after_chunks: int | None = None  # close the next stream after N chunks, without "done"
    # Drop the next stream's connection after N chunks, mid-body (no end of the chunked body): what a
    # crashed server or a proxy that gives up does.
    drop_after_chunks: int | None = None
    # (N, line): after N chunks, send this raw line and end the next stream without "done"
    # (ERROR_LINE, MALFORMED_LINE, one of NON_OBJECT_LINES, or any text).
    line_after_chunks: tuple[int, str] | None = None
    chunk_delay: float = 0.0  # seconds between streamed chunks: the per-token delay
    hang: bool = False  # accept every chat and never answer, until the client disconnects
    hanging: threading.Event = field(default_factory=threading.Event)  # set when a chat starts hanging
    disconnected: threading.Event = field(default_factory=threading.Event)  # a client left a chat unfinished
    reply_size: int | None = None  # answers (when no reply is queued) are stand-in text of this many characters
    piece_size: int | None = None  # stream pieces of this many characters instead of one word per chunk
    # Load mode, like Ollama with one model loaded: one answer generated at a time, at most `max_queue`
    # chats waiting for their turn, and HTTP 503 with BUSY_ERROR for any chat beyond that.
    max_queue: int | None = None
    rejected: int = 0  # chats answered 503 by the load mode
    # Statistics of the last line, replacing the computed ones (docs.ollama.com/api/usage); None: computed.
    final_stats: dict | None = None
    loaded: set[str] = field(default_factory=set)  # models "in memory": only their first chat pays the load
    server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _generating: threading.Lock = field(default_factory=threading.Lock)
    _active: int = 0  # chats admitted by the load mode: the one generated and those waiting
    _release: threading.Event = field(default_factory=threading.Event)  # set to end hanging chats

    def __post_init__(self):
        if isinstance(self.release, str):
            self.release = load_release(self.release)
        if self.models is None:
            self.models = list(self.release.pulled)

    @property
    def version(self) -> str:
        return self.release.version

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, port: int = 0) -> OllamaDouble:
        double = self

        class Handler(_Handler):
            state = double

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def reset(self) -> None:
        self._release.set()  # hanging chats of the previous test end now
        self._release = threading.Event()
        self.requests.clear()
        self.replies.clear()
        self.failures.clear()
        self.html_failures.clear()
        self.cut_after_chunks = None
        self.drop_after_chunks = None
        self.line_after_chunks = None
        self.chunk_delay = 0.0
        self.hang = False
        self.hanging.clear()
        self.disconnected.clear()
        self.reply_size = None
        self.piece_size = None
        self.max_queue = None
        self.rejected = 0
        self.final_stats = None
        self.loaded.clear()
        self.models = list(self.release.pulled)

    def admit(self) -> bool:
        """Load mode: take a place (generating, or waiting in the queue), or say that the queue is full."""
        with self._lock:
            if self._active > self.max_queue:
                self.rejected += 1
                return False
            self._active += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._active -= 1

    def chats(self) -> list[dict]:
        return [r.body for r in self.requests if r.path == "/api/chat"]

    def knows(self, name: str) -> bool:
        return _tag(name) in self.models

    def refusal(self, name: str, messages: list[dict]) -> tuple[int, str] | None:
        """What this release answers instead of generating: a family it cannot load, images it won't take."""
        release = self.release
        family = release.family(name)
        if release.name == CURRENT and family == "mllama":
            return release.error("unknown_architecture", name)
        show = release.show(name)
        images = [len(m.get("images") or []) for m in messages]
        if any(images) and "vision" not in show.get("capabilities", ["vision"]):
            return release.error("image_to_text_model", name)
        if family == "mllama" and any(count > 1 for count in images):
            return release.error("too_many_images_chat", name)
        return None

    def answer(self, body: dict) -> str:
        if self.replies:
            return self.replies.pop(0)
        if self.reply_size is not None:
            text = f"{PREFIX} " + FILLER * (self.reply_size // len(FILLER) + 1)
            return text[: self.reply_size]
        messages = body.get("messages", [])
        last = messages[-1] if messages else {}
        images = [describe_image(img) for m in messages for img in m.get("images") or []]
        text = f"{PREFIX} Recibí {len(messages)} mensaje(s). Último: «{last.get('content', '')}»."
        if images:
            text += " Imágenes: " + "; ".join(images) + "."
        return text + simulated_draw(body.get("options") or {})


SAMPLE_WORDS = ("Michi", "Neil", "Cosmo", "Luna", "Bigotes", "Félix", "Pelusa", "Zorro")


def simulated_draw(options: dict) -> str:
    """What sampling would change, imitated: at T > 0 a draw of three words, repeated by the same seed
    and different without one (-1 or none, as in Ollama); nothing at T = 0 (greedy) or without options."""
    temperature, seed = options.get("temperature"), options.get("seed")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or temperature <= 0:
        return ""
    rng = random.Random(seed) if isinstance(seed, int) and seed != -1 else random.Random()
    return f" Sorteo simulado (T={temperature}, semilla={seed}): {' '.join(rng.choices(SAMPLE_WORDS, k=3))}."


def describe_image(data: str) -> str:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(base64.b64decode(data))) as img:
            return f"{img.format} {img.width}×{img.height}"
    except Exception:  # noqa: BLE001 - whatever PIL raises, the double reports it as not an image
        return "no es una imagen"


def html_page(status: int) -> str:
    """nginx's own error page, as a reverse proxy in front of Ollama sends it."""
    title = f"{status} {HTTPStatus(status).phrase}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
        "<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n"
    )


def split_pieces(text: str, size: int | None) -> list[str]:
    """One word (with its space) per piece like Ollama's tokens, or pieces of `size` characters."""
    if size:
        return [text[i : i + size] for i in range(0, len(text), size)] or [""]
    pieces = [word + " " for word in text.split(" ")]
    pieces[-1] = pieces[-1][:-1]
    return pieces


# The administration endpoints answered with their documented success bodies (POST; /api/delete is DELETE).
ADMIN_POST = {
    "/api/pull": {"status": "success"},
    "/api/push": {"status": "success"},
    "/api/create": {"status": "success"},
    "/api/copy": {},
    "/api/embed": {"model": "", "embeddings": [[0.0, 0.0, 0.0]]},
    "/api/embeddings": {"embedding": [0.0, 0.0, 0.0]},
}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Handler(BaseHTTPRequestHandler):
    state: OllamaDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _json(self, status: int, payload: dict | str) -> None:
        payload = {"error": payload} if isinstance(payload, str) else payload
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return None

    def do_HEAD(self):
        self.state.requests.append(Recorded("HEAD", self.path, None))
        self.send_response(404 if self.path.startswith("/api/blobs/") else 200)  # Ollama: blob not there
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.state.requests.append(Recorded("GET", self.path, None))
        if self.path == "/":
            data = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path == "/api/version":
            self._json(200, {"version": self.state.version})
        elif self.path == "/api/tags":
            self._json(200, {"models": [self._tags_entry(name) for name in self.state.models]})
        elif self.path == "/api/ps":
            self._json(200, {"models": [self._tags_entry(name) for name in sorted(self.state.loaded)]})
        else:
            self._json(404, {"error": "404 page not found"})

    def do_POST(self):
        body = self._body()
        self.state.requests.append(Recorded("POST", self.path, body))
        if body is None:
            return self._json(400, {"error": "invalid character in JSON body"})
        if self.path == "/api/show":
            return self._show(body)
        if self.path == "/api/chat":
            return self._chat(body)
        if self.path == "/api/generate":
            return self._generate(body)
        if self.path in ADMIN_POST or self.path.startswith("/api/blobs/"):
            return self._json(200, ADMIN_POST.get(self.path, {}))
        self._json(404, {"error": "404 page not found"})

    def do_DELETE(self):
        body = self._body()
        self.state.requests.append(Recorded("DELETE", self.path, body))
        if self.path != "/api/delete":
            return self._json(405, {"error": "405 method not allowed"})
        name = (body or {}).get("model") or (body or {}).get("name") or ""
        name = name if ":" in name else name + ":latest"
        if name not in self.state.models:
            return self._json(*self.state.release.error("model_not_found_show", name))
        self.state.models.remove(name)
        self._json(200, {})

    def _tags_entry(self, name: str) -> dict:
        entry = self.state.release.tags.get(name) or {**next(iter(self.state.release.tags.values()))}
        return {**entry, "name": name, "model": name, "modified_at": _now()}

    def _show(self, body: dict) -> None:
        name = body.get("model") or body.get("name") or ""
        if not self.state.knows(name):
            return self._json(*self.state.release.error("model_not_found_show", name))
        show = {k: v for k, v in self.state.release.show(name).items() if not k.startswith("_")}
        self._json(200, {**show, "modelfile": f"# {PREFIX}\nFROM {name}\n", "modified_at": _now()})

    def _generate(self, body: dict) -> None:
        """The empty request that loads a model into memory (what prepare_class sends), or one JSON answer."""
        state, name = self.state, body.get("model", "")
        if not state.knows(name):
            return self._json(*state.release.error("model_not_found_chat", name))
        if refused := state.refusal(name, []):
            return self._json(*refused)
        if not body.get("prompt"):  # Ollama's documented way to load a model into memory
            state.loaded.add(name)
            return self._json(
                200, {"model": name, "created_at": _now(), "response": "", "done": True, "done_reason": "load"}
            )
        text = f"{PREFIX} Respuesta a «{body.get('prompt', '')}»."
        final = {k: v for k, v in _final(name, "").items() if k != "message"}
        self._json(200, {**final, "response": text, **self._stats(name, {"messages": []}, 1)})

    def _chat(self, body: dict) -> None:
        state = self.state
        name = body.get("model", "")
        if not name:
            return self._json(400, {"error": "model is required"})
        if not state.knows(name):
            return self._json(*state.release.error("model_not_found_chat", name))
        if state.failures:
            status, error = state.failures.pop(0)
            return self._json(status, {"error": error})
        if state.html_failures:
            return self._html(state.html_failures.pop(0))
        if state.hang:
            return self._hang()
        if refused := state.refusal(name, body.get("messages") or []):
            return self._json(*refused)
        if state.max_queue is None:
            return self._reply(name, body)
        if not state.admit():
            return self._json(503, {"error": BUSY_ERROR})
        try:
            with state._generating:  # one answer at a time; the others wait here, without headers
                self._reply(name, body)
        finally:
            state.leave()

    def _reply(self, name: str, body: dict) -> None:
        text = self.state.answer(body)
        if body.get("stream", True) is False:
            return self._json(200, {**_final(name, text), **self._stats(name, body, 1)})
        self._stream(name, text, body)

    def _html(self, status: int) -> None:
        data = html_page(status).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _hang(self) -> None:
        """Accept the chat and never answer; record when the client gives up."""
        release = self.state._release
        self.state.hanging.set()
        if self._client_left(HANG_LIMIT, release):
            self.state.disconnected.set()
        self.close_connection = True

    def _client_left(self, seconds: float, release: threading.Event | None = None) -> bool:
        """Wait up to `seconds`; True as soon as the client closes its connection."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not (release and release.is_set()):
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.02))
            if readable:
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        return True
                except OSError:
                    return True
                time.sleep(min(left, 0.02))  # the client sent more bytes: not a disconnection
        return False

    def _stats(self, name: str, body: dict, eval_count: int) -> dict:
        """The documented statistics of an answer, in nanoseconds: a stand-in's figures (40 tokens/s, a
        load of 0.15 s the first time a model is used), or the test's own `final_stats`."""
        state = self.state
        if state.final_stats is not None:
            return dict(state.final_stats)
        with state._lock:
            load = 20_000_000 if name in state.loaded else 150_000_000
            state.loaded.add(name)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) + 8 for m in body.get("messages", []))
        prompt, generate = prompt_tokens * 2_000_000, eval_count * 25_000_000
        return {
            "total_duration": load + prompt + generate + 5_000_000,
            "load_duration": load,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": prompt,
            "eval_count": eval_count,
            "eval_duration": generate,
        }

    def _stream(self, name: str, text: str, body: dict) -> None:
        state = self.state
        cut, state.cut_after_chunks = state.cut_after_chunks, None
        drop, state.drop_after_chunks = state.drop_after_chunks, None
        bad, state.line_after_chunks = state.line_after_chunks, None
        pieces = split_pieces(text, state.piece_size)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        batch: list[str] = []
        try:
            for i, piece in enumerate(pieces):
                if bad is not None and i >= bad[0]:
                    return self._end([*batch, bad[1] + "\n"])
                if cut is not None and i >= cut:
                    return self._end(batch)
                if drop is not None and i >= drop:
                    return self._drop(batch)
                batch.append(
                    f'{{"model":{json.dumps(name)},"created_at":"{_now()}","message":'
                    f'{{"role":"assistant","content":{json.dumps(piece)}}},"done":false}}\n'
                )
                if state.chunk_delay or sum(map(len, batch)) >= BATCH_BYTES:
                    self._chunk("".join(batch))
                    batch = []
                if state.chunk_delay and self._client_left(state.chunk_delay):
                    state.disconnected.set()
                    self.close_connection = True
                    return
            batch.append(json.dumps({**_final(name, ""), **self._stats(name, body, len(pieces))}) + "\n")
            self._chunk("".join(batch))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            state.disconnected.set()  # the client stopped reading: that is allowed
            self.close_connection = True

    def _end(self, batch: list[str]) -> None:
        """Send what is pending and end the body early: no "done" line."""
        if batch:
            self._chunk("".join(batch))
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def _drop(self, batch: list[str]) -> None:
        """Send what is pending and close the connection in the middle of the body."""
        if batch:
            self._chunk("".join(batch))
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _chunk(self, data: str) -> None:
        raw = data.encode()
        self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()


def _final(name: str, text: str) -> dict:
    """Ollama's last line (or whole non-streamed answer), before its statistics (`_Handler._stats`)."""
    return {
        "model": name,
        "created_at": _now(),
        "message": {"role": "assistant", "content": text},
        "done": True,
        "done_reason": "stop",
    }


if __name__ == "__main__":  # handy for trying the notebooks by hand without a real server
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 11434
    double = OllamaDouble(release=sys.argv[2] if len(sys.argv) > 2 else OLD).start(port)
    print(f"Doble de Ollama {double.version} (no es un modelo real) en {double.url}. Ctrl+C para parar.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        double.stop()
