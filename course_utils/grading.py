"""Autograde an assignment's submissions, each one in a sandbox, and tell the teacher what happened.

    sudo .venv/bin/python -m course_utils.grading 03_vit_parches            # in the course directory
    sudo .venv/bin/python -m course_utils.grading 03_vit_parches --student ana --student luis

instructor/GUIA.md (paso 4) explains it. For each submission in submitted/<student>/<assignment>/:

1. As the teacher, before running anything: the locked cells the student changed (against the
   checksums of release/) and the code that touches the interpreter or other processes.
2. In a sandbox: a private folder with only that submission, the assignment's non-notebook files and
   a private gradebook holding only the assignment's cells (no student, no grade); a throwaway Unix
   account created for this run; resource limits (`prlimit`: memory, CPU time, processes, file size);
   no network (`unshare --net`, unless --allow-network: the Ollama lessons need it); a wall-clock
   limit. There, `nbgrader autograde` runs as usual (with the course's SealedExecute).
3. Outside, as the teacher: every process of the account is killed and the account removed; the
   graded notebook is read (a regular file inside the sandbox, never a link) and its points are
   written into the real gradebook, with nbgrader's own rule (`determine_grade`) applied to the cells
   as the release defines them. A submission whose notebook did not run to the end, or where a cell
   of the course (not the student's) failed (a model that cannot load, no Ollama), is not graded:
   the report says why and the gradebook is left as it was.

The report (printed and written to calificacion_<assignment>_<date>-<time>.md) lists the graded submissions with
their points, those not graded and why, the changed locked cells and the code to review by hand.
It needs root (accounts and limits); systemd is not needed.
"""

from __future__ import annotations

import argparse
import csv
import os
import pwd
import re
import secrets
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import CsvExportPlugin
from nbgrader.utils import compute_checksum, determine_grade, is_grade, is_locked, is_solution
from traitlets import Unicode

from course_utils.errors import CourseError

COURSE_ID = "curso-multimodal"
DEFAULT_ZONE = "Europe/Madrid"
# A graded notebook bigger than this is not read back (SealedExecute keeps 100 kB per cell).
MAX_NOTEBOOK_BYTES = 20_000_000
# What the sandbox inherits from the teacher's environment: the course's settings and the models' caches.
PASSED_ENV = ("COURSE_", "OLLAMA_", "HF_", "TRANSFORMERS_", "TORCH_", "CUDA_", "OMP_", "MKL_", "LANG", "LC_")
PASSED_ENV_NAMES = ("PYTHONPATH", "PYTHONWARNINGS", "TZ")
# Code that changes how cells run or reaches other processes: the report asks the teacher to look.
INTERPRETER = re.compile(
    r"get_ipython|input_transformer|ast_transformers|events\.register|excepthook|displayhook|settrace|"
    r"setprofile|meta_path|path_hooks|sys\.modules|builtins|addaudithook|showtraceback|run_cell|"
    r"InteractiveShell|__import__|importlib|ctypes|get_referrers|__code__|__globals__|\bexec\(|\beval\(|"
    r"os\.fork|subprocess|os\.system|os\.kill|signal\.|KeyboardInterrupt|sys\.stdout|sys\.stderr"
)
# A course cell that fails with one of these did not fail because of the student's code.
SERVER_ERRORS = ("ModelLoadError", "OllamaError", "ConnectionError", "CellTimeoutError", "DeadKernelError")


@dataclass
class Limits:
    wall_seconds: int = 3600  # the whole notebook
    cell_seconds: int = 600  # nbgrader's Execute.timeout
    memory_bytes: int = 16 * 2**30  # address space of each process
    processes: int = 512  # tasks of the account (PyTorch's threads count)
    file_bytes: int = 200 * 2**20
    allow_network: bool = False


@dataclass
class Outcome:
    student: str
    graded: bool = False
    reason: str = ""  # why it was not graded
    score: float = 0.0
    max_score: float = 0.0
    pending_manual: int = 0
    changed_locked: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)  # "cell: what it touches"
    submitted_at: datetime | None = None


# --- Before running: what the submission changed ---------------------------------------------------------


def changed_locked_cells(release: nbformat.NotebookNode, submitted: nbformat.NotebookNode) -> list[str]:
    """grade_ids of the release's locked cells that the submission changed or removed."""
    theirs = {_grade_id(c): c for c in submitted.cells if _grade_id(c)}
    changed = []
    for cell in release.cells:
        if not (_grade_id(cell) and is_locked(cell)):
            continue
        mine = theirs.get(_grade_id(cell))
        expected = cell.metadata.nbgrader.get("checksum") or compute_checksum(cell)
        if mine is None or not mine.metadata.get("nbgrader") or compute_checksum(mine) != expected:
            changed.append(_grade_id(cell))
    return changed


def interpreter_code(release: nbformat.NotebookNode, submitted: nbformat.NotebookNode) -> list[str]:
    """'cell N: names' for the code cells the student wrote that touch the interpreter or processes."""
    course = {c.source for c in release.cells if c.cell_type == "code"}
    found = []
    for index, cell in enumerate(submitted.cells):
        if cell.cell_type != "code" or cell.source in course:
            continue
        names = sorted(set(INTERPRETER.findall(cell.source)))
        if names:
            found.append(f"celda {index}: {', '.join(names)}")
    return found


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


# --- The sandbox ------------------------------------------------------------------------------------------


def private_gradebook(course_db: Path, target: Path, assignment: str) -> None:
    """A copy of the gradebook with only `assignment`'s definition: no student, no other assignment."""
    shutil.copyfile(course_db, target)
    with Gradebook(f"sqlite:///{target}", COURSE_ID) as gb:
        for student in [s.id for s in gb.students]:
            gb.remove_student(student)
        for other in [a.name for a in gb.assignments if a.name != assignment]:
            gb.remove_assignment(other)
    with sqlite3.connect(target) as db:
        db.execute("VACUUM")  # the removed rows leave no trace in the file


def _create_account() -> tuple[str, int, int]:
    name = f"calif-{secrets.token_hex(5)}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
         "--user-group", name],
        check=True, capture_output=True,
    )  # fmt: skip
    entry = pwd.getpwnam(name)
    return name, entry.pw_uid, entry.pw_gid


def account_processes(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except FileNotFoundError:
                pass
    return pids


def _kill_account(uid: int) -> None:
    """SIGKILL every process of the sandbox's account, until none is left (forks included)."""
    for _ in range(100):
        pids = account_processes(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    raise CourseError(f"No se pudieron terminar los procesos del usuario {uid} del cajón de calificación.")


def _remove_account(name: str, uid: int) -> None:
    _kill_account(uid)
    subprocess.run(["userdel", name], check=True, capture_output=True)


def _sandbox_env(box: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV) or k in PASSED_ENV_NAMES}
    env.update(
        HOME=str(box),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        TMPDIR=str(box / ".tmp"),
        JUPYTER_RUNTIME_DIR=str(box / ".runtime"),
        JUPYTER_CONFIG_DIR=str(box / ".jupyter"),
        JUPYTER_DATA_DIR=str(box / ".local"),
        IPYTHONDIR=str(box / ".ipython"),
        MPLCONFIGDIR=str(box / ".matplotlib"),
        XDG_CACHE_HOME=str(box / ".cache"),
    )
    return env


def _command(assignment: str, student: str, uid: int, gid: int, limits: Limits) -> list[str]:
    nbgrader = [sys.executable, "-m", "nbgrader", "autograde", assignment, f"--student={student}", "--force",
                f"--Execute.timeout={limits.cell_seconds}"]  # fmt: skip
    limited = [
        "prlimit", f"--as={limits.memory_bytes}", f"--cpu={limits.wall_seconds}", f"--nproc={limits.processes}",
        f"--fsize={limits.file_bytes}", "--core=0", "--",
        "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs", "--",
        *nbgrader,
    ]  # fmt: skip
    if limits.allow_network:
        return limited
    # A network namespace of its own with only loopback up: the kernel talks to nbgrader, nothing else.
    return ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *limited]


def _read_back(box: Path, relative: Path) -> nbformat.NotebookNode:
    """The graded notebook, if it is a regular file inside the sandbox; never follows a link."""
    path = box / relative
    for parent in [box, *[box / p for p in list(relative.parents)[::-1][1:]]]:
        if parent.is_symlink() or not parent.is_dir():
            raise CourseError(f"{relative.parent} no es una carpeta del cajón")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise CourseError(f"{relative} no es un fichero normal")
        if info.st_size > MAX_NOTEBOOK_BYTES:
            raise CourseError(f"el cuaderno calificado ocupa {info.st_size // 1_000_000} MB")
        return nbformat.reads(handle.read().decode("utf-8"), as_version=4)


def _copy_regular_files(source: Path, target: Path) -> None:
    """Only the regular files of a student's folder: a link could point at the teacher's files."""
    for path in source.rglob("*"):
        if path.is_file() and not path.is_symlink() and not any(p.is_symlink() for p in path.parents):
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)


def run_sandboxed(course: Path, assignment: str, student: str, limits: Limits) -> dict:
    """Autograde one submission in a sandbox: {notebook name: graded notebook} or {"error": why}."""
    work = Path(tempfile.mkdtemp(prefix="calificacion-"))
    name, uid, gid = _create_account()
    try:
        work.chmod(0o711)
        box = work / "caja"
        box.mkdir(mode=0o700)
        shutil.copyfile(course / "nbgrader_config.py", box / "nbgrader_config.py")
        source = course / "source" / assignment
        for path in source.rglob("*") if source.is_dir() else []:
            if path.is_file() and path.suffix != ".ipynb" and not path.is_symlink():
                dest = box / "source" / assignment / path.relative_to(source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
        _copy_regular_files(course / "submitted" / student / assignment, box / "submitted" / student / assignment)
        private_gradebook(course / "gradebook.db", box / "gradebook.db", assignment)
        for sub in (".tmp", ".runtime", "autograded"):
            (box / sub).mkdir(exist_ok=True)
        for path in [box, *box.rglob("*")]:
            os.lchown(path, uid, gid)
        log_path = work / "nbgrader.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                _command(assignment, student, uid, gid, limits),
                cwd=box,
                env=_sandbox_env(box),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = proc.wait(timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                code = None
            _kill_account(uid)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        tail = _last_error(_tail(log_path))
        if code is None:
            return {"error": f"no terminó en {limits.wall_seconds} s (¿un bucle que no se deja interrumpir?)"}
        graded = {}
        for notebook in sorted((course / "release" / assignment).glob("*.ipynb")):
            relative = Path("autograded") / student / assignment / notebook.name
            try:
                graded[notebook.stem] = _read_back(box, relative)
            except (OSError, CourseError, ValueError) as error:
                if code:
                    return {"error": f"nbgrader terminó con {code}: {tail}"}
                return {"error": f"el cuaderno calificado no se pudo leer: {error}"}
        return graded
    finally:
        _remove_account(name, uid)
        shutil.rmtree(work, ignore_errors=True)


def _last_error(log: str) -> str:
    """The last exception line of nbgrader's log (`nbclient.exceptions.CellTimeoutError: …`), or its end."""
    errors = re.findall(r"^\s*((?:\w+\.)*\w*(?:Error|Exception|Interrupt|Exit)\b.*)$", log, re.M)
    return errors[-1].strip() if errors else log[-500:]


def _tail(path: Path, size: int = 3000) -> str:
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - size))
        return handle.read().decode("utf-8", errors="replace")


# --- Back in the gradebook, as the teacher ----------------------------------------------------------------


def course_cell_failures(release: nbformat.NotebookNode, graded: nbformat.NotebookNode) -> tuple[str, list[str]]:
    """(why the result cannot be trusted, or ""; the course cells that failed for some other reason).

    The server's errors (a model that cannot load, no Ollama, a cell out of time, a dead kernel) mean the
    notebook did not really run: not graded. Any other error in an unchanged course cell is listed for the
    teacher: the student's code may have caused it (a course cell that uses the student's function).
    """
    course = {c.source for c in release.cells if c.cell_type == "code" and not is_solution(c)}
    others = []
    for index, cell in enumerate(graded.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.output_type != "error":
                continue
            if output.ename in SERVER_ERRORS:
                return f"la celda {index} falló: {output.ename}: {output.evalue}"[:500], others
            if cell.source in course and not is_grade(cell):
                others.append(f"la celda {index}, del curso, falló: {output.ename}: {output.evalue}"[:300])
    return "", others


def _with_release_metadata(graded: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list:
    """The graded cells that the release grades, with the release's nbgrader metadata (points, checksums)."""
    defined = {_grade_id(c): c.metadata.nbgrader for c in release.cells if _grade_id(c)}
    cells = []
    for cell in graded.cells:
        grade_id = _grade_id(cell)
        if grade_id in defined:
            cell.metadata.nbgrader = nbformat.from_dict(dict(defined[grade_id]))
            cells.append(cell)
    return cells


def save_grades(course: Path, assignment: str, student: str, graded: dict, timestamp: datetime | None) -> None:
    """What nbgrader's SaveAutoGrades does, on the real gradebook, from notebooks graded elsewhere."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        gb.update_or_create_student(student)
        if timestamp is not None:
            gb.update_or_create_submission(assignment, student, timestamp=timestamp)
        else:
            gb.update_or_create_submission(assignment, student)
        for name, notebook in graded.items():
            release = nbformat.read(course / "release" / assignment / f"{name}.ipynb", as_version=4)
            for grade in gb.find_submission_notebook(name, assignment, student).grades:
                grade.auto_score, grade.needs_manual_grade = 0, False  # a cell that is missing scores 0
            for cell in _with_release_metadata(notebook, release):
                if is_grade(cell):
                    grade = gb.find_grade(_grade_id(cell), name, assignment, student)
                    grade.auto_score, _ = determine_grade(cell)
                    grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
                if is_solution(cell):
                    comment = gb.find_comment(_grade_id(cell), name, assignment, student)
                    unchanged = cell.metadata.nbgrader.get("checksum") == compute_checksum(cell)
                    comment.auto_comment = "No response." if unchanged else None
            gb.db.commit()
            target = course / "autograded" / student / assignment / f"{name}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, target)


def _submission_time(course: Path, assignment: str, student: str) -> datetime | None:
    stamp = course / "submitted" / student / assignment / "timestamp.txt"
    if not stamp.is_file() or stamp.is_symlink():
        return None
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(stamp.read_text(encoding="utf-8").strip())
    except (ValueError, TypeError):
        return None


def grade_submission(course: Path, assignment: str, student: str, limits: Limits) -> Outcome:
    outcome = Outcome(student, submitted_at=_submission_time(course, assignment, student))
    folder = course / "submitted" / student / assignment
    for release_path in sorted((course / "release" / assignment).glob("*.ipynb")):
        submitted_path = folder / release_path.name
        if not submitted_path.is_file() or submitted_path.is_symlink():
            continue
        release = nbformat.read(release_path, as_version=4)
        try:
            submitted = nbformat.read(submitted_path, as_version=4)
        except (ValueError, UnicodeDecodeError) as error:
            outcome.reason = f"{release_path.name} no es un cuaderno válido ({error})"
            return outcome
        outcome.changed_locked += changed_locked_cells(release, submitted)
        outcome.review += interpreter_code(release, submitted)
    result = run_sandboxed(course, assignment, student, limits)
    if "error" in result:
        outcome.reason = result["error"]
        return outcome
    for name, notebook in result.items():
        release = nbformat.read(course / "release" / assignment / f"{name}.ipynb", as_version=4)
        failure, others = course_cell_failures(release, notebook)
        if failure:
            outcome.reason = f"{name}: {failure}"
            return outcome
        outcome.review += others
    save_grades(course, assignment, student, result, outcome.submitted_at)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        submission = gb.find_submission(assignment, student)
        outcome.score, outcome.max_score = submission.score, submission.max_score
        outcome.pending_manual = sum(1 for n in submission.notebooks for g in n.grades if g.needs_manual_grade)
    outcome.graded = True
    return outcome


# --- The report -------------------------------------------------------------------------------------------


def zoned(moment: datetime | None, zone: str) -> str:
    """A gradebook time (UTC, without zone) as the teacher reads it: «2026-03-13 20:00 Europe/Madrid»."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} {zone}"


def report(assignment: str, outcomes: list[Outcome], due: datetime | None, zone: str) -> str:
    lines = [
        f"# Calificación automática de {assignment}",
        "",
        f"Hecha el {zoned(datetime.now(UTC), zone)}. Fecha límite: {zoned(due, zone)}.",
        "",
        "| estudiante | estado | puntos | entregado |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        state = "calificada" if o.graded else "NO CALIFICADA"
        if o.graded and o.pending_manual:
            state += f" ({o.pending_manual} pendiente(s) a mano)"
        points = f"{o.score:g} / {o.max_score:g}" if o.graded else "—"
        lines.append(f"| {o.student} | {state} | {points} | {zoned(o.submitted_at, zone)} |")
    sections = [
        ("No calificadas (el libro de notas no cambió: resuelve el motivo y vuelve a calificar)",
         [f"{o.student}: {o.reason}" for o in outcomes if not o.graded]),
        ("Celdas bloqueadas cambiadas (nbgrader las repuso antes de calificar)",
         [f"{o.student}: {', '.join(o.changed_locked)}" for o in outcomes if o.changed_locked]),
        ("Código que toca el intérprete o los procesos, o celdas del curso que fallaron (revísalas a mano)",
         [f"{o.student}: {'; '.join(o.review)}" for o in outcomes if o.review]),
    ]  # fmt: skip
    for title, items in sections:
        lines += ["", f"## {title}: {len(items)}", ""]
        lines += [f"- {item}" for item in items] or ["ninguna"]
    return "\n".join(lines) + "\n"


def grade_assignment(course: Path, assignment: str, students: list[str] | None, limits: Limits, zone: str) -> str:
    """Grade every submission (or those of `students`), one after another; the report's text."""
    if os.geteuid() != 0:
        raise CourseError("La calificación en cajón crea usuarios temporales: ejecútala como root (sudo).")
    if not (course / "release" / assignment).is_dir():
        raise CourseError(f"No existe release/{assignment}: ejecuta antes `nbgrader generate_assignment {assignment}`.")
    _check_reachable(Path(sys.executable).resolve())
    submitted = course / "submitted"
    found = sorted(p.parent.name for p in submitted.glob(f"*/{assignment}") if p.is_dir() and not p.is_symlink())
    chosen = [s for s in found if students is None or s in students]
    missing = sorted(set(students or []) - set(found))
    if missing:
        raise CourseError(f"No hay entrega de {', '.join(missing)} en submitted/: ¿ejecutaste `nbgrader collect`?")
    outcomes = []
    for student in chosen:
        print(f"Calificando {student}…", flush=True)
        outcomes.append(grade_submission(course, assignment, student, limits))
    try:
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
            due = gb.find_assignment(assignment).duedate
    except MissingEntry:
        due = None
    text = report(assignment, outcomes, due, zone)
    stamp = datetime.now(UTC).astimezone(ZoneInfo(zone)).strftime("%Y%m%d-%H%M%S")
    (course / f"calificacion_{assignment}_{stamp}.md").write_text(text, encoding="utf-8")  # one per run
    return text


def _check_reachable(python: Path) -> None:
    """The sandbox's account is nobody in particular: the course's Python must be usable by everyone."""
    for folder in python.parents:
        if not folder.stat().st_mode & stat.S_IXOTH:
            raise CourseError(
                f"El Python del curso ({python}) está en {folder}, que los demás usuarios no pueden atravesar: "
                "instala el entorno del curso en una carpeta legible por todos (como /opt/curso-hub/venv)."
            )


class ZonedCsvExport(CsvExportPlugin):
    """`nbgrader export` with dates in the course's zone (`2026-03-13 20:00:00+01:00`), not naive UTC.

    nbgrader keeps dates in UTC without a zone and its CSV writes them so: a due date of
    «20:00 Europe/Madrid» came out as «19:00:00». Same columns and rows as nbgrader's CsvExportPlugin.
    """

    zone = Unicode(DEFAULT_ZONE, help="The zone of the dates in the CSV (an IANA name).").tag(config=True)

    def export(self, gradebook: Gradebook) -> None:
        keys = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                "raw_score", "late_submission_penalty", "score", "max_score"]  # fmt: skip
        with open(self.to or "grades.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, keys)
            writer.writeheader()
            for assignment in gradebook.assignments:
                if self.assignment and assignment.name not in self.assignment:
                    continue
                for student in gradebook.students:
                    if self.student and student.id not in self.student:
                        continue
                    writer.writerow(self._row(gradebook, assignment, student))

    def _row(self, gradebook: Gradebook, assignment, student) -> dict:
        row = {
            "assignment": assignment.name,
            "duedate": self._date(assignment.duedate),
            "student_id": student.id,
            "last_name": student.last_name or "",
            "first_name": student.first_name or "",
            "email": student.email or "",
            "max_score": assignment.max_score,
        }
        try:
            submission = gradebook.find_submission(assignment.name, student.id)
        except MissingEntry:  # nothing submitted: 0, as nbgrader's export
            return {**row, "timestamp": "", "raw_score": 0.0, "late_submission_penalty": 0.0, "score": 0.0}
        penalty = submission.late_submission_penalty or 0.0
        return {
            **row,
            "timestamp": self._date(submission.timestamp),
            "raw_score": submission.score,
            "late_submission_penalty": penalty,
            "score": max(0.0, submission.score - penalty),
        }

    def _date(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        return moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(ZoneInfo(self.zone)).isoformat(" ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.grading",
        description="Califica las entregas de una práctica, cada una en un cajón aislado (instructor/GUIA.md).",
    )
    parser.add_argument("assignment", help="la práctica, por ejemplo 03_vit_parches")
    parser.add_argument("--student", action="append", help="solo esta entrega (se puede repetir)")
    parser.add_argument("--course", type=Path, default=Path.cwd(), help="la carpeta del curso (instructor/)")
    parser.add_argument("--timeout", type=int, default=Limits.wall_seconds, help="segundos por entrega")
    parser.add_argument("--cell-timeout", type=int, default=Limits.cell_seconds, help="segundos por celda")
    parser.add_argument("--memory-gb", type=float, default=Limits.memory_bytes / 2**30, help="memoria por proceso")
    parser.add_argument("--allow-network", action="store_true", help="con red (las prácticas que usan Ollama)")
    parser.add_argument("--zone", default=os.environ.get("COURSE_TIMEZONE", DEFAULT_ZONE), help="zona horaria")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", module="nbgrader.api")  # SQLAlchemy's notes on nbgrader's own sessions
    limits = Limits(
        wall_seconds=args.timeout,
        cell_seconds=args.cell_timeout,
        memory_bytes=int(args.memory_gb * 2**30),
        allow_network=args.allow_network,
    )
    try:
        text = grade_assignment(args.course.resolve(), args.assignment, args.student, limits, args.zone)
    except CourseError as error:
        print(error, file=sys.stderr)
        return 2
    print(text)
    return 1 if "NO CALIFICADA" in text else 0


if __name__ == "__main__":
    sys.exit(main())
