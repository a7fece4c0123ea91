"""deploy/nginx/hub-https.conf with a certificate from deploy/make_selfsigned_cert.sh, in front of a
stand-in for the hub on loopback, with Debian's nginx (`make nginx`).

The file is used as it is; only the ports, the certificate's paths, the name and the hub's address
change. The stand-in serves a page that loads the course's own course_utils/recorder.js (the widget's
front end, with a small model in place of Jupyter's) and a websocket that echoes (kernels talk over
websockets). Chromium reaches the page by name (curso.laboratorio, mapped to 127.0.0.1, because
127.0.0.1 and localhost are secure contexts even over HTTP) and trusts the certificate's key, as a lab
computer with hub.crt installed would. Through nginx the page is a secure context and the recorder
records from Chromium's fake microphone; the same page over plain HTTP gets the recorder's «insecure»
error, which shows that the check can fail.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.test_proxy import WAIT, _free_port, _nginx, nginx_main_conf

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "nginx" / "hub-https.conf"
CERT_SCRIPT = ROOT / "deploy" / "make_selfsigned_cert.sh"
RECORDER = ROOT / "course_utils" / "recorder.js"
NAME = "curso.laboratorio"
CHROMIUM = Path("/usr/bin/chromium")

PAGE = """<!doctype html><meta charset="utf-8"><title>grabadora</title><div id="w"></div>
<script type="module">
import recorder from "/recorder.js";
const state = {recording: false, disabled: false, max_seconds: 5, label_record: "Grabar", label_stop: "Detener",
               languages: [["es", "Español"]], language: "es"};
const handlers = {};
window.sent = [];
const model = {
  get: (k) => state[k],
  set: (k, v) => { state[k] = v; (handlers["change:" + k] || []).forEach((f) => f()); },
  save_changes: () => {},
  on: (event, f) => { (handlers[event] = handlers[event] || []).push(f); },
  send: (msg) => window.sent.push(msg),
};
recorder.render({model, el: document.getElementById("w")});
window.ready = true;
</script>"""


class StandInHub:
    """What the test needs of a hub: a page, the recorder's module, the headers it got, a websocket."""

    def __init__(self):
        from websockets.datastructures import Headers
        from websockets.http11 import Response
        from websockets.sync.server import serve

        def respond(status: int, body: bytes, kind: str) -> Response:
            headers = Headers([("Content-Type", kind), ("Content-Length", str(len(body)))])
            return Response(status, "OK" if status == 200 else "Not Found", headers, body)

        def process_request(connection, request):
            if request.path == "/eco":
                return None  # the websocket handshake goes on
            if request.path == "/":
                return respond(200, PAGE.encode(), "text/html; charset=utf-8")
            if request.path == "/recorder.js":
                return respond(200, RECORDER.read_bytes(), "text/javascript; charset=utf-8")
            if request.path == "/cabeceras":
                seen = {k.lower(): v for k, v in request.headers.raw_items()}
                return respond(200, json.dumps(seen).encode(), "application/json")
            return respond(404, b"no", "text/plain")

        def echo(websocket):
            for message in websocket:
                websocket.send("eco: " + message)

        self.server = serve(echo, "127.0.0.1", 0, process_request=process_request)
        self.port = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def render(conf: str, hub_port: int, https_port: int, http_port: int, tls: Path) -> str:
    """The repository's file with free ports, the test's certificate and the stand-in's address."""
    for pattern, value in [
        (r"listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        (r"listen 80;", f"listen 127.0.0.1:{http_port};"),
        (r"proxy_pass http://127\.0\.0\.1:8000;", f"proxy_pass http://127.0.0.1:{hub_port};"),
        (r"ssl_certificate /etc/curso-hub/tls/hub\.crt;", f"ssl_certificate {tls / 'hub.crt'};"),
        (r"ssl_certificate_key /etc/curso-hub/tls/hub\.key;", f"ssl_certificate_key {tls / 'hub.key'};"),
        (r"root /var/www/letsencrypt;", f"root {tls};"),
    ]:
        conf, n = re.subn(pattern, value, conf)
        assert n == 1, f"{CONF} ya no tiene «{pattern}»: actualiza esta prueba"
    return conf


@pytest.fixture(scope="module")
def front_door(tmp_path_factory):
    nginx = _nginx()
    if nginx is None:
        pytest.skip("no hay nginx: `make nginx` (scripts/install_debian_package.sh) lo instala desde Debian")
    tmp = tmp_path_factory.mktemp("https")
    tls = tmp / "tls"
    made = subprocess.run(
        ["bash", str(CERT_SCRIPT), NAME, "127.0.0.1"],
        env={**os.environ, "COURSE_HUB_TLS_DIR": str(tls)},
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    hub = StandInHub()
    https_port, http_port = _free_port(), _free_port()
    (tmp / "hub.conf").write_text(render(CONF.read_text(), hub.port, https_port, http_port, tls))
    (tmp / "nginx.conf").write_text(nginx_main_conf(tmp, tmp / "hub.conf"))
    args = ["-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")]
    check = subprocess.run([nginx, "-t", *args], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen([nginx, *args], stderr=subprocess.PIPE)
    url = f"https://{NAME}:{https_port}"
    context = ssl.create_default_context(cafile=str(tls / "hub.crt"))
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                with _client(context, https_port) as client:
                    if client.get("/").status_code == 200:
                        break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "nginx no respondió"
            time.sleep(0.1)
        yield {"url": url, "http_port": http_port, "hub": hub, "tls": tls, "context": context, "port": https_port}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        hub.stop()


def _client(context: ssl.SSLContext, port: int) -> httpx.Client:
    """A client that trusts only the test's certificate (its subjectAltName has 127.0.0.1 too)."""
    return httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context, timeout=WAIT)


def test_the_certificate_names_the_server_and_its_key_is_private(front_door):
    tls = front_door["tls"]
    assert (tls / "hub.key").stat().st_mode & 0o777 == 0o600
    text = subprocess.run(
        ["openssl", "x509", "-in", str(tls / "hub.crt"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
    ).stdout
    assert f"DNS:{NAME}" in text and "IP Address:127.0.0.1" in text


def test_https_reaches_the_hub_with_the_forwarded_headers_and_http_redirects(front_door):
    with _client(front_door["context"], front_door["port"]) as client:
        seen = client.get("/cabeceras", headers={"Host": NAME}).json()
    assert seen["x-forwarded-proto"] == "https" and seen["host"] == NAME
    assert seen["x-forwarded-for"] == "127.0.0.1"
    plain = httpx.get(f"http://127.0.0.1:{front_door['http_port']}/hub/login", headers={"Host": NAME})
    assert plain.status_code == 301 and plain.headers["location"] == f"https://{NAME}/hub/login"


def test_websockets_pass_through_the_tls_front_door(front_door):
    from websockets.sync.client import connect

    with connect(f"wss://127.0.0.1:{front_door['port']}/eco", ssl=front_door["context"]) as ws:
        ws.send("hola")
        assert ws.recv(timeout=WAIT) == "eco: hola"


def _spki_hash(cert: Path) -> str:
    """The base64 SHA-256 of the certificate's public key, as Chromium's trust flag wants it."""
    der = subprocess.run(
        f"openssl x509 -in {cert} -pubkey -noout | openssl pkey -pubin -outform der",
        shell=True,
        capture_output=True,
        check=True,
    ).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.mark.browser
def test_the_recorder_works_through_https_and_refuses_plain_http(front_door):
    if not CHROMIUM.exists():
        pytest.skip("no hay /usr/bin/chromium: `make browser` lo instala")
    from playwright.sync_api import sync_playwright

    from tests.test_browser import FLAGS

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                *FLAGS,
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--host-resolver-rules=MAP {NAME} 127.0.0.1",
                f"--ignore-certificate-errors-spki-list={_spki_hash(front_door['tls'] / 'hub.crt')}",
            ],
        )
        try:
            results = {}
            for label, url in [
                ("https", front_door["url"] + "/"),
                ("http", f"http://{NAME}:{front_door['hub'].port}/"),  # the hub itself, without nginx
            ]:
                page = browser.new_page()
                page.goto(url)
                page.wait_for_function("window.ready === true", timeout=WAIT * 1000)
                secure = page.evaluate("window.isSecureContext")
                page.click("button.course-rec-button")
                page.wait_for_function(
                    "window.sent.length > 0 || document.querySelector('.course-rec-on') !== null",
                    timeout=WAIT * 1000,
                )
                if page.evaluate("window.sent.length") == 0:  # recording: stop it, the audio is sent
                    page.wait_for_timeout(1500)  # let the fake microphone fill a few chunks
                    page.click("button.course-rec-button")
                    page.wait_for_function("window.sent.length > 0", timeout=WAIT * 1000)
                results[label] = (secure, page.evaluate("window.sent[0]"))
                page.close()
        finally:
            browser.close()
    secure, sent = results["https"]
    assert secure is True
    assert sent["type"] == "audio" and sent["size"] > 0, sent
    secure, sent = results["http"]
    assert secure is False
    assert sent == {"type": "error", "reason": "insecure", "detail": f"http://{NAME}:{front_door['hub'].port}"}
