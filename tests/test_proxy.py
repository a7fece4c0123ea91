"""deploy/nginx/ollama.conf in front of two Ollama doubles, with Debian's nginx on loopback.

The file is used as it is; only the two servers' addresses and the listening port change. The test
shows that a streamed answer still arrives piece by piece through nginx (the client gets pieces
while the server is held in the middle of its answer, which a buffering proxy would keep back),
that `least_conn` sends new requests to the server with none in progress, that a full queue (503)
on one server sends the request to the other, and that both servers get traffic. It also shows the
allow-list: every endpoint a student needs passes, and every administration endpoint of Ollama's API
answers 403 with a JSON body without reaching either server (the doubles answer those endpoints, so
without the allow-list they would be reached and recorded).
`make test` installs nginx (scripts/install_debian_package.sh); without it this test is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.ollama_double import BUSY_ERROR, OllamaDouble

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "nginx" / "ollama.conf"
NFT = ROOT / "deploy" / "nftables" / "curso-ollama.nft"
HOLD = "ESPERA"  # a streamed answer stops right after the piece with this word, until released
MODEL = "llama3.2-vision"
WAIT = 60  # seconds: only a bound for failures, never a measurement


def nginx_main_conf(folder: Path, include: Path) -> str:
    """A main nginx.conf for a test: everything under `folder` (pid, logs, temporary files), in the
    foreground, as root where the tests run as root, serving the site configuration `include`."""
    temp = "\n".join(
        f"  {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
daemon off;
worker_processes 1;
{"user root;" if os.geteuid() == 0 else ""}
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} notice;
events {{ worker_connections 128; }}
http {{
  access_log {folder / "access.log"};
{temp}
  include {include};
}}
"""


def _nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hold_streams(double: OllamaDouble, release: threading.Event) -> None:
    """After sending the piece that contains HOLD, the double waits for `release`."""
    base = double.server.RequestHandlerClass

    class Held(base):
        def _chunk(self, data: str) -> None:
            super()._chunk(data)
            if HOLD in data:
                release.wait(WAIT)

    double.server.RequestHandlerClass = Held


def render(conf: str, doubles: list[OllamaDouble], port: int) -> str:
    """The repository's configuration with the doubles' addresses and a free port."""
    for default, double in zip(("127.0.0.1:11435", "127.0.0.1:11436"), doubles):
        conf, n = re.subn(rf"server {re.escape(default)} ", f"server {double.url.split('//')[1]} ", conf)
        assert n == 1, f"{CONF} ya no tiene «server {default}»: actualiza esta prueba"
    conf, n = re.subn(r"listen 127\.0\.0\.1:11434;", f"listen 127.0.0.1:{port};", conf)
    assert n == 1, f"{CONF} ya no tiene «listen 127.0.0.1:11434;»: actualiza esta prueba"
    return conf


@pytest.fixture
def proxy(tmp_path):
    nginx = _nginx()
    if nginx is None:
        pytest.skip("no hay nginx: `make nginx` (scripts/install_debian_package.sh) lo instala desde Debian")
    release = threading.Event()
    doubles = [OllamaDouble(chunk_delay=0.01).start() for _ in range(2)]
    for double in doubles:
        hold_streams(double, release)
    port = _free_port()
    (tmp_path / "ollama.conf").write_text(render(CONF.read_text(), doubles, port))
    (tmp_path / "nginx.conf").write_text(nginx_main_conf(tmp_path, tmp_path / "ollama.conf"))
    check = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log")],
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if httpx.get(url + "/").text == "Ollama is running":
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "nginx no respondió"
            time.sleep(0.1)
        for double in doubles:
            double.requests.clear()
        yield url, doubles, release
    finally:
        release.set()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for double in doubles:
            double.stop()


def chat(prompt: str, stream: bool) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": stream}


def prompts(double: OllamaDouble) -> list[str]:
    return [body["messages"][-1]["content"] for body in double.chats()]


def test_streaming_through_nginx_arrives_piece_by_piece_and_spreads_over_both_servers(proxy):
    url, doubles, release = proxy
    long_prompt = f"{HOLD} una respuesta que se escribe poco a poco"
    with (
        httpx.Client(timeout=WAIT) as client,
        client.stream("POST", url + "/api/chat", json=chat(long_prompt, True)) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()
        before = []
        for line in lines:  # the server is held after the HOLD piece: these can only come streamed
            before.append(json.loads(line))
            if HOLD in before[-1]["message"]["content"]:
                break
        assert len(before) >= 2 and not any(piece["done"] for piece in before)
        holder = next(d for d in doubles if long_prompt in prompts(d))
        other = next(d for d in doubles if d is not holder)

        # While that answer streams, least_conn sends every new request to the other server.
        for i in range(3):
            answer = client.post(url + "/api/chat", json=chat(f"pregunta corta {i}", False))
            assert answer.status_code == 200, answer.text
            assert f"pregunta corta {i}" in answer.json()["message"]["content"]
        assert prompts(other) == [f"pregunta corta {i}" for i in range(3)]
        assert prompts(holder) == [long_prompt]

        # The other server's queue is full (Ollama's 503): nginx hands the request to the first one.
        other.failures.append((503, BUSY_ERROR))
        answer = client.post(url + "/api/chat", json=chat("con la cola llena", False))
        assert answer.status_code == 200, answer.text
        assert prompts(other)[-1] == "con la cola llena" and prompts(holder)[-1] == "con la cola llena"

        release.set()
        after = [json.loads(line) for line in lines]
    assert after and after[-1]["done"] is True and not any(piece["done"] for piece in after[:-1])
    text = "".join(piece["message"]["content"] for piece in before + after)
    assert long_prompt in text
    assert all(d.chats() for d in doubles), "los dos servidores recibieron peticiones"


# --- the allow-list: what a student may ask Ollama through nginx ------------------------------------------

STUDENT_ENDPOINTS = [
    ("GET", "/", None),
    ("HEAD", "/", None),
    ("GET", "/api/version", None),
    ("GET", "/api/tags", None),
    ("GET", "/api/ps", None),
    ("POST", "/api/show", {"model": MODEL}),
    ("POST", "/api/generate", {"model": MODEL, "prompt": "hola", "stream": False}),
    ("POST", "/api/chat", chat("hola", False)),
]
ADMIN_ENDPOINTS = [
    ("DELETE", "/api/delete", {"model": MODEL}),
    ("POST", "/api/pull", {"model": "otro-modelo"}),
    ("POST", "/api/push", {"model": MODEL}),
    ("POST", "/api/create", {"model": MODEL, "from": "otro-modelo"}),
    ("POST", "/api/copy", {"source": MODEL, "destination": "copia"}),
    ("POST", "/api/embed", {"model": MODEL, "input": "hola"}),
    ("POST", "/api/embeddings", {"model": MODEL, "prompt": "hola"}),
    ("POST", "/api/blobs/sha256:" + "0" * 64, None),
    ("HEAD", "/api/blobs/sha256:" + "0" * 64, None),
    ("GET", "/v1/models", None),
    ("POST", "/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hola"}]}),
    ("POST", "/", None),
    ("DELETE", "/", None),
]


def reached(doubles: list[OllamaDouble], method: str, path: str) -> int:
    return sum(1 for d in doubles for r in d.requests if (r.method, r.path.split("?")[0]) == (method, path))


@pytest.mark.parametrize(
    ("method", "path", "body"), STUDENT_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in STUDENT_ENDPOINTS]
)
def test_what_students_use_passes(proxy, method, path, body):
    url, doubles, _ = proxy
    answer = httpx.request(method, url + path, json=body, timeout=WAIT)
    assert answer.status_code == 200, answer.text
    assert reached(doubles, method, path) == 1


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ADMIN_ENDPOINTS])
def test_ollama_administration_is_refused_with_403_and_never_reaches_a_server(proxy, method, path, body):
    url, doubles, _ = proxy
    answer = httpx.request(method, url + path, json=body, timeout=WAIT)
    assert answer.status_code == 403, (answer.status_code, answer.text)
    if method != "HEAD":
        assert answer.headers["content-type"].startswith("application/json")
        assert "error" in answer.json()  # Ollama's error shape: the client shows the message
    assert not any(d.requests for d in doubles), [r.path for d in doubles for r in d.requests]
    tags = httpx.get(url + "/api/tags", timeout=WAIT).json()
    assert [m["name"] for m in tags["models"]] == ["llama3.2-vision:latest"]  # the class model is still there


def raw_request(url: str, method: str, target: str) -> int:
    """One request with the path exactly as written (httpx would clean it up first); its status."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as s:
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{{}}".encode())
        return int(s.recv(4096).split(b" ", 2)[1])


@pytest.mark.parametrize(
    "target", ["/api/chat/../delete", "/api/tags/..%2Fdelete", "//api/delete", "/api/chat/../../api/pull"]
)
def test_a_disguised_administration_path_is_refused(proxy, target):
    url, doubles, _ = proxy
    assert raw_request(url, "DELETE" if "delete" in target else "POST", target) == 403
    assert not any(d.requests for d in doubles)


def test_ollama_receives_the_cleaned_path_not_the_one_sent(proxy):
    url, doubles, _ = proxy
    assert raw_request(url, "POST", "/api/delete/../show") in (200, 400, 404)
    assert [r.path for d in doubles for r in d.requests] == ["/api/show"]


# --- Ollama's own ports: the allow-list cannot be skipped from the same machine -------------------------

ASK = (
    "import sys, urllib.request\n"
    "try:\n"
    "    print(urllib.request.urlopen('http://127.0.0.1:11435/api/tags', timeout=10).status)\n"
    "except OSError as exc:\n"
    "    print(type(getattr(exc, 'reason', exc)).__name__)\n"
)


def test_ollamas_own_ports_refuse_everyone_but_root_and_nginx():
    """In a network namespace of its own: the Ollama double on 11435, then deploy/nftables/curso-ollama.nft.
    A student's process (here `nobody`) reaches the port before the rules and is refused after them;
    root (the teacher with sudo) and nginx's workers (www-data) still reach it."""
    import pwd

    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"):
        pytest.skip("hace falta root, nft (apt-get install nftables) y unshare")
    try:
        pwd.getpwnam("www-data"), pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("faltan las cuentas www-data o nobody")
    ask = " ".join(
        f"printf '%s=' {user}; runuser -u {user} -- /usr/bin/python3 -c \"$ASK\";"
        for user in ("root", "www-data", "nobody")
    )
    script = f"""
ip link set lo up 2>/dev/null || true
{sys.executable} -m tests.ollama_double 11435 >/dev/null 2>&1 &
for i in $(seq 100); do /usr/bin/python3 -c "$PROBE" 2>/dev/null && break; sleep 0.1; done
echo "antes: $({ask})"
nft -f {NFT} || echo "nft falló"
echo "después: $({ask})"
kill $!
"""
    done = subprocess.run(
        ["unshare", "-n", "bash", "-c", script],
        cwd=ROOT,
        env={
            **os.environ,
            "ASK": ASK,
            "PROBE": "import socket; socket.create_connection(('127.0.0.1', 11435), 1)",
            "PYTHONPATH": str(ROOT),
        },
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.stdout.split() == [
        *("antes:", "root=200", "www-data=200", "nobody=200"),  # without the rules: the hole
        *("después:", "root=200", "www-data=200", "nobody=ConnectionRefusedError"),
    ], done.stdout + done.stderr
