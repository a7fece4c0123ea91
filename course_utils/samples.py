"""The sample audio clips and photos (see CREDITS.md next to them).

One source, the checkout's top-level data/samples/; the wheel carries a copy as package data at
course_utils/data/samples/ (pyproject.toml maps the course_utils.data package to data/).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from course_utils.errors import CourseError


def _samples_folder() -> Path:
    """Installed from a wheel: inside the package; a checkout or an editable install: data/samples/."""
    installed = Path(resources.files("course_utils").joinpath("data", "samples"))
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parent.parent / "data" / "samples"


def sample_path(name: str | None = None) -> Path:
    """The samples folder, or the sample file `name` in it (a Spanish CourseError lists the ones there)."""
    folder = _samples_folder()
    if name is None:
        return folder
    path = folder / name
    if not path.is_file():
        available = ", ".join(sorted(p.name for p in folder.iterdir() if p.suffix in (".jpg", ".wav")))
        raise CourseError(f"No encuentro la muestra «{name}».", f"Elige una de estas: {available}.")
    return path
