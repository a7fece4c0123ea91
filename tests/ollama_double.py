"""A loopback HTTP server that speaks Ollama's documented API, for tests.

It implements /api/version, /api/tags, /api/show and /api/chat (streamed NDJSON or one JSON body,
images as base64) with Ollama's error bodies, and records every request. Its answers say that they
come from a stand-in. Tests can queue replies, failures and cut streams through its attributes.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "0.12.0-doble"
PREFIX = "[doble de pruebas de Ollama]"


@dataclass
class Recorded:
    method: str
    path: str
    body: dict | None


@dataclass
class OllamaDouble:
    """State shared with the handler. Start with `start()`, stop with `stop()`."""

    models: list[str] = field(default_factory=lambda: ["llama3.2-vision:latest"])
    requests: list[Recorded] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)  # queued answers, else an echo
    failures: list[tuple[int, str]] = field(default_factory=list)  # queued (status, error) for /api/chat
    cut_after_chunks: int | None = None  # close the next stream after N chunks, without "done"
    chunk_delay: float = 0.0  # seconds between streamed chunks
    max_images: int = 1  # llama3.2-vision accepts one image per message
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, port: int = 0) -> "OllamaDouble":
        double = self

        class Handler(_Handler):
            state = double

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def reset(self) -> None:
        self.requests.clear()
        self.replies.clear()
        self.failures.clear()
        self.cut_after_chunks = None
        self.chunk_delay = 0.0
        self.models = ["llama3.2-vision:latest"]

    def chats(self) -> list[dict]:
        return [r.body for r in self.requests if r.path == "/api/chat"]

    def knows(self, name: str) -> bool:
        name = name if ":" in name else name + ":latest"
        return name in self.models

    def answer(self, body: dict) -> str:
        if self.replies:
            return self.replies.pop(0)
        messages = body.get("messages", [])
        last = messages[-1] if messages else {}
        images = [describe_image(img) for m in messages for img in m.get("images") or []]
        text = f"{PREFIX} Recibí {len(messages)} mensaje(s). Último: «{last.get('content', '')}»."
        if images:
            text += " Imágenes: " + "; ".join(images) + "."
        return text


def describe_image(data: str) -> str:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(base64.b64decode(data))) as img:
            return f"{img.format} {img.width}×{img.height}"
    except Exception:
        return "no es una imagen"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class _Handler(BaseHTTPRequestHandler):
    state: OllamaDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output quiet
        pass

    def _json(self, status: int, payload: dict) -> None:
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
        self.send_response(200)
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
            self._json(200, {"version": VERSION})
        elif self.path == "/api/tags":
            self._json(200, {"models": [_model_entry(name) for name in self.state.models]})
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
        self._json(404, {"error": "404 page not found"})

    def _show(self, body: dict) -> None:
        name = body.get("model") or body.get("name") or ""
        if not self.state.knows(name):
            return self._json(404, {"error": f"model '{name}' not found"})
        self._json(200, {
            "modelfile": f"# {PREFIX}\nFROM {name}\n",
            "parameters": "temperature 0.6\ntop_p 0.9",
            "template": "{{ .Prompt }}",
            "details": _details(),
            "model_info": {"general.architecture": "mllama", "general.parameter_count": 9775701536},
            "capabilities": ["completion", "vision"],
            "modified_at": _now(),
        })

    def _chat(self, body: dict) -> None:
        state = self.state
        name = body.get("model", "")
        if not name:
            return self._json(400, {"error": "model is required"})
        if not state.knows(name):
            return self._json(404, {"error": f'model "{name}" not found, try pulling it first'})
        if state.failures:
            status, error = state.failures.pop(0)
            return self._json(status, {"error": error})
        for message in body.get("messages", []):
            if len(message.get("images") or []) > state.max_images:
                return self._json(500, {"error": "vision model only supports a single image per message"})
        text = state.answer(body)
        if body.get("stream", True) is False:
            return self._json(200, _final(name, text))
        self._stream(name, text)

    def _stream(self, name: str, text: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        cut = self.state.cut_after_chunks
        self.state.cut_after_chunks = None
        pieces = [word + " " for word in text.split(" ")]
        pieces[-1] = pieces[-1][:-1]
        try:
            for i, piece in enumerate(pieces):
                if cut is not None and i >= cut:
                    self.wfile.write(b"0\r\n\r\n")  # end the body early: no "done" line
                    self.close_connection = True
                    return
                line = {"model": name, "created_at": _now(),
                        "message": {"role": "assistant", "content": piece}, "done": False}
                self._chunk(json.dumps(line) + "\n")
                if self.state.chunk_delay:
                    time.sleep(self.state.chunk_delay)
            final = _final(name, "")
            self._chunk(json.dumps(final) + "\n")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading: that is allowed

    def _chunk(self, data: str) -> None:
        raw = data.encode()
        self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()


def _details() -> dict:
    return {"format": "gguf", "family": "mllama", "families": ["mllama"],
            "parameter_size": "10.7B", "quantization_level": "Q4_K_M", "parent_model": ""}


def _model_entry(name: str) -> dict:
    return {"name": name, "model": name, "modified_at": _now(), "size": 7901829417,
            "digest": "0" * 64, "details": _details()}


def _final(name: str, text: str) -> dict:
    return {
        "model": name, "created_at": _now(),
        "message": {"role": "assistant", "content": text},
        "done": True, "done_reason": "stop",
        "total_duration": 1_000_000, "load_duration": 100_000,
        "prompt_eval_count": 10, "prompt_eval_duration": 200_000,
        "eval_count": max(1, len(text.split())), "eval_duration": 700_000,
    }


if __name__ == "__main__":  # handy for trying the notebooks by hand without a real server
    import sys

    double = OllamaDouble().start(int(sys.argv[1]) if len(sys.argv) > 1 else 11434)
    print(f"Doble de Ollama (no es un modelo real) en {double.url}. Ctrl+C para parar.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        double.stop()
