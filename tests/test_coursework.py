"""The coursework with nbgrader: one source, two versions, and a real grading round trip.

instructor/ is an nbgrader course directory (instructor/nbgrader_config.py): the instructor notebooks
in instructor/source/NN_name/NN_name.ipynb hold the solutions and the visible and hidden tests, and
`make cuadernos` generates the student versions in notebooks/ with `nbgrader generate_assignment`.

Everything here runs nbgrader itself, in a copy of the course directory in a temporary folder, with
a SQLite gradebook there: generate_assignment, autograde and generate_feedback, the same commands the
teacher runs (instructor/GUIA.md). The notebooks run in the harness's environment (stand-in models
and the loopback Ollama double), as nbval runs them. Three students submit:
- `solutions`: the instructor sources, every notebook → full marks, and no cell fails;
- `untouched`: the student versions as handed out, every notebook → 0 on every exercise, and the only
  errors are NotImplementedError in exercise and test cells (the rest of the notebook still runs);
- `planted`: one notebook with one exercise solved, one wrong, one untouched and an open answer →
  exactly the marks of the solved one, the open answer waiting for the teacher; graded by hand through
  the gradebook, as the formgrader does, and returned as feedback HTML.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

ROOT = Path(__file__).resolve().parent.parent
INSTRUCTOR = ROOT / "instructor"
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted((INSTRUCTOR / "source").glob("*/*.ipynb"))
ASSIGNMENTS = [p.stem for p in SOURCES]
# The final project: graded by hand only, with a rubric (no automatic tests).
PROJECTS = [p for p in SOURCES if p.stem.endswith("_proyecto_final")]
LESSONS = [p for p in SOURCES if int(p.stem[:2]) >= 1 and p not in PROJECTS]
COURSE_ID = "curso-multimodal"
# The planted submission: a notebook with at least three exercises that runs in seconds.
PLANTED = "04_clasificador_top7"
STUB = "raise NotImplementedError()"
# Autograding runs whole notebooks: generous, for a slow, shared CI machine (not a timing check).
AUTOGRADE_TIMEOUT = 900


def _nbgrader_together(*runs: tuple[Path, list[str]], timeout: int) -> None:
    """Several nbgrader commands at once, each in its own course directory (and gradebook)."""
    # nbgrader creates the gradebook with the `alembic` command of its own environment.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    procs = [
        (
            args,
            subprocess.Popen(
                [sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"],
                cwd=course,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
        )
        for course, args in runs
    ]
    logs = []
    try:
        for args, proc in procs:
            logs.append((args, proc.communicate(timeout=timeout)[0], proc.returncode))
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for args, log, code in logs:
        assert code == 0, f"`nbgrader {' '.join(args)}` terminó con {code}:\n{log[-6000:]}"
        assert "[ERROR]" not in log and "| ERROR]" not in log, (
            f"`nbgrader {' '.join(args)}` avisó de errores:\n{log[-6000:]}"
        )


def _nbgrader(course: Path, *args: str, timeout: int = 600) -> None:
    """Run an nbgrader command in the course directory `course`; fail with its log if it fails."""
    _nbgrader_together((course, list(args)), timeout=timeout)


def _nb(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _is_autograded_test(cell) -> bool:
    nb = _nb(cell)
    return cell.cell_type == "code" and nb.get("grade", False) and not nb.get("solution", False)


def _is_manual_answer(cell) -> bool:
    nb = _nb(cell)
    return nb.get("grade", False) and nb.get("solution", False)


def _is_solution_code(cell) -> bool:
    nb = _nb(cell)
    return cell.cell_type == "code" and nb.get("solution", False) and not nb.get("grade", False)


def exercises(nb) -> list[tuple[str, list[str]]]:
    """(grade_id of each solution cell, grade_ids of the autograded test cells that follow it)."""
    found: list[tuple[str, list[str]]] = []
    for cell in nb.cells:
        if _is_solution_code(cell):
            found.append((_nb(cell)["grade_id"], []))
        elif _is_autograded_test(cell) and found:
            found[-1][1].append(_nb(cell)["grade_id"])
    return found


def _source(assignment: str):
    return nbformat.read(INSTRUCTOR / "source" / assignment / f"{assignment}.ipynb", as_version=4)


def _grades(course: Path, assignment: str, student: str) -> dict[str, dict]:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        notebook = gb.find_submission_notebook(assignment, assignment, student)
        return {
            g.name: {
                "auto": g.auto_score,
                "manual": g.manual_score,
                "score": g.score,
                "max": g.max_score,
                "needs_manual": g.needs_manual_grade,
                "type": g.cell_type,
            }
            for g in notebook.grades
        }


def _submit(course: Path, student: str, assignment: str, notebook: Path | nbformat.NotebookNode) -> None:
    folder = course / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(notebook, Path):
        shutil.copy(notebook, folder / f"{assignment}.ipynb")
    else:
        nbformat.write(notebook, folder / f"{assignment}.ipynb")


def _errors(path: Path) -> list[tuple[int, dict, str, str]]:
    """(cell index, its nbgrader metadata, error name, error value) for every error output."""
    nb = nbformat.read(path, as_version=4)
    return [
        (i, _nb(cell), out.ename, out.evalue)
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A copy of instructor/, with the student versions generated by nbgrader."""
    assert SOURCES, "no hay cuadernos del profesor en instructor/source/"
    course = tmp_path_factory.mktemp("curso") / "instructor"
    # The course directory as committed: configuration, sources, feedback template; not the teacher's work.
    shutil.copytree(
        INSTRUCTOR,
        course,
        ignore=shutil.ignore_patterns(
            ".ipynb_checkpoints",
            "__pycache__",
            "gradebook.db",
            "release",
            "submitted",
            "autograded",
            "feedback",
            "proyecto",  # what the final project's solution writes when the teacher runs it
        ),
    )
    _nbgrader(course, "generate_assignment", "*", "--force")
    return course


@pytest.fixture(scope="module")
def graded(course, tmp_path_factory) -> dict[str, Path]:
    """The sources and the untouched student versions, each submitted by one student and autograded.

    Each student in a copy of the generated course directory, with its own gradebook, so that the two
    autograde runs go side by side on two cores: {student: course directory}.
    """
    courses = {
        "solutions": tmp_path_factory.mktemp("soluciones") / "instructor",
        "untouched": tmp_path_factory.mktemp("sin_tocar") / "instructor",
    }
    for student, folder in courses.items():
        shutil.copytree(course, folder)
        for assignment in ASSIGNMENTS:
            submission = (
                INSTRUCTOR / "source" / assignment if student == "solutions" else NOTEBOOKS
            ) / f"{assignment}.ipynb"
            _submit(folder, student, assignment, submission)
    _nbgrader_together(
        *[(folder, ["autograde", "*", f"--student={student}", "--force"]) for student, folder in courses.items()],
        timeout=AUTOGRADE_TIMEOUT,
    )
    return courses


# --- The sources follow the conventions (no execution) -------------------------------------------------------


def test_every_source_is_a_folder_of_the_same_name_and_has_its_student_notebook():
    assert SOURCES, "no hay cuadernos del profesor en instructor/source/"
    for path in SOURCES:
        assert path.parent.name == path.stem, f"{path}: la carpeta y el cuaderno deben llamarse igual"
        assert (NOTEBOOKS / path.name).exists(), f"falta notebooks/{path.name}: ejecuta `make cuadernos`"
    orphans = sorted({p.name for p in NOTEBOOKS.glob("*.ipynb")} - {p.name for p in SOURCES})
    assert not orphans, f"cuadernos de estudiante sin fuente en instructor/source/: {orphans}"


def test_grade_ids_are_unique_and_cells_carry_the_metadata_nbval_and_nbgrader_need():
    seen: dict[str, str] = {}
    for path in SOURCES:
        for i, cell in enumerate(_source(path.stem).cells):
            meta = _nb(cell)
            if not meta:
                continue
            where = f"{path.stem}, celda {i}"
            grade_id = meta.get("grade_id")
            assert grade_id and grade_id not in seen, (
                f"{where}: grade_id repetido o vacío ({grade_id!r}, ya en {seen.get(grade_id)})"
            )
            seen[grade_id] = where
            assert grade_id.startswith(path.stem[:2] + "-"), (
                f"{where}: el grade_id {grade_id!r} debe empezar por «{path.stem[:2]}-»"
            )
            if cell.cell_type == "code" and (meta.get("solution") or meta.get("grade")):
                # In the student version these cells raise NotImplementedError; nbval lets them.
                assert "raises-exception" in cell.metadata.get("tags", []), (
                    f"{where}: falta la etiqueta raises-exception"
                )
            if meta.get("grade"):
                assert meta.get("points", 0) > 0, f"{where}: una celda calificada necesita puntos"
            if _is_autograded_test(cell):
                assert meta.get("locked"), f"{where}: las celdas de pruebas van bloqueadas"
            if _is_solution_code(cell):
                assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source, (
                    f"{where}: la solución va entre ### BEGIN SOLUTION y ### END SOLUTION"
                )


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_lesson_has_three_write_the_code_exercises_with_hidden_tests_and_an_open_question(path):
    nb = _source(path.stem)
    cells = {_nb(c).get("grade_id"): c for c in nb.cells if _nb(c)}
    tested = [ex for ex, tests in exercises(nb) if tests]
    assert len(tested) >= 3, f"{path.stem}: {len(tested)} ejercicios con pruebas automáticas (hacen falta 3)"
    for ex, tests in exercises(nb):
        assert tests, f"{path.stem}: el ejercicio {ex} no tiene celda de pruebas"
        assert any("### BEGIN HIDDEN TESTS" in cells[t].source for t in tests), (
            f"{path.stem}: las pruebas de {ex} no tienen pruebas ocultas"
        )
    open_questions = [c for c in nb.cells if _is_manual_answer(c) and c.cell_type == "markdown"]
    assert open_questions, f"{path.stem}: falta al menos una pregunta abierta calificada a mano"


def _is_task(cell) -> bool:
    return _nb(cell).get("task", False)


def test_the_final_project_is_graded_by_hand_with_a_rubric_that_names_every_graded_cell():
    assert PROJECTS, "falta el proyecto final (instructor/source/NN_proyecto_final/)"
    for path in PROJECTS:
        nb = _source(path.stem)
        graded = [c for c in nb.cells if _nb(c).get("grade")]
        assert not [c for c in graded if _is_autograded_test(c)], (
            f"{path.stem}: el proyecto no tiene pruebas automáticas"
        )
        manual = [c for c in graded if _is_manual_answer(c) or _is_task(c)]
        assert manual == graded and len(manual) >= 5, f"{path.stem}: cada criterio es una celda calificada a mano"
        assert any(c.cell_type == "code" for c in manual if _is_manual_answer(c)), f"{path.stem}: falta el código"
        assert any(c.cell_type == "markdown" for c in manual if _is_manual_answer(c)), f"{path.stem}: falta el informe"
        rubric = next((c.source for c in nb.cells if c.source.startswith("## Rúbrica")), "")
        total = sum(_nb(c)["points"] for c in manual)
        assert f"## Rúbrica ({total:g} puntos)" in rubric, f"{path.stem}: la rúbrica no dice el total, {total:g}"
        for cell in manual:
            meta = _nb(cell)
            row = next((line for line in rubric.splitlines() if f"(`{meta['grade_id']}`)" in line), None)
            assert row, f"{path.stem}: la rúbrica no tiene la fila de {meta['grade_id']}"
            levels = [part.strip() for part in row.strip("|").split("|")]
            assert len(levels) == 5 and levels[-1] == f"{meta['points']:g}", (
                f"{path.stem}: la fila de {meta['grade_id']} necesita tres niveles y sus {meta['points']:g} puntos"
            )
        assert (path.parent / "revision_entre_pares.md").exists(), f"{path.stem}: falta la hoja de revisión"


def test_the_teachers_guide_links_a_section_for_every_lesson():
    guide = (INSTRUCTOR / "GUIA.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+\.md)\)", guide)
    missing = [link for link in links if not (INSTRUCTOR / link).exists()]
    assert not missing, f"instructor/GUIA.md enlaza páginas que no existen: {missing}"
    for path in SOURCES:
        if int(path.stem[:2]) >= 1:
            assert f"guia/{path.stem}.md" in links, f"GUIA.md no enlaza la guía de {path.stem}"
    for command in (
        "generate_assignment",
        "release_assignment",
        "collect",
        "autograde",
        "generate_feedback",
        "release_feedback",
        "make cuadernos",
    ):
        assert command in guide, f"GUIA.md no explica `{command}`"


# --- One source, two versions ---------------------------------------------------------------------------------


def test_student_notebooks_are_exactly_what_nbgrader_generates(course):
    stale = []
    for assignment in ASSIGNMENTS:
        generated = course / "release" / assignment / f"{assignment}.ipynb"
        assert generated.exists(), f"nbgrader no generó {assignment}"
        committed = NOTEBOOKS / f"{assignment}.ipynb"
        if not committed.exists() or committed.read_bytes() != generated.read_bytes():
            stale.append(committed.name)
    # The glossary (with 00) and the peer-review sheet (with the final project) go next to the notebooks.
    assert (course / "release" / "00_entorno" / "glosario.md").exists(), "nbgrader no publicó el glosario con 00"
    for project in PROJECTS:
        assert (course / "release" / project.stem / "revision_entre_pares.md").exists(), project.stem
    for document in sorted((course / "release").glob("*/*.md")):
        committed = NOTEBOOKS / document.name
        if not committed.exists() or committed.read_bytes() != document.read_bytes():
            stale.append(document.name)
    assert not stale, (
        f"notebooks/ no coincide con lo que genera nbgrader desde instructor/source/ en {stale}: "
        "edita el cuaderno del profesor y ejecuta `make cuadernos`, no el del estudiante"
    )


def test_student_versions_hide_the_solutions_and_the_hidden_tests(course):
    for assignment in ASSIGNMENTS:
        student = nbformat.read(NOTEBOOKS / f"{assignment}.ipynb", as_version=4)
        text = "\n".join(c.source for c in student.cells)
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, assignment
        for ex, _ in exercises(_source(assignment)):
            cell = next(c for c in student.cells if _nb(c).get("grade_id") == ex)
            assert STUB in cell.source and "# TU CÓDIGO AQUÍ" in cell.source, f"{assignment}: {ex} sin el hueco"
        for cell in student.cells:
            if _is_manual_answer(cell) and cell.cell_type == "markdown":
                assert cell.source == "ESCRIBE AQUÍ TU RESPUESTA", f"{assignment}: la respuesta modelo se ve"


# --- A real autograde round trip on a SQLite gradebook --------------------------------------------------------


def test_the_solutions_get_full_marks_and_run_clean(graded):
    for assignment in ASSIGNMENTS:
        failed = _errors(graded["solutions"] / "autograded" / "solutions" / assignment / f"{assignment}.ipynb")
        assert not failed, (
            f"{assignment}: el cuaderno del profesor falla en {[(i, e, v[:200]) for i, _, e, v in failed]}"
        )
        grades = _grades(graded["solutions"], assignment, "solutions")
        for cell in _source(assignment).cells:
            meta = _nb(cell)
            if _is_autograded_test(cell):
                grade = grades[meta["grade_id"]]
                assert grade["auto"] == grade["max"] == meta["points"], f"{assignment}: {meta['grade_id']} {grade}"
            elif _is_manual_answer(cell) or _is_task(cell):
                assert grades[meta["grade_id"]]["needs_manual"], f"{assignment}: {meta['grade_id']} se califica a mano"


def test_untouched_student_versions_get_zero_and_only_the_exercises_raise(graded):
    for assignment in ASSIGNMENTS:
        path = graded["untouched"] / "autograded" / "untouched" / assignment / f"{assignment}.ipynb"
        for i, meta, ename, evalue in _errors(path):
            assert meta.get("solution") or meta.get("grade"), (
                f"{assignment}, celda {i}: falla fuera de los ejercicios ({ename}: {evalue[:300]})"
            )
            assert ename == "NotImplementedError", (
                f"{assignment}, celda {i} ({meta.get('grade_id')}): "
                f"solo se admite NotImplementedError, no {ename}: {evalue[:300]}"
            )
        ran = nbformat.read(path, as_version=4)
        assert all(c.execution_count for c in ran.cells if c.cell_type == "code"), f"{assignment}: no se ejecutó entero"
        grades = _grades(graded["untouched"], assignment, "untouched")
        tasks = {_nb(c)["grade_id"] for c in _source(assignment).cells if _is_task(c)}
        for name, grade in grades.items():
            # An unanswered open question gets 0 from nbgrader, with nothing for the teacher to grade; a task
            # (a criterion on the whole notebook, such as the final project's «it runs from top to bottom»)
            # always waits for the teacher.
            assert grade["score"] == 0 and grade["needs_manual"] == (name in tasks), f"{assignment}: {name} {grade}"
        tests = [t for _, ts in exercises(_source(assignment)) for t in ts]
        assert set(tests) <= set(grades), f"{assignment}: faltan celdas en el libro de notas"


@pytest.fixture(scope="module")
def planted(course) -> dict:
    """PLANTED with its first exercise solved, the second wrong, the rest untouched, and an open answer."""
    assert PLANTED in ASSIGNMENTS, f"{PLANTED} no está en instructor/source/"
    source = _source(PLANTED)
    student = nbformat.read(NOTEBOOKS / f"{PLANTED}.ipynb", as_version=4)
    (solved, solved_tests), (wrong, wrong_tests), (untouched, untouched_tests), *_ = exercises(source)
    by_id = {_nb(c).get("grade_id"): c for c in student.cells if _nb(c)}
    # Solved: the instructor's code, without the markers, as a student would type it.
    solution = next(c for c in source.cells if _nb(c).get("grade_id") == solved).source
    by_id[solved].source = "\n".join(
        line for line in solution.splitlines() if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
    )
    # Wrong: runs, returns nothing useful.
    assert STUB in by_id[wrong].source
    by_id[wrong].source = by_id[wrong].source.replace(STUB, "return None")
    answers = [c for c in student.cells if _is_manual_answer(c) and c.cell_type == "markdown"]
    answers[0].source = "Con una temperatura baja la distribución se concentra en la clase más probable."
    _submit(course, "planted", PLANTED, student)
    _nbgrader(course, "autograde", PLANTED, "--student=planted", "--force", timeout=AUTOGRADE_TIMEOUT)
    points = {_nb(c)["grade_id"]: _nb(c)["points"] for c in source.cells if _nb(c).get("grade")}
    return {
        "solved": solved_tests,
        "wrong": wrong_tests,
        "untouched": untouched_tests,
        "answer": _nb(answers[0])["grade_id"],
        "points": points,
    }


def test_a_planted_partial_submission_gets_exactly_the_marks_of_what_it_solved(course, planted):
    grades = _grades(course, PLANTED, "planted")
    for name in planted["solved"]:
        assert grades[name]["auto"] == planted["points"][name], f"resuelto: {name} {grades[name]}"
    for name in planted["wrong"] + planted["untouched"]:
        assert grades[name]["auto"] == 0, f"sin resolver: {name} {grades[name]}"
    autograded = {name for name, g in grades.items() if g["type"] == "code" and not g["needs_manual"]}
    expected = sum(planted["points"][n] for n in planted["solved"])
    assert sum(grades[n]["auto"] for n in autograded) == expected
    assert grades[planted["answer"]]["needs_manual"] and grades[planted["answer"]]["manual"] is None


def test_the_teacher_grades_the_open_answer_and_the_feedback_html_shows_the_marks(course, planted):
    answer = planted["answer"]
    manual = planted["points"][answer] / 2
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        # What the formgrader does when the teacher types a score for the open answer.
        grade = gb.find_grade(answer, PLANTED, PLANTED, "planted")
        grade.manual_score = manual
        gb.db.commit()
    _nbgrader(course, "generate_feedback", PLANTED, "--student=planted", "--force")
    html = (course / "feedback" / "planted" / PLANTED / f"{PLANTED}.html").read_text(encoding="utf-8")
    total = sum(planted["points"].values())
    got = manual + sum(planted["points"][n] for n in planted["solved"])
    assert re.search(rf"{PLANTED} \(Puntos: {got:g}(\.0+)? / {total:g}(\.0+)?\)", html), (
        f"la nota {got} / {total} no aparece en la retroalimentación"
    )
    assert "Con una temperatura baja la distribución" in html  # the student's answer
    for name in planted["solved"] + planted["wrong"] + planted["untouched"] + [answer]:
        assert f'<a name="{name}">' in html, f"la retroalimentación no muestra la celda {name}"
    assert "NotImplementedError" in html  # the untouched exercise, as the student will see it
    assert "Tu respuesta" in html and "Score" not in html  # nbgrader's page, in Spanish (instructor/plantillas)


# --- The tests do not give the answer away ---------------------------------------------------------------------


def _calls(node) -> list[str]:
    """The names of the functions and methods `node` calls, innermost first, in reading order."""
    found: list[str] = []

    def visit(n):
        for child in ast.iter_child_nodes(n):
            visit(child)
        if isinstance(n, ast.Call):
            func = n.func
            found.append(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))

    visit(node)
    return found


def _contains(sequence: list[str], part: list[str]) -> bool:
    return any(sequence[i : i + len(part)] == part for i in range(len(sequence) - len(part) + 1))


def _solutions(cell_source: str) -> list[list[str]]:
    """The calls of each function's solution (the code between the markers) in a solution cell."""
    tree = ast.parse(cell_source)
    return [
        _calls(ast.Module(body=f.body, type_ignores=[]))
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef) and "### BEGIN SOLUTION" in (ast.get_source_segment(cell_source, f) or "")
    ]


@pytest.mark.parametrize("path", [p for p in SOURCES if int(p.stem[:2]) >= 1], ids=lambda p: p.stem)
def test_no_test_cell_redoes_the_solution(path):
    """A test that computes the expected value the way the solution does shows the answer in the feedback
    (hidden tests) or in the notebook itself (visible ones): the expected values come from the course's
    reference functions, from libraries, or are written out."""
    nb = _source(path.stem)
    cells = {_nb(c).get("grade_id"): c for c in nb.cells if _nb(c)}
    for exercise, tests in exercises(nb):
        steps = [s for s in _solutions(cells[exercise].source) if len(s) >= 2]
        for test in tests:
            source = cells[test].source.replace("### BEGIN HIDDEN TESTS", "").replace("### END HIDDEN TESTS", "")
            tree = ast.parse(source)
            units = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.stmt))]
            for unit in units:
                for solution in steps:
                    assert not _contains(_calls(unit), solution), (
                        f"{path.stem}, {test}: «{ast.get_source_segment(source, unit).splitlines()[0]}» hace lo "
                        f"mismo que la solución de {exercise} ({' → '.join(solution)})"
                    )
