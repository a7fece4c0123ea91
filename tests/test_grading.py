"""Grading that cannot be fooled from inside and fails loudly: `python -m course_utils.grading`.

Planted submissions are graded with the course's command, as root, each one as a throwaway Unix account
in a sandbox (course_utils/grading.py) with the course's nbgrader configuration (SealedExecute):

- the fast tests use a small assignment written here (one exercise, its test cell with hidden tests,
  an open question), so that each planted submission runs in seconds;
- the `slow` tests plant the same submissions in real lessons (02 and 04) of instructor/source/.

Each test says which submission it plants; a submission is graded with every other one, so that the
checks that nothing reached another student's files or grades mean something.
"""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.api import Gradebook

from course_utils import grading

ROOT = Path(__file__).resolve().parent.parent
INSTRUCTOR = ROOT / "instructor"
COURSE_ID = "curso-multimodal"
SMALL = "99_prueba"

# Each test grades real submissions in throwaway accounts (about 3 minutes in all): the slow step of make test.
pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("useradd"),
        reason="la calificación en cajón crea usuarios: hace falta root",
    ),
    pytest.mark.slow,
]

# --- The planted code -------------------------------------------------------------------------------------

SOLUTION = "def double(x):\n    return 2 * x\n"
FORGED = (
    "def _wrap(lines):\n"
    '    return ["try:\\n"] + ["    " + line for line in lines] + ["\\nexcept BaseException:\\n    pass\\n"]\n'
    "get_ipython().input_transformers_post.append(_wrap)\n"
)
HOOKS = (
    "import ast, sys, builtins\n"
    "class _Swallow(ast.NodeTransformer):\n"
    "    def visit_Module(self, node):\n"
    "        handler = ast.ExceptHandler(type=ast.Name('BaseException', ast.Load()), name=None, body=[ast.Pass()])\n"
    "        node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[], finalbody=[])]\n"
    "        return ast.fix_missing_locations(node)\n"
    "get_ipython().ast_transformers.append(_Swallow())\n"
    "sys.excepthook = lambda *args: None\n"
    "get_ipython().showtraceback = lambda *args, **kwargs: None\n"
    "builtins.AssertionError = Warning\n"
)
WARNING = "import warnings\n\n\ndef double(x):\n    warnings.warn('un aviso inofensivo')\n    return 2 * x\n"
LOOP = "import time\nwhile True:\n    try:\n        time.sleep(0.2)\n    except KeyboardInterrupt:\n        pass\n"
HUGE = "print('x' * 10_000_000)\nfor _ in range(20):\n    print('y' * 1_000_000)\n"


def hostile(course: Path, assignment: str = SMALL) -> str:
    """An extra cell: reads the solutions and the gradebook, writes to a classmate's files, forks, floods."""
    return f"""
import os, sqlite3, subprocess, time
found = []
for path in [{str(course / "source" / assignment / f"{assignment}.ipynb")!r}, {str(course / "gradebook.db")!r},
             {str(course / "submitted" / "correcta" / assignment / f"{assignment}.ipynb")!r}]:
    try:
        found.append(open(path, "rb").read()[:200])
    except OSError as error:
        print("no pude leer", path, type(error).__name__)
print("LEÍDO:", found)
try:
    open({str(course / "submitted" / "correcta" / assignment / f"{assignment}.ipynb")!r}, "w").write("{{}}")
except OSError as error:
    print("no pude escribir", type(error).__name__)
try:
    db = sqlite3.connect({str(course / "gradebook.db")!r})
    db.execute("UPDATE grade SET manual_score = 100")
    db.commit()
except Exception as error:
    print("no pude tocar el libro de notas", type(error).__name__)
for _ in range(3):
    subprocess.Popen(["sleep", "3600"], start_new_session=True)
children = 0
try:
    for _ in range(2000):
        subprocess.Popen(["sleep", "3600"])
        children += 1
except OSError as error:
    print("procesos:", children, type(error).__name__)
"""


# --- The small assignment ---------------------------------------------------------------------------------


def _small_source() -> nbformat.NotebookNode:
    def meta(grade_id, **kw):
        base = {"grade": False, "solution": False, "locked": False, "schema_version": 3, "grade_id": grade_id}
        return {
            "nbgrader": {**base, **kw},
            "tags": ["raises-exception"] if kw.get("solution") or kw.get("grade") else [],
        }

    return new_notebook(
        cells=[
            new_markdown_cell("# Práctica de prueba"),
            new_code_cell("base = 21", metadata=meta("99-setup", locked=True)),
            new_code_cell(
                "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n",
                metadata=meta("99-ex1", solution=True),
            ),
            new_code_cell(
                "assert double(base) == 42, 'double(21) debe dar 42'\nprint('✔ bien')\n"
                "### BEGIN HIDDEN TESTS\nsecret_line_of_the_hidden_test = double(-3)\n"
                "assert secret_line_of_the_hidden_test == -6, 'los negativos también'\n### END HIDDEN TESTS\n",
                metadata=meta("99-ex1-tests", grade=True, locked=True, points=3),
            ),
            new_code_cell("print('después del ejercicio', base)"),
            new_markdown_cell("ESCRIBE AQUÍ", metadata=meta("99-q1", grade=True, solution=True, points=2)),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )


@pytest.fixture(scope="module")
def python_for_everyone():
    """The course's Python must be usable by the sandbox's account (on a lab server it is, in /opt)."""
    changed = []
    for folder in Path(sys.executable).resolve().parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)  # traverse only, no listing
            changed.append((folder, mode))
    yield
    for folder, mode in changed:
        folder.chmod(stat.S_IMODE(mode))


@pytest.fixture(scope="module")
def models_for_everyone():
    """The stand-in models readable by the sandbox's account, as prepare_class leaves the real caches."""
    from tests.harness import CACHE

    changed = []
    for path in [CACHE, *CACHE.resolve().rglob("*")]:
        path = path.resolve()
        mode = path.stat().st_mode
        wanted = mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
        if wanted != mode:
            path.chmod(stat.S_IMODE(wanted))
            changed.append((path, mode))
    yield
    for path, mode in changed:
        path.chmod(stat.S_IMODE(mode))


def _nbgrader(course: Path, *args: str) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        [sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"], cwd=course, env=env, check=True, timeout=600
    )


def _new_course(parent: Path, assignments: list[str]) -> Path:
    course = parent / "instructor"
    shutil.copytree(
        INSTRUCTOR,
        course,
        ignore=shutil.ignore_patterns("gradebook.db", "release", "submitted", "autograded", "feedback", "source"),
    )
    for assignment in assignments:
        target = course / "source" / assignment
        if assignment == SMALL:
            target.mkdir(parents=True)
            nbformat.write(_small_source(), target / f"{SMALL}.ipynb")
        else:
            shutil.copytree(INSTRUCTOR / "source" / assignment, target)
        _nbgrader(course, "generate_assignment", assignment, "--force")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        gb.update_or_create_assignment(assignments[0], duedate="2026-03-13 20:00:00 Europe/Madrid")
    return course


def _submit(course: Path, student: str, assignment: str, notebook) -> None:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / f"{assignment}.ipynb")
    (folder / "timestamp.txt").write_text("2026-03-13 19:30:00.000000 Europe/Madrid")


def _release(course: Path, assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(course / "release" / assignment / f"{assignment}.ipynb", as_version=4)


def _solution_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]


def _plant(course: Path, assignment: str, solutions: dict[str, str]) -> dict[str, str]:
    """The planted submissions of `assignment`: {student: what it is}. solutions: {grade_id: source}."""

    def solved():
        nb = _release(course, assignment)
        for cell in _solution_cells(nb):
            cell.source = solutions[cell.metadata.nbgrader["grade_id"]]
        return nb

    def with_first(source, base=None):
        nb = base or _release(course, assignment)
        first = _solution_cells(nb)[0]
        first.source = source + "\n" + (first.source if base else "")
        return nb

    planted = {}

    def plant(student, nb, what):
        _submit(course, student, assignment, nb)
        planted[student] = what

    plant("correcta", solved(), "las soluciones")
    plant("sin_hacer", _release(course, assignment), "la versión del estudiante sin tocar")
    plant("falsificada", with_first(FORGED), "un transformador de entrada que envuelve las celdas en try/except")
    plant("ganchos", with_first(HOOKS), "transformador AST, excepthook, showtraceback y builtins cambiados")
    warned = solved()
    first = _solution_cells(warned)[0]
    first.source = "import warnings\nwarnings.warn('un aviso inofensivo')\n" + first.source.replace(
        "\n    return", "\n    warnings.warn('un aviso inofensivo')\n    return", 1
    )
    plant("aviso", warned, "las soluciones, con un UserWarning en stderr")
    loud = solved()
    loud.cells.append(new_code_cell(HUGE))
    plant("enorme", loud, "las soluciones y 30 MB de salida, 10 MB en una sola línea")
    bad = solved()
    bad.cells.append(new_code_cell(hostile(course, assignment)))
    plant("hostil", bad, "las soluciones y una celda que lee, escribe fuera y lanza procesos")
    changed = solved()
    test_cell = next(c for c in changed.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code")
    test_cell.source = "pass"
    plant("bloqueada", changed, "las soluciones con una celda de pruebas cambiada")
    return planted


def _grades(course: Path, assignment: str, student: str) -> dict[str, tuple]:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        nb = gb.find_submission_notebook(assignment, assignment, student)
        return {g.name: (g.auto_score, g.max_score, g.needs_manual_grade, g.cell_type) for g in nb.grades}


def _auto(course, assignment, student) -> tuple[float, float]:
    grades = [g for g in _grades(course, assignment, student).values() if g[3] == "code"]
    return sum(g[0] or 0 for g in grades), sum(g[1] for g in grades)


@pytest.fixture(scope="module")
def small(tmp_path_factory, python_for_everyone) -> dict:
    course = _new_course(tmp_path_factory.mktemp("calificar"), [SMALL])
    planted = _plant(course, SMALL, {"99-ex1": SOLUTION})
    _submit(course, "bucle", SMALL, _with_loop(_release(course, SMALL)))
    before = (course / "submitted" / "correcta" / SMALL / f"{SMALL}.ipynb").read_bytes()
    limits = grading.Limits(wall_seconds=300, cell_seconds=20, processes=64)
    report = grading.grade_assignment(course, SMALL, sorted(planted), limits, "Europe/Madrid")
    loop_limits = grading.Limits(wall_seconds=30, cell_seconds=5)
    loop_report = grading.grade_assignment(course, SMALL, ["bucle"], loop_limits, "Europe/Madrid")
    return {"course": course, "report": report, "loop_report": loop_report, "before": before, "planted": planted}


def _with_loop(nb):
    _solution_cells(nb)[0].source = LOOP + SOLUTION
    return nb


def test_the_solutions_and_a_correct_answer_with_a_warning_get_full_marks(small):
    course = small["course"]
    for student in ("correcta", "aviso", "enorme", "hostil"):
        got, out_of = _auto(course, SMALL, student)
        assert got == out_of == 3, f"{student}: {got} / {out_of}\n{small['report']}"


def test_forged_and_hooked_submissions_get_no_points_and_are_flagged(small):
    course, report = small["course"], small["report"]
    for student in ("falsificada", "ganchos", "sin_hacer"):
        assert _auto(course, SMALL, student)[0] == 0, f"{student}: {_grades(course, SMALL, student)}"
    review = report.split("## Código que toca el intérprete")[1]
    for student in ("falsificada", "ganchos", "hostil"):
        assert f"- {student}:" in review, report
    assert "- correcta:" not in review and "- aviso:" not in review


def test_the_report_lists_exactly_the_submissions_that_changed_a_locked_cell(small):
    section = small["report"].split("## Celdas bloqueadas cambiadas")[1].split("##")[0]
    listed = {line[2:].split(":")[0] for line in section.splitlines() if line.startswith("- ")}
    assert listed == {"bloqueada"}, small["report"]
    assert "99-ex1-tests" in section
    assert _auto(small["course"], SMALL, "bloqueada")[0] == 3  # restored from the release, then graded


def test_a_hostile_submission_reaches_nothing_outside_its_sandbox(small):
    course = small["course"]
    assert (course / "submitted" / "correcta" / SMALL / f"{SMALL}.ipynb").read_bytes() == small["before"]
    graded = (course / "autograded" / "hostil" / SMALL / f"{SMALL}.ipynb").read_text(encoding="utf-8")
    assert "BEGIN SOLUTION" not in graded and "SQLite format" not in graded
    assert "no pude leer" in graded and "no pude escribir" in graded
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        assert all(
            g.manual_score is None
            for s in gb.students
            for sub in s.submissions
            for n in sub.notebooks
            for g in n.grades
        )
    with sqlite3.connect(course / "gradebook.db") as db:
        assert not db.execute("SELECT count(*) FROM grade WHERE manual_score = 100").fetchone()[0]
    # The hostile cell started `sleep 3600`s, some in sessions of their own: none survives its account.
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    leftovers = [line for line in processes if line.strip() == "sleep 3600"]
    assert not leftovers, leftovers
    assert "calif-" not in Path("/etc/passwd").read_text()


def test_huge_output_is_cut_in_bytes(small):
    graded = small["course"] / "autograded" / "enorme" / SMALL / f"{SMALL}.ipynb"
    assert graded.stat().st_size < 1_000_000
    assert "salida recortada" in graded.read_text(encoding="utf-8")


def test_a_submission_that_cannot_be_graded_is_reported_with_why_and_not_as_a_zero(small):
    report = small["loop_report"]
    assert "| bucle | NO CALIFICADA |" in report, report
    section = report.split("## No calificadas")[1].split("##")[0]
    assert "- bucle: " in section and ("no terminó" in section or "CellTimeoutError" in section), section
    with Gradebook(f"sqlite:///{small['course'] / 'gradebook.db'}", COURSE_ID) as gb:
        assert "bucle" not in [s.id for s in gb.students]  # nothing silently recorded


def test_dates_carry_their_zone_in_the_report(small):
    report = small["report"]
    assert "Fecha límite: 2026-03-13 20:00 Europe/Madrid" in report, report
    assert "| 2026-03-13 19:30 Europe/Madrid |" in report


def test_the_feedback_shows_no_hidden_test(small):
    course = small["course"]
    _nbgrader(course, "generate_feedback", SMALL, "--force")
    for student in ("correcta", "sin_hacer"):
        html = (course / "feedback" / student / SMALL / f"{SMALL}.html").read_text(encoding="utf-8")
        assert "secret_line_of_the_hidden_test" not in html and "HIDDEN TESTS" not in html, student
        assert "double(21) debe dar 42" in html


# --- The same submissions in real lessons (slow: each submission runs the whole notebook) ------------------

# A correct answer that calls the reference under another name.
ALIASES = {
    "02_transformer_por_dentro": (
        "02-ex1-attention",
        "from course_utils.attention import scaled_dot_product_attention as _f\n\n\n"
        "def attention_by_hand(q, k, v, causal=False):\n    return _f(q, k, v, causal=causal)\n",
    ),
    "04_clasificador_top7": (
        "04-ex2-softmax-temperature",
        "from torch.special import softmax as _s\n\n\n"
        "def softmax_with_temperature(logits, temperature=1.0):\n"
        "    if temperature <= 0:\n        raise ValueError('La temperatura debe ser positiva.')\n"
        "    return _s(logits / temperature, dim=-1)\n",
    ),
}


def _strip_markers(source: str) -> str:
    return "\n".join(
        line for line in source.splitlines() if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
    )


def _visible_text(html: str) -> str:
    from html.parser import HTMLParser

    parts: list[str] = []
    parser = HTMLParser()
    parser.handle_data = parts.append
    parser.feed(html)
    return " ".join("".join(parts).split())


@pytest.mark.slow
@pytest.mark.parametrize("assignment", sorted(ALIASES))
def test_planted_submissions_in_a_real_lesson(assignment, tmp_path, python_for_everyone, models_for_everyone):
    course = _new_course(tmp_path, [assignment])
    source = nbformat.read(INSTRUCTOR / "source" / assignment / f"{assignment}.ipynb", as_version=4)
    meta = [c.metadata.get("nbgrader", {}) for c in source.cells]
    solutions = {m["grade_id"]: _strip_markers(c.source) for c, m in zip(source.cells, meta) if m.get("solution")}
    planted = _plant(course, assignment, solutions)
    exercise, code = ALIASES[assignment]
    aliased = _release(course, assignment)
    for cell in _solution_cells(aliased):
        grade_id = cell.metadata.nbgrader["grade_id"]
        cell.source = code if grade_id == exercise else solutions[grade_id]
    _submit(course, "alias", assignment, aliased)
    looping = _release(course, assignment)
    _solution_cells(looping)[0].source = LOOP
    _submit(course, "bucle", assignment, looping)
    before = (course / "submitted" / "correcta" / assignment / f"{assignment}.ipynb").read_bytes()

    limits = grading.Limits(wall_seconds=1200, cell_seconds=300)
    report = grading.grade_assignment(course, assignment, [*planted, "alias"], limits, "Europe/Madrid")
    loop_report = grading.grade_assignment(
        course, assignment, ["bucle"], grading.Limits(wall_seconds=60, cell_seconds=10), "Europe/Madrid"
    )

    tests = [m for c, m in zip(source.cells, meta) if m.get("grade") and not m.get("solution")]
    total = sum(m["points"] for m in tests)
    for student in ("correcta", "aviso", "enorme", "hostil", "bloqueada"):
        assert _auto(course, assignment, student) == (total, total), f"{student}\n{report}"
    for student in ("falsificada", "ganchos", "sin_hacer"):
        assert _auto(course, assignment, student)[0] == 0, f"{student}: {_grades(course, assignment, student)}"
    alias_grades = _grades(course, assignment, "alias")
    alias_tests = [m["grade_id"] for m in tests if m["grade_id"].startswith(exercise)]
    assert alias_tests and all(alias_grades[t][0] == 0 for t in alias_tests), alias_grades
    # At most the other exercises' points: in 04 two course cells also run the student's softmax under the
    # guard, so the alias fails there too and a later exercise that needs their results loses its points.
    assert _auto(course, assignment, "alias")[0] <= total - sum(
        m["points"] for m in tests if m["grade_id"] in alias_tests
    )

    section = report.split("## Celdas bloqueadas cambiadas")[1].split("##")[0]
    assert {line[2:].split(":")[0] for line in section.splitlines() if line.startswith("- ")} == {"bloqueada"}
    review = report.split("## Código que toca el intérprete")[1]
    assert all(f"- {s}:" in review for s in ("falsificada", "ganchos", "hostil")), report
    assert "| bucle | NO CALIFICADA |" in loop_report, loop_report
    assert (course / "submitted" / "correcta" / assignment / f"{assignment}.ipynb").read_bytes() == before
    graded = course / "autograded" / "enorme" / assignment / f"{assignment}.ipynb"
    assert graded.stat().st_size < 5_000_000

    _nbgrader(course, "generate_feedback", assignment, "--force")

    # What only the hidden tests say: not in the student's version, nor in the solutions the students typed.
    def lines(text):
        return {" ".join(line.split("  #")[0].split()) for line in text.splitlines()}

    released = set().union(*(lines(cell.source) for cell in _release(course, assignment).cells))
    released |= set().union(*(lines(code) for code in solutions.values()))
    hidden = []
    for cell in source.cells:
        if "### BEGIN HIDDEN TESTS" in cell.source:
            block = cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
            hidden += sorted(line for line in lines(block) - released if len(line) > 25)
    assert hidden, "no hay líneas propias de las pruebas ocultas que buscar"
    for student in ("sin_hacer", "alias", "correcta"):
        text = _visible_text(
            (course / "feedback" / student / assignment / f"{assignment}.html").read_text(encoding="utf-8")
        )
        shown = [line for line in hidden if line in text]
        assert not shown, f"{student}: la retroalimentación muestra pruebas ocultas: {shown[:3]}"


def test_nbgrader_export_writes_dates_with_their_zone(small):
    course = small["course"]
    _nbgrader(course, "export", "--to=notas.csv")
    rows = list(csv.DictReader((course / "notas.csv").open(encoding="utf-8")))
    row = next(r for r in rows if r["student_id"] == "correcta")
    assert row["duedate"] == "2026-03-13 20:00:00+01:00", row  # not «2026-03-13 19:00:00»
    assert row["timestamp"] == "2026-03-13 19:30:00+01:00", row
    assert float(row["raw_score"]) == 3.0


def test_a_notebook_whose_model_cannot_load_is_not_graded_and_says_why(tmp_path, python_for_everyone, monkeypatch):
    """The server's fault, not the student's: the course cell that loads the model fails (ModelLoadError)."""
    course = _new_course(tmp_path, [SMALL])
    source = _small_source()
    source.cells.insert(
        2, new_code_cell("from course_utils.vision import load_classifier\n\nmodelo = load_classifier()")
    )
    nbformat.write(source, course / "source" / SMALL / f"{SMALL}.ipynb")
    _nbgrader(course, "generate_assignment", SMALL, "--force")
    solved = _release(course, SMALL)
    _solution_cells(solved)[0].source = SOLUTION
    _submit(course, "correcta", SMALL, solved)
    monkeypatch.setenv("COURSE_VIT_MODEL", "/nonexistent/modelo-del-curso")  # a folder that is not there
    report = grading.grade_assignment(course, SMALL, None, grading.Limits(wall_seconds=300), "Europe/Madrid")
    assert "| correcta | NO CALIFICADA |" in report, report
    assert "ModelLoadError" in report.split("## No calificadas")[1].split("##")[0], report
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        assert "correcta" not in [s.id for s in gb.students]  # not a silent 0
