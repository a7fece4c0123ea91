"""The sample audio clips and photos that ship inside the package (see CREDITS.md next to them)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from course_utils.errors import CourseError


def sample_path(name: str | None = None) -> Path:
    """The samples folder, or the sample file `name` in it (a Spanish CourseError lists the ones there)."""
    folder = Path(resources.files("course_utils").joinpath("data", "samples"))
    if name is None:
        return folder
    path = folder / name
    if not path.is_file():
        available = ", ".join(sorted(p.name for p in folder.iterdir() if p.suffix in (".jpg", ".wav")))
        raise CourseError(f"No encuentro la muestra «{name}».", f"Elige una de estas: {available}.")
    return path
