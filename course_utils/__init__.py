"""Helpers for the multimodal-models course: the notebooks show the idea, these do the work."""

from course_utils.errors import CourseError, install_notebook_handler

__version__ = "0.1.0"
__all__ = ["CourseError", "setup_notebook"]


def setup_notebook() -> None:
    """Prepare a notebook: short Spanish messages for CourseError, inline figures."""
    install_notebook_handler()
