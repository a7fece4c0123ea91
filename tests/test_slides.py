"""The lessons as slides (`make slides`, jupyterlab-rise): every lesson carries slide metadata that makes
readable slides (a title each, not too much on one, exercises on their own), the student notebooks keep it,
and scripts/slide_metadata.py would change nothing (its rules and the hand-made choices agree)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import slide_metadata  # noqa: E402 - the script, not a package

LESSONS = slide_metadata.sources()
STUDENT = {p.stem: ROOT / "notebooks" / p.name for p in LESSONS}
VENV = Path(sys.executable).parent.parent
# The venv is there already: make must not (re)install it (-o: its stamp counts as up to date).
MAKE = ["make", "--no-print-directory", f"VENV={VENV}", "-o", f"{VENV}/.installed"]
MAX_CELLS = 12  # cells shown on one slide (fragments included): more does not fit a projected screen
MAX_CODE_LINES = 80  # lines of code on one slide, all its fragments together
KINDS = {"slide", "subslide", "fragment", "-", "skip", "notes"}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def ids(paths):
    return [p.stem for p in paths]


@pytest.mark.parametrize("path", LESSONS, ids=ids(LESSONS))
def test_every_cell_of_every_lesson_has_a_slide_type(path):
    for notebook in (load(path), load(STUDENT[path.stem])):
        kinds = [c["metadata"].get("slideshow", {}).get("slide_type") for c in notebook["cells"]]
        assert set(kinds) <= KINDS, f"{path.stem}: {set(kinds) - KINDS}"
        assert kinds[0] == "slide", f"{path.stem}: la primera celda no abre diapositiva"


@pytest.mark.parametrize("path", LESSONS, ids=ids(LESSONS))
def test_the_student_notebook_keeps_the_slides_of_its_source(path):
    """nbgrader's generate_assignment keeps the metadata: the student sees the same slides."""
    source, student = load(path), load(STUDENT[path.stem])
    titles = [t for _, t, _ in slide_metadata.slides(source)]
    assert titles == [t for _, t, _ in slide_metadata.slides(student)]


@pytest.mark.parametrize("path", LESSONS, ids=ids(LESSONS))
def test_every_slide_has_a_title_and_fits(path):
    for _kind, title, cells in slide_metadata.slides(load(path)):
        assert re.match(r"^#{1,3} \S", title), f"{path.stem}: una diapositiva sin título empieza con {cells[0]}"
        assert len(cells) <= MAX_CELLS, f"{path.stem} «{title}»: {len(cells)} celdas"
        code = sum(len(slide_metadata.text(c).splitlines()) for c in cells if c["cell_type"] == "code")
        assert code <= MAX_CODE_LINES, f"{path.stem} «{title}»: {code} líneas de código"


@pytest.mark.parametrize("path", LESSONS, ids=ids(LESSONS))
def test_each_exercise_is_on_a_slide_of_its_own(path):
    """The answer cell sits on a slide whose title names the exercise, with no other exercise on it."""
    for _, title, cells in slide_metadata.slides(load(path)):
        answers = [c for c in cells if slide_metadata.is_solution(c)]
        if answers:
            assert slide_metadata.EXERCISE_HEADING.match(title), f"{path.stem}: respuesta en «{title}»"
            assert len(answers) == 1, f"{path.stem} «{title}»: {len(answers)} ejercicios en una diapositiva"


@pytest.mark.parametrize("path", LESSONS, ids=ids(LESSONS))
def test_tests_of_the_exercises_are_not_projected(path):
    for cell in load(path)["cells"]:
        if slide_metadata.is_test(cell):
            assert cell["metadata"]["slideshow"]["slide_type"] == "skip"


def test_the_script_changes_nothing_twice_over():
    """Applying the rules again to the committed sources gives them back byte for byte (idempotent)."""
    for path in LESSONS:
        notebook = load(path)
        again = slide_metadata.apply(copy.deepcopy(notebook), path.stem)
        assert again == notebook, f"{path.stem}: scripts/slide_metadata.py cambiaría el cuaderno"


def test_make_slides_names_an_unknown_lesson_in_spanish():
    done = subprocess.run(
        [*MAKE, "-s", "slides", "N=99"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "No hay ninguna lección «99»" in done.stdout


def test_make_slides_opens_the_rise_url_of_the_lesson():
    done = subprocess.run(
        [*MAKE, "-n", "slides", "N=03"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert '--LabApp.default_url="/rise/03_vit_parches.ipynb"' in done.stdout
    assert "--LabApp.app_settings_dir=" in done.stdout and "jupyter/estudiante" in done.stdout
