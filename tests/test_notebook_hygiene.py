"""Notebooks are ordered, open with a title and goals, and are committed without outputs.

Both versions: the student notebooks in notebooks/ and the instructor sources they are generated from
(instructor/source/NN_name/NN_name.ipynb, see tests/test_coursework.py).
"""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOURCES = sorted((ROOT / "instructor" / "source").glob("*/*.ipynb"))
BOTH = NOTEBOOKS + SOURCES
CHECKED = "NBVAL_CHECK_OUTPUT"


def _id(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.name}" if path in SOURCES else path.name


def test_notebooks_are_numbered_in_order():
    names = [p.name for p in NOTEBOOKS]
    assert names, "no notebooks found"
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", n) for n in names), names
    numbers = [int(n[:2]) for n in names]
    assert numbers == list(range(len(numbers))), f"gaps or duplicates in {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_title_carries_the_notebooks_number(path):
    """«# 06 · …» in 06_….ipynb: a renumbering must reach the title the student, the slides and the site show."""
    first = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0]
    assert first.startswith(f"# {path.name[:2]} · "), f"{path.name}: el título dice «{first}»"


def test_instructor_sources_are_numbered_like_the_notebooks():
    names = [p.name for p in SOURCES]
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", n) for n in names), names
    assert set(names) <= {p.name for p in NOTEBOOKS}, "every source has its student notebook (make cuadernos)"


@pytest.mark.parametrize("path", BOTH, ids=_id)
def test_notebook_opens_with_title_and_goals(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), "first cell must be a # title"
    intro = "\n".join(c.source for c in nb.cells[:3] if c.cell_type == "markdown").lower()
    assert "objetivos" in intro, "the opening cells must list the learning goals (Objetivos)"
    assert "ejercicio" in "\n".join(c.source for c in nb.cells).lower(), "every notebook ends with exercises"


@pytest.mark.parametrize("path", BOTH, ids=_id)
def test_notebook_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or CHECKED in cell.source:
            continue
        assert not cell.outputs, f"cell {i} keeps outputs; strip them"
        assert cell.execution_count is None, f"cell {i} keeps an execution count"
