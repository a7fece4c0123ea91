"""A real JupyterHub on loopback with the course's configuration (deploy/jupyterhub/).

JupyterHub comes from PyPI and configurable-http-proxy from npm (`make test-hub` installs both:
the `hub` extra and `npm install` into .cache/hub-node). The hub loads the real
deploy/jupyterhub/jupyterhub_config.py (and through it curso.py); the test only swaps what needs
a real server: PAM and systemd become DummyAuthenticator and SimpleLocalProcessSpawner, and the
ports are free loopback ports. Three students are created through the REST API, their servers are
started, and notebook 02 runs in each one's server through the proxy: uploaded with the contents
API and executed cell by cell over the kernel's websocket, then saved back.

The nbgrader round, as in instructor/GUIA.md: a teacher with the course directory in her home
generates and releases an assignment to the exchange; two students fetch it and submit it from the
Assignments tab (the REST API of nbgrader's server extension in their own servers), one with the
exercises solved and one untouched; the teacher collects, autogrades, generates and releases the
feedback, and each student fetches it. Every user reads the lab server's nbgrader configuration
(deploy/nbgrader/nbgrader_config.py); only the exchange folder moves into the test's folder.

Marked `hub`: the default suite (`make test`) leaves it out; `.ci/run` runs it as its own step.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import nbformat
import pytest

pytestmark = pytest.mark.hub

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "jupyterhub"
# The instructor version (exercises solved): it runs whole; the student version stops at each exercise
# with NotImplementedError until the student writes it (tests/test_coursework.py covers that one).
NOTEBOOK = ROOT / "instructor" / "source" / "02_transformer_por_dentro" / "02_transformer_por_dentro.ipynb"
CHP = (ROOT / (os.environ.get("COURSE_CHP") or ".cache/hub-node/node_modules/.bin/configurable-http-proxy")).resolve()
STUDENTS = ["ana", "bruno", "carla"]
TOKEN = uuid.uuid4().hex
# A slow 2-core machine starts three servers and three PyTorch kernels at once: be patient.
START_TIMEOUT = 300
CELL_TIMEOUT = 300

PROBE = """
import json, os, sys
from course_utils import config
print("PROBE" + json.dumps({
    "user": os.environ.get("JUPYTERHUB_USER"), "home": os.environ.get("HOME"), "cwd": os.getcwd(),
    "pid": os.getpid(), "server_pid": os.getppid(), "python": sys.executable,
    "env": {k: os.environ.get(k) for k in ("COURSE_DEVICE", "OLLAMA_HOST", "HF_HOME", "HF_HUB_OFFLINE",
            "MEM_LIMIT", "CPU_LIMIT", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "COURSE_WHISPER_MODEL")},
    "device": config.settings().device,
}))
"""
OLLAMA_PROBE = """
import ollama, os
print("MODELOS", [m.model for m in ollama.Client(host=os.environ["OLLAMA_HOST"]).list().models])
"""


def _missing() -> str | None:
    try:
        import jupyterhub  # noqa: F401
        import jupyterhub_idle_culler  # noqa: F401
    except ImportError as exc:
        return f"falta {exc.name}: instala el extra con `make hub-deps`"
    if not CHP.exists():
        return f"falta configurable-http-proxy en {CHP}: `make hub-deps` lo instala con npm"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    def __init__(self, root: Path):
        self.root = root
        self.port, self.hub_port, self.api_port = _free_port(), _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.shared = root / "shared"
        self.homes = root / "home"
        self.log = root / "jupyterhub.log"
        self.process: subprocess.Popen | None = None
        self.pids: set[int] = set()  # user servers and kernels seen by the probes, for the cleanup
        self.api = httpx.Client(base_url=self.url + "/hub/api", timeout=60, headers={"Authorization": f"token {TOKEN}"})

    def config(self) -> Path:
        args = ["--allow-root"] if os.geteuid() == 0 else []  # CI containers run as root
        text = f"""
load_subconfig({str(DEPLOY / "jupyterhub_config.py")!r})
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(self.homes)!r} + "/{{username}}"
c.JupyterHub.bind_url = {self.url!r}
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{self.hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.api_port}"
c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]
c.Spawner.start_timeout = {START_TIMEOUT}
c.Spawner.http_timeout = {START_TIMEOUT}
c.Spawner.args.extend({args!r})
c.JupyterHub.services.append({{"name": "pruebas", "api_token": {TOKEN!r}}})
c.JupyterHub.load_roles.append({{"name": "pruebas", "services": ["pruebas"],
    "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "list:services", "read:services"]}})
"""
        path = self.root / "jupyterhub_config.py"
        path.write_text(text)
        return path

    def start(self) -> None:
        self.homes.mkdir(exist_ok=True)
        env = dict(os.environ)
        env.update(
            {
                "COURSE_HUB_SHARED": str(self.shared),
                "COURSE_HUB_MEM_LIMIT": "2G",
                "COURSE_HUB_CPU_LIMIT": "1",
                "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            }
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.config())],
            cwd=self.root,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"JupyterHub terminó al arrancar:\n{self.tail()}")
            try:
                if self.api.get("/").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(1)
        raise AssertionError(f"JupyterHub no respondió en {START_TIMEOUT} s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def restart(self) -> None:
        """Stop the hub alone (as `systemctl restart` or a second install_hub.sh does) and start it again."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(120)
        self.start()

    def stop_servers(self) -> None:
        """The hub leaves the servers running when it stops (cleanup_servers=False): stop them first."""
        try:
            users = self.api.get("/users").json()
        except httpx.HTTPError:
            return
        running = [u["name"] for u in users if u.get("servers")]
        for name in running:
            self.api.delete(f"/users/{name}/server")
        deadline = time.monotonic() + START_TIMEOUT
        while running and time.monotonic() < deadline:
            running = [n for n in running if self.api.get(f"/users/{n}").json()["servers"]]
            time.sleep(1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.stop_servers()
            self.process.send_signal(signal.SIGTERM)  # the hub stops the user servers and the proxy
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for pid in self.pids:  # anything of ours the hub did not stop
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.api.close()

    def wait_ready(self, name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            server = self.api.get(f"/users/{name}").json()["servers"].get("", {})
            if server.get("ready"):
                return
            if not server.get("pending") and not server.get("ready"):
                raise AssertionError(f"el servidor de {name} no arrancó:\n{self.tail()}")
            time.sleep(2)
        raise AssertionError(f"el servidor de {name} no estuvo listo en {START_TIMEOUT} s:\n{self.tail()}")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    if reason := _missing():
        if os.environ.get("COURSE_HUB_REQUIRED"):
            pytest.fail(reason)
        pytest.skip(reason)
    hub = Hub(tmp_path_factory.mktemp("hub"))
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()


class Kernel:
    """One kernel of a user's server, driven over its websocket through the hub's proxy."""

    def __init__(self, hub: Hub, user: str, token: str, kernel_id: str):
        import websocket

        url = hub.url.replace("http", "ws", 1) + f"/user/{user}/api/kernels/{kernel_id}/channels"
        self.ws = websocket.create_connection(url, header=[f"Authorization: token {token}"], timeout=CELL_TIMEOUT)
        self.session = uuid.uuid4().hex
        self.user = user

    def execute(self, code: str) -> list[dict]:
        """Run `code`; return its outputs in notebook format. Raises on a kernel error."""
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": self.user,
                        "session": self.session,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "buffers": [],
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": True,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            )
        )
        outputs, idle, replied = [], False, False
        while not (idle and replied):
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if msg["channel"] == "shell" and kind == "execute_reply":
                replied = True
            elif kind == "status":
                idle = content["execution_state"] == "idle"
            elif kind == "stream":
                outputs.append({"output_type": "stream", "name": content["name"], "text": content["text"]})
            elif kind in ("display_data", "execute_result"):
                out = {"output_type": kind, "data": content["data"], "metadata": content.get("metadata", {})}
                if kind == "execute_result":
                    out["execution_count"] = content["execution_count"]
                outputs.append(out)
            elif kind == "error":
                raise AssertionError(
                    f"{self.user}: {content['ename']}: {content['evalue']}\n" + "\n".join(content["traceback"])[-3000:]
                )
        return outputs

    def close(self):
        self.ws.close()


def _text(outputs: list[dict]) -> str:
    """The text of some outputs; saved notebooks store text as a list of lines."""
    pieces = [o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in outputs]
    return "".join("".join(p) if isinstance(p, list) else p for p in pieces)


def run_notebook_as(hub: Hub, user: str) -> dict:
    """Upload notebook 02 to `user`'s server, run it there through the proxy, save it; report."""
    token = hub.api.post(f"/users/{user}/tokens", json={"note": "prueba del curso"}).json()["token"]
    server = httpx.Client(
        base_url=f"{hub.url}/user/{user}/api", timeout=120, headers={"Authorization": f"token {token}"}
    )
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    name = NOTEBOOK.name
    put = server.put(f"/contents/{name}", json={"type": "notebook", "format": "json", "content": nb})
    assert put.status_code in (200, 201), put.text
    session = server.post(
        "/sessions", json={"path": name, "type": "notebook", "name": name, "kernel": {"name": "python3"}}
    )
    assert session.status_code == 201, session.text
    kernel = Kernel(hub, user, token, session.json()["kernel"]["id"])
    try:
        probe_text = _text(kernel.execute(PROBE))
        probe = json.loads(probe_text.split("PROBE", 1)[1])
        hub.pids.update({probe["pid"], probe["server_pid"]})
        models = _text(kernel.execute(OLLAMA_PROBE))
        count = 0
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                count += 1
                cell["outputs"] = kernel.execute("".join(cell["source"]))
                cell["execution_count"] = count
    finally:
        kernel.close()
    saved = server.put(f"/contents/{name}", json={"type": "notebook", "format": "json", "content": nb})
    assert saved.status_code == 200, saved.text
    server.delete(f"/sessions/{session.json()['id']}")
    server.close()
    return {"probe": probe, "models": models, "notebook": nb, "cells": count}


def test_three_students_run_a_course_notebook_in_their_own_servers(hub):
    created = hub.api.post("/users", json={"usernames": STUDENTS})
    assert created.status_code == 201, created.text
    for user in STUDENTS:
        started = hub.api.post(f"/users/{user}/server")
        assert started.status_code in (201, 202), started.text
    for user in STUDENTS:
        hub.wait_ready(user)

    with ThreadPoolExecutor(len(STUDENTS)) as pool:
        results = dict(zip(STUDENTS, pool.map(lambda u: run_notebook_as(hub, u), STUDENTS)))

    kernel_pids = {r["probe"]["pid"] for r in results.values()}
    assert len(kernel_pids) == len(STUDENTS), "cada estudiante tiene su propio núcleo"
    for user, result in results.items():
        probe, env = result["probe"], result["probe"]["env"]
        assert probe["user"] == user
        assert probe["home"] == probe["cwd"] == str(hub.homes / user)
        # The course environment of deploy/jupyterhub/curso.py reaches every kernel.
        assert env["COURSE_DEVICE"] == "cpu" and probe["device"] == "cpu"
        assert env["CUDA_VISIBLE_DEVICES"] == ""
        assert env["OLLAMA_HOST"] == os.environ["OLLAMA_HOST"]
        assert env["HF_HOME"] == str(hub.shared / "cache" / "huggingface")
        assert env["HF_HUB_OFFLINE"] == "1"
        assert env["COURSE_WHISPER_MODEL"] == os.environ["COURSE_WHISPER_MODEL"]  # a path: kept as is
        # The per-user limits of deploy/jupyterhub/jupyterhub_config.py (enforced by systemd there).
        assert env["MEM_LIMIT"] == str(2 * 1024**3) and float(env["CPU_LIMIT"]) == 1.0
        assert env["OMP_NUM_THREADS"] == "1"
        # The kernel reaches the (double of the) Ollama server named in OLLAMA_HOST.
        assert "llama3.2-vision:latest" in result["models"]
        # The notebook ran whole, and its outputs are saved in the student's own home.
        cells = [c for c in result["notebook"]["cells"] if c["cell_type"] == "code"]
        assert all(c["execution_count"] for c in cells) and result["cells"] == len(cells)
        text = "".join(_text(c["outputs"]) for c in cells)
        assert "Diferencia máxima con PyTorch (lote aleatorio)" in text and "tokens" in text
        assert any("image/png" in o.get("data", {}) for c in cells for o in c["outputs"]), "sin figuras"
        saved = json.loads((hub.homes / user / NOTEBOOK.name).read_text(encoding="utf-8"))
        saved_cells = [c for c in saved["cells"] if c["cell_type"] == "code"]
        assert [_text(c["outputs"]) for c in saved_cells] == [_text(c["outputs"]) for c in cells]
        assert [len(c["outputs"]) for c in saved_cells] == [len(c["outputs"]) for c in cells]


def test_idle_culler_runs_as_a_hub_service(hub):
    services = hub.api.get("/services")
    assert services.status_code == 200, services.text
    culler = services.json().get("idle-culler")
    assert culler, f"no hay servicio idle-culler: {sorted(services.json())}"
    assert "jupyterhub_idle_culler" in " ".join(culler["command"])
    assert "--timeout=3600" in culler["command"]
    assert culler["pid"] > 0
    os.kill(culler["pid"], 0)  # raises if the culler process is not alive


# --- nbgrader through the exchange ----------------------------------------------------------------------------

TEACHER = "profesora"
CLASS = ["diego", "elena"]
ASSIGNMENT = "04_clasificador_top7"
COURSE_ID = "curso-multimodal"


def _user_api(hub: Hub, user: str) -> tuple[httpx.Client, str]:
    token = hub.api.post(f"/users/{user}/tokens", json={"note": "prueba de nbgrader"}).json()["token"]
    return httpx.Client(
        base_url=f"{hub.url}/user/{user}", timeout=300, headers={"Authorization": f"token {token}"}
    ), token


def _assignments(server: httpx.Client) -> dict[str, str]:
    """What the Assignments tab lists: {assignment: status} for the course."""
    listed = server.get("/assignments", params={"course_id": COURSE_ID})
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["success"], body
    return {a["assignment_id"]: a["status"] for a in body["value"]}


def _click(server: httpx.Client, action: str) -> None:
    """A button of the Assignments tab: fetch, submit or fetch_feedback."""
    done = server.post(f"/assignments/{action}", json={"assignment_id": ASSIGNMENT, "course_id": COURSE_ID})
    assert done.status_code == 200, done.text
    assert done.json()["success"], done.json()


def test_nbgrader_release_fetch_submit_collect_and_feedback_through_the_exchange(hub):
    from tests.test_coursework import INSTRUCTOR, exercises

    exchange = hub.root / "exchange"  # stands in for /srv/nbgrader/exchange
    exchange.mkdir()
    exchange.chmod(0o1777)  # writable by all with the sticky bit, as deploy/lab_permissions.sh leaves it
    created = hub.api.post("/users", json={"usernames": [TEACHER, *CLASS]})
    assert created.status_code == 201, created.text
    for user in [TEACHER, *CLASS]:
        started = hub.api.post(f"/users/{user}/server")
        assert started.status_code in (201, 202), started.text
    for user in [TEACHER, *CLASS]:
        hub.wait_ready(user)
        # On the lab server this file is <environment>/etc/jupyter/nbgrader_config.py (install_hub.sh),
        # and nbgrader takes the student's id from her system account; here every server runs as the
        # same account, so each home says who its student is.
        config = (
            f"load_subconfig({str(ROOT / 'deploy' / 'nbgrader' / 'nbgrader_config.py')!r})\n"
            f"c.Exchange.root = {str(exchange)!r}\n"
        )
        if user in CLASS:
            config += f"c.CourseDirectory.student_id = {user!r}\n"
        (hub.homes / user / "nbgrader_config.py").write_text(config)

    # The teacher: the course directory in her home, then generate and release (GUIA.md, steps 1 and 2).
    course = hub.homes / TEACHER / "curso" / "instructor"
    shutil.copytree(
        INSTRUCTOR,
        course,
        ignore=shutil.ignore_patterns(
            ".ipynb_checkpoints", "__pycache__", "gradebook.db", "release", "submitted", "autograded", "feedback"
        ),
    )
    teacher, token = _user_api(hub, TEACHER)
    started = teacher.post("/api/kernels", json={"name": "python3"})
    assert started.status_code == 201, started.text
    kernel = Kernel(hub, TEACHER, token, started.json()["id"])

    def nbgrader(*args: str) -> None:
        # The teacher's terminal, in her course directory: the exchange of her home's configuration.
        out = _text(
            kernel.execute(
                "import subprocess, sys\n"
                f"r = subprocess.run([sys.executable, '-m', 'nbgrader', *{list(args)!r}, '--Exchange.root={exchange}'],"
                f" cwd={str(course)!r}, capture_output=True, text=True)\n"
                "print('RC', r.returncode, r.stdout[-3000:], r.stderr[-3000:])"
            )
        )
        assert out.startswith("RC 0"), f"nbgrader {' '.join(args)}:\n{out}"

    try:
        nbgrader("generate_assignment", ASSIGNMENT, "--force")
        nbgrader("release_assignment", ASSIGNMENT, "--force")

        # The students: Fetch in the Assignments tab, work, Submit.
        source = nbformat.read(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
        solutions = {
            c.metadata["nbgrader"]["grade_id"]: c.source
            for c in source.cells
            if c.metadata.get("nbgrader", {}).get("solution")
        }
        submitted = {}
        for user in CLASS:
            server, _ = _user_api(hub, user)
            assert _assignments(server).get(ASSIGNMENT) == "released"
            _click(server, "fetch")
            assert _assignments(server)[ASSIGNMENT] == "fetched"
            path = f"/api/contents/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"
            got = server.get(path)
            assert got.status_code == 200, got.text
            nb = got.json()["content"]
            assert "ESCRIBE AQUÍ TU RESPUESTA" in json.dumps(nb, ensure_ascii=False)  # the student version
            if user == "diego":  # solves every exercise and answers the questions
                for cell in nb["cells"]:
                    grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
                    if grade_id in solutions:
                        cell["source"] = solutions[grade_id]
            saved = server.put(path, json={"type": "notebook", "format": "json", "content": nb})
            assert saved.status_code == 200, saved.text
            submitted[user] = nb
            _click(server, "submit")
            assert _assignments(server)[ASSIGNMENT] == "submitted"
            server.close()

        # The teacher: collect, autograde, feedback (GUIA.md, steps 3 to 6).
        nbgrader("collect", ASSIGNMENT)
        for user in CLASS:
            collected = json.loads((course / "submitted" / user / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
            assert ["".join(c["source"]) for c in collected["cells"]] == [
                "".join(c["source"]) for c in submitted[user]["cells"]
            ], f"{user}: lo recogido no es lo entregado"
        nbgrader("autograde", ASSIGNMENT, "--force")
        nbgrader("generate_feedback", ASSIGNMENT, "--force")
        nbgrader("release_feedback", ASSIGNMENT)
    finally:
        kernel.close()
        teacher.close()

    tests = [t for _, ts in exercises(source) for t in ts]
    points = {
        c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    expected = {"diego": sum(points[t] for t in tests), "elena": 0}
    for user in CLASS:
        server, _ = _user_api(hub, user)
        _click(server, "fetch_feedback")
        server.close()
        pages = list((hub.homes / user / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html"))
        assert len(pages) == 1, f"{user}: {pages}"
        html = pages[0].read_text(encoding="utf-8")
        # The open answers wait for the teacher: the page shows the autograded points so far.
        assert f"{ASSIGNMENT} (Puntos: {float(expected[user])} / " in html, (user, expected[user])


# --- a restart of the hub ---------------------------------------------------------------------------------------


def test_restarting_the_hub_leaves_the_students_servers_running(hub):
    """What a second run of install_hub.sh does (`systemctl restart curso-hub`): the servers stay, with
    their kernels, and the new hub finds them (deploy/jupyterhub/curso.py: cleanup_servers=False)."""
    user = "dora"
    created = hub.api.post("/users", json={"usernames": [user]})
    assert created.status_code == 201, created.text
    assert hub.api.post(f"/users/{user}/server").status_code in (201, 202)
    hub.wait_ready(user)
    server, token = _user_api(hub, user)
    kernel = server.post("/api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    before = server.get("/api/status").json()["started"]
    server.close()

    hub.restart()

    hub.wait_ready(user)
    server, _ = _user_api(hub, user)
    try:
        assert server.get("/api/status").json()["started"] == before, "el servidor se paró y volvió a arrancar"
        kernels = server.get("/api/kernels").json()
        assert [k["id"] for k in kernels] == [kernel.json()["id"]], "el núcleo del estudiante se perdió"
    finally:
        server.close()
