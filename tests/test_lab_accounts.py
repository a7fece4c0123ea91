"""The lab server's permissions and limits, proved with separate Unix accounts (run as root).

The test creates a course group, a teacher and three students with `useradd` (homes in a temporary
folder; all removed at the end), runs deploy/lab_permissions.sh (what install_hub.sh runs) with the
exchange, the course directory and the shared folder moved into that folder, and then attacks as the
students themselves (`runuser -u`): nbgrader's own commands for release, fetch and submit, and plain
Python for the attacks. Student processes run the system's Python 3 (same minor version as the course
environment) with the course environment's site-packages on PYTHONPATH, because the course
environment's own interpreter may live where only root can enter.

The memory limits are shown with the kernel mechanism that systemd uses for MemoryMax= (a memory
cgroup for all the students, one inside it per student), created here by hand: this machine's PID 1 is
not systemd, so SystemdSpawner and the slice themselves are not run (docs/laboratorio.md says so).

Last, a real JupyterHub (tests/test_hub.py's, with the course's configuration) with JupyterHub's
LocalProcessSpawner: each student's server and kernels run as her own account; one student's kernel
cannot list a classmate's home, and the hub's pre-spawn hook closes a new account's home.

Marked `hub`: `make test-hub` runs it (it needs root); the default suite leaves it out.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.hub

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "lab_permissions.sh"
COURSE_ID = "curso-multimodal"
ASSIGNMENT = "00_entorno"
SITE = sysconfig.get_paths()["purelib"]
USER_PYTHON = f"/usr/bin/python3.{sys.version_info.minor}"
TAG = uuid.uuid4().hex[:6]
GROUP = f"lab{TAG}"
TEACHER, ANA, BRUNO, OLD = f"pr{TAG}", f"an{TAG}", f"br{TAG}", f"ol{TAG}"  # OLD: an account from before
WAIT = 120  # seconds: only a bound for failures


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "hace falta root para crear cuentas (useradd)"
    if not all(shutil.which(p) for p in ("useradd", "userdel", "groupadd", "runuser")):
        return "faltan useradd/runuser"
    if not os.access(USER_PYTHON, os.X_OK):
        return f"falta {USER_PYTHON} (el mismo Python que el entorno del curso, para las cuentas de prueba)"
    probe = subprocess.run(
        ["runuser", "-u", "nobody", "--", USER_PYTHON, "-c", "import nbgrader, course_utils"],
        env={"PYTHONPATH": f"{SITE}:{ROOT}", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        cwd="/",
        capture_output=True,
        text=True,
    )
    if probe.returncode:
        return f"las cuentas de prueba no pueden leer el entorno ({SITE}) o el curso ({ROOT}): {probe.stderr[-300:]}"
    return None


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=WAIT, **kwargs)


class Lab:
    def __init__(self, base: Path):
        self.base = base
        self.homes = base / "home"
        self.exchange = base / "srv" / "nbgrader" / "exchange"
        self.course_dir = base / "srv" / "nbgrader" / COURSE_ID
        self.shared = base / "srv" / "curso"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "REPO": str(ROOT),
            "COURSE_HUB_EXCHANGE": str(self.exchange),
            "COURSE_HUB_COURSE_DIR": str(self.course_dir),
            "COURSE_HUB_SHARED": str(self.shared),
            "COURSE_HUB_GROUP": GROUP,
            "COURSE_HUB_TEACHER": TEACHER,
        }

    def install(self) -> str:
        done = run("bash", str(SCRIPT), env=self.env())
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    def home(self, user: str) -> Path:
        return Path(pwd.getpwnam(user).pw_dir)

    def as_user(self, user: str, code: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        """`code` (Python) run by `user` itself, in its home, with the course environment's packages."""
        env = {
            "HOME": str(self.home(user)),
            "USER": user,
            "PATH": f"{self.base / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": f"{SITE}:{ROOT}",
            "LANG": "C.UTF-8",
        }
        return run("runuser", "-u", user, "--", USER_PYTHON, "-c", code, env=env, cwd=cwd or self.home(user))

    def nbgrader(self, user: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        code = (
            "import sys; from nbgrader.apps.nbgraderapp import main; "
            f"sys.argv = ['nbgrader', *{list(args)!r}, '--Exchange.root={self.exchange}']; main()"
        )
        return self.as_user(user, code, cwd)


def _useradd(name: str, home: Path, *extra: str) -> None:
    done = run("useradd", "-m", "-d", str(home), "-s", "/bin/sh", *extra, name)
    assert done.returncode == 0, done.stderr
    home.chmod(0o755)  # what Debian's `useradd -m` gives (HOME_MODE unset, UMASK 022)


@pytest.fixture(scope="module")
def lab():
    if reason := _unavailable():
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="lab-cuentas-", dir="/tmp"))
    base.chmod(0o755)  # the students must reach their homes inside
    lab = Lab(base)
    lab.homes.mkdir()
    # nbgrader runs `alembic` from PATH: the course environment's, through the students' Python.
    (base / "bin").mkdir()
    (base / "bin" / "alembic").write_text(f'#!/bin/sh\nexec {USER_PYTHON} -m alembic "$@"\n')
    (base / "bin" / "alembic").chmod(0o755)
    made: list[str] = []
    try:
        assert run("groupadd", GROUP).returncode == 0
        for user in (OLD, ANA, BRUNO):
            _useradd(user, lab.homes / user, "-g", GROUP)
            made.append(user)
        _useradd(TEACHER, lab.homes / TEACHER, "-U", "-G", GROUP)
        made.append(TEACHER)
        lab.output = lab.install()
        yield lab
    finally:
        for user in made:
            run("pkill", "-KILL", "-u", user)  # anything a student left running (only these test accounts)
            run("userdel", "-r", user)
        run("groupdel", GROUP)
        run("groupdel", TEACHER)
        shutil.rmtree(base, ignore_errors=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def owner(path: Path) -> str:
    return pwd.getpwuid(path.lstat().st_uid).pw_name


# --- the exchange ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def released(lab):
    """The teacher generates and releases assignment 00 from her course directory (instructor/GUIA.md)."""
    for step in ("generate_assignment", "release_assignment"):
        done = lab.nbgrader(TEACHER, step, ASSIGNMENT, "--force", cwd=lab.course_dir)
        assert done.returncode == 0, done.stdout + done.stderr
    return lab.exchange / COURSE_ID


def test_the_exchange_is_sticky_and_its_course_folder_is_the_teachers(lab):
    assert owner(lab.exchange) == "root" and mode(lab.exchange) == 0o1777
    course = lab.exchange / COURSE_ID
    assert owner(course) == TEACHER and mode(course) == 0o755
    assert owner(course / "inbound") == TEACHER and mode(course / "inbound") == 0o2733
    assert owner(course / "outbound") == TEACHER and mode(course / "outbound") == 0o755


def test_a_student_cannot_rename_or_replace_the_teachers_course_folder(lab, released):
    course = str(released)
    attack = f"""
import os, shutil
results = {{}}
for name, action in [
    ("rename", lambda: os.rename({course!r}, {course!r} + ".mia")),
    ("rmtree", lambda: shutil.rmtree({course!r})),
    ("replace_outbound", lambda: os.rename({course!r} + "/outbound", {course!r} + "/viejo")),
    ("write_outbound", lambda: open({course!r} + "/outbound/{ASSIGNMENT}/{ASSIGNMENT}.ipynb", "a").write("x")),
]:
    try:
        action()
        results[name] = "hecho"
    except OSError as exc:
        results[name] = type(exc).__name__
print(results)
"""
    done = lab.as_user(ANA, attack)
    assert done.returncode == 0, done.stderr
    assert "hecho" not in done.stdout, done.stdout  # every attack was refused
    assert owner(released) == TEACHER and (released / "outbound" / ASSIGNMENT).is_dir()

    # A classmate fetches the teacher's notebook, not one planted by Ana.
    fetched = lab.nbgrader(BRUNO, "fetch_assignment", ASSIGNMENT, f"--course={COURSE_ID}")
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    got = lab.home(BRUNO) / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    sent = lab.course_dir / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert json.loads(got.read_text())["cells"] == json.loads(sent.read_text())["cells"]


def test_a_student_cannot_see_or_touch_a_classmates_submission(lab, released):
    fetched = lab.nbgrader(ANA, "fetch_assignment", ASSIGNMENT, f"--course={COURSE_ID}")
    assert fetched.returncode == 0 or "already exists" in fetched.stdout + fetched.stderr
    for student in (ANA, BRUNO):
        done = lab.nbgrader(student, "submit", ASSIGNMENT, f"--course={COURSE_ID}")
        assert done.returncode == 0, done.stdout + done.stderr
    inbound = released / "inbound"
    bruno = [p for p in inbound.iterdir() if p.name.startswith(BRUNO + "+")]
    assert len(bruno) == 1
    attack = f"""
import os
for name, action in [("listar", lambda: os.listdir({str(inbound)!r})),
                     ("cache", lambda: os.listdir({str(lab.home(BRUNO))!r} + "/.local/share/jupyter")),
                     ("casa", lambda: os.listdir({str(lab.home(BRUNO))!r}))]:
    try:
        action()
        print(name, "hecho")
    except OSError as exc:
        print(name, type(exc).__name__)
"""
    done = lab.as_user(ANA, attack)
    assert done.stdout.split() == ["listar", "PermissionError", "cache", "PermissionError", "casa", "PermissionError"]
    # The teacher collects both (the submission is still whole).
    collected = lab.nbgrader(TEACHER, "collect", ASSIGNMENT, cwd=lab.course_dir)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert (lab.course_dir / "submitted" / BRUNO / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()


def test_a_course_folder_a_student_made_first_is_moved_aside(lab):
    """On a server installed before (exchange 0777), a student may already hold the course's name."""
    exchange = lab.base / "otro-intercambio"
    exchange.mkdir(mode=0o777)
    exchange.chmod(0o777)
    planted = lab.as_user(ANA, f"import os; os.makedirs({str(exchange / COURSE_ID / 'outbound')!r})")
    assert planted.returncode == 0, planted.stderr
    env = {**lab.env(), "COURSE_HUB_EXCHANGE": str(exchange)}
    done = run("bash", str(SCRIPT), env=env)
    assert done.returncode == 0, done.stderr
    assert f"era de {ANA}" in done.stderr
    assert mode(exchange) == 0o1777 and owner(exchange / COURSE_ID) == TEACHER
    assert list((exchange / COURSE_ID / "outbound").iterdir()) == []  # nothing of hers is left in it
    aside = [p for p in exchange.iterdir() if p.name.startswith(f".{COURSE_ID}.retirada-")]
    assert len(aside) == 1 and owner(aside[0]) == "root" and mode(aside[0]) == 0o700


# --- the course directory and the student notebooks ----------------------------------------------------------


def test_students_cannot_read_the_course_directory_solutions_or_gradebook(lab, released):
    source = lab.course_dir / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert source.is_file() and (lab.course_dir / "gradebook.db").is_file()
    assert owner(lab.course_dir) == TEACHER and mode(lab.course_dir) == 0o700
    teacher_config = lab.home(TEACHER) / ".jupyter" / "nbgrader_config.py"
    assert owner(teacher_config) == TEACHER and str(lab.course_dir / "nbgrader_config.py") in teacher_config.read_text()
    for target in (lab.course_dir, source, lab.course_dir / "gradebook.db"):
        done = lab.as_user(
            ANA,
            f"open({str(target)!r}, 'rb').read() if {target.is_file()} else __import__('os').listdir({str(target)!r})",
        )
        assert "PermissionError" in done.stderr, (target, done.stderr)


def test_the_student_notebooks_are_published_without_solutions(lab):
    published = lab.shared / "cuadernos"
    names = sorted(p.name for p in published.glob("*.ipynb"))
    lessons = sorted(p.name for p in (ROOT / "instructor" / "source").glob("*/*.ipynb"))
    assert names == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) == lessons, "every lesson, published"
    done = lab.as_user(ANA, f"print(open({str(published / '02_transformer_por_dentro.ipynb')!r}).read())")
    assert done.returncode == 0, done.stderr
    assert "BEGIN SOLUTION" not in done.stdout and "TU CÓDIGO AQUÍ" in done.stdout


# --- private homes and autosaves -------------------------------------------------------------------------------


def test_homes_are_private_for_existing_accounts(lab):
    for user in (OLD, ANA, BRUNO, TEACHER):
        assert mode(lab.home(user)) == 0o700, user
    for victim in (OLD, TEACHER):
        done = lab.as_user(
            ANA,
            f"import os\ntry:\n    os.listdir({str(lab.home(victim))!r}); print('leído')\n"
            f"except PermissionError: print('denegado')\n"
            f"try:\n    open({str(lab.home(victim))!r} + '/de_ana', 'w'); print('escrito')\n"
            f"except PermissionError: print('denegado')",
        )
        assert done.stdout.split() == ["denegado", "denegado"], (victim, done.stdout, done.stderr)


def test_a_new_account_gets_a_private_home_when_its_server_starts(lab):
    """deploy/jupyterhub/curso.py's pre-spawn hook, with a new account made as Debian makes it (0755)."""
    from traitlets.config.loader import PyFileConfigLoader

    user = f"nu{TAG}"
    _useradd(user, lab.homes / user, "-g", GROUP)
    try:
        assert mode(lab.home(user)) == 0o755
        config = PyFileConfigLoader("curso.py", path=str(ROOT / "deploy" / "jupyterhub")).load_config()
        hook = config.Spawner.pre_spawn_hook

        class Spawner:  # what the hook reads of JupyterHub's spawner
            class user:
                name = user

        hook(Spawner())
        assert mode(lab.home(user)) == 0o700
    finally:
        run("userdel", "-r", user)


def test_chat_autosaves_are_private_to_their_student(lab):
    save = """
from pathlib import Path
from course_utils.chat_store import ChatStore
from course_utils.conversation import Conversation, Message
c = Conversation(model="llama3.2-vision")
c.history = [Message("user", "mi pregunta privada"), Message("assistant", "una respuesta")]
print(ChatStore(Path.home() / "conversaciones").save(c))
"""
    done = lab.as_user(BRUNO, save)
    assert done.returncode == 0, done.stderr
    saved = Path(done.stdout.strip())
    assert mode(saved.parent) == 0o700 and mode(saved) == 0o600, (oct(mode(saved.parent)), oct(mode(saved)))
    lab.home(BRUNO).chmod(0o755)  # even if the home were opened again by mistake
    try:
        done = lab.as_user(ANA, f"print(open({str(saved)!r}).read())")
        assert "PermissionError" in done.stderr, done.stdout
        done = lab.as_user(ANA, f"import os; print(os.listdir({str(saved.parent)!r}))")
        assert "PermissionError" in done.stderr, done.stdout
    finally:
        lab.home(BRUNO).chmod(0o700)


def test_a_second_run_keeps_the_teachers_work_and_the_submissions(lab, released):
    source = lab.course_dir / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    edited = source.read_text() + "\n"
    source.write_text(edited)  # the teacher's own edit
    before = sorted(p.name for p in (released / "inbound").iterdir())
    (lab.exchange / COURSE_ID).chmod(0o777)  # something left the folder open: the run closes it
    lab.install()
    assert source.read_text() == edited
    assert sorted(p.name for p in (released / "inbound").iterdir()) == before
    assert mode(lab.exchange / COURSE_ID) == 0o755 and owner(lab.exchange / COURSE_ID) == TEACHER


# --- memory limits (the cgroup mechanism behind systemd's MemoryMax=) --------------------------------------------


def _memory_cgroup() -> tuple[Path, str] | None:
    """Our own memory cgroup (v2 or v1) and the name of its limit file, if we may create children in it."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            here = Path("/sys/fs/cgroup") / path.lstrip("/")
            if "memory" in (here / "cgroup.subtree_control").read_text():
                return here, "memory.max"
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/"), "memory.limit_in_bytes"
    return None


RUNAWAY = """
import sys, time
hold, target = [], int(sys.argv[1]) * 2**20
while sum(map(len, hold)) < target:
    hold.append(bytearray(8 * 2**20))
print("LLENO", flush=True)
time.sleep(60)
"""
MiB = 2**20


@pytest.fixture
def cgroups(lab):
    found = _memory_cgroup()
    if found is None or not os.access(found[0], os.W_OK):
        pytest.skip("no hay un cgroup de memoria en el que crear otros: el límite de memoria no se puede probar aquí")
    parent_dir, limit = found
    made: list[Path] = []

    def make(name: str, mib: int, parent: Path = parent_dir) -> Path:
        group = parent / f"{name}-{uuid.uuid4().hex[:6]}"
        group.mkdir()
        made.append(group)
        if limit == "memory.max" and parent != parent_dir:
            (parent / "cgroup.subtree_control").write_text("+memory")
        (group / limit).write_text(str(mib * MiB))
        return group

    yield make
    for group in reversed(made):
        for pid in (group / "cgroup.procs").read_text().split():  # whatever a test left there
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def start_in(lab: Lab, group: Path, user: str, mib: int) -> subprocess.Popen:
    """A student's cell that fills `mib` MiB, started inside `group` as `user`."""
    return subprocess.Popen(
        [
            "/bin/sh",
            "-c",
            f"echo $$ > {group}/cgroup.procs && exec setpriv --reuid={user} --regid={GROUP} --init-groups "
            f'{USER_PYTHON} -c "$0" {mib}',
            RUNAWAY,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
    )


def test_a_runaway_cell_is_killed_at_its_students_memory_limit(lab, cgroups):
    students = cgroups(f"estudiantes-{TAG}", 600)
    ana = cgroups("ana", 200, students)
    bruno = cgroups("bruno", 200, students)
    quiet = start_in(lab, bruno, BRUNO, 50)
    runaway = start_in(lab, ana, ANA, 4096)
    try:
        assert quiet.stdout.readline().strip() == "LLENO"
        runaway.wait(WAIT)
        assert runaway.returncode == -signal.SIGKILL  # the kernel's OOM killer, inside Ana's group only
        assert quiet.poll() is None, "el estudiante de al lado siguió trabajando"
    finally:
        for p in (quiet, runaway):
            p.kill()
            p.wait()


def test_all_students_together_cannot_pass_the_class_memory_cap(lab, cgroups):
    students = cgroups(f"estudiantes-{TAG}", 300)  # the slice: less than the two per-student limits added up
    ana = cgroups("ana", 200, students)
    bruno = cgroups("bruno", 200, students)
    first = start_in(lab, ana, ANA, 150)
    try:
        assert first.stdout.readline().strip() == "LLENO"  # within her own limit
        second = start_in(lab, bruno, BRUNO, 180)  # within his own limit, but not with hers
        try:
            deadline = time.monotonic() + WAIT
            while first.poll() is None and second.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # the other one may be on its way out too
            killed = [p for p in (first, second) if p.poll() == -signal.SIGKILL]
            assert killed, "nadie pasó del límite de la clase"
        finally:
            second.kill()
            second.wait()
    finally:
        first.kill()
        first.wait()


# --- a real JupyterHub whose servers run as the students' own accounts ------------------------------------------


@pytest.fixture(scope="module")
def hub_as_accounts(lab, tmp_path_factory):
    """tests/test_hub.py's hub with the course's configuration, but with JupyterHub's LocalProcessSpawner:
    each server (and its kernels) runs as the student's Unix account, in her own home."""
    from tests.test_hub import Hub, _missing

    if reason := _missing():
        pytest.skip(reason)

    class AccountsHub(Hub):
        def config(self) -> Path:
            path = super().config()
            path.write_text(
                path.read_text()
                + f"""
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [{USER_PYTHON!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.environment.update({{"PYTHONPATH": {f"{SITE}:{ROOT}"!r}, "PATH": "/usr/bin:/bin"}})
"""
            )
            return path

    hub = AccountsHub(tmp_path_factory.mktemp("hub-cuentas"))
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()


def test_in_a_real_hub_each_server_is_its_students_and_cannot_read_a_classmate(lab, hub_as_accounts):
    from tests.test_hub import Kernel, _text, _user_api

    hub = hub_as_accounts
    newcomer = f"nv{TAG}"
    _useradd(newcomer, lab.homes / newcomer, "-g", GROUP)  # a new account, 0755 as Debian leaves it
    try:
        users = [ANA, BRUNO, newcomer]
        assert hub.api.post("/users", json={"usernames": users}).status_code == 201
        for user in users:
            assert hub.api.post(f"/users/{user}/server").status_code in (201, 202)
        for user in users:
            hub.wait_ready(user)
        # The hub's pre-spawn hook (deploy/jupyterhub/curso.py) closed the new account's home.
        assert mode(lab.home(newcomer)) == 0o700

        secret = lab.home(BRUNO) / "conversaciones"
        outputs = {}
        for user, code in [
            (BRUNO, "import os; print(os.getuid(), os.getcwd())"),
            (
                ANA,
                "import os\nprint(os.getuid(), os.getcwd())\n"
                f"for path in [{str(lab.home(BRUNO))!r}, {str(secret)!r}, {str(lab.course_dir)!r}]:\n"
                "    try:\n        os.listdir(path); print('leído', path)\n"
                "    except OSError as exc:\n        print(type(exc).__name__)\n",
            ),
        ]:
            server, token = _user_api(hub, user)
            started = server.post("/api/kernels", json={"name": "python3"})
            assert started.status_code == 201, started.text
            kernel = Kernel(hub, user, token, started.json()["id"])
            try:
                outputs[user] = _text(kernel.execute(code)).split()
            finally:
                kernel.close()
                server.close()
        assert outputs[BRUNO] == [str(pwd.getpwnam(BRUNO).pw_uid), str(lab.home(BRUNO))]
        assert outputs[ANA] == [
            str(pwd.getpwnam(ANA).pw_uid),
            str(lab.home(ANA)),
            *["PermissionError"] * 3,
        ], outputs[ANA]
    finally:
        hub.stop_servers()
        run("pkill", "-KILL", "-u", newcomer)
        run("userdel", "-r", newcomer)
