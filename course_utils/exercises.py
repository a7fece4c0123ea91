"""Self-check for the notebooks' exercises: a Spanish verdict the student gets by running a cell."""

from __future__ import annotations


def check(answer, expected, number: int | None = None, tolerance: float = 1e-4) -> bool:
    """Print whether `answer` is right and return it.

    `expected` is a value (numbers within `tolerance`, tensors element-wise, sequences item by item)
    or a function that receives the answer and says whether it is right.
    An answer still set to None means "not answered yet", never "wrong".
    """
    label = f"Ejercicio {number}: " if number is not None else ""
    if answer is None:
        print(f"{label}todavía sin responder: escribe tu respuesta y vuelve a ejecutar la celda.")
        return False
    try:
        ok = bool(expected(answer)) if callable(expected) else _same(answer, expected, tolerance)
    except (TypeError, ValueError, RuntimeError, AttributeError, KeyError, IndexError):
        ok = False  # an answer of the wrong kind is wrong, not a crash
    print(f"{label}✅ correcto." if ok else f"{label}❌ todavía no: repasa la sección y vuelve a intentarlo.")
    return ok


def _same(answer, expected, tolerance: float) -> bool:
    import torch  # heavy: only when an answer is checked

    if isinstance(expected, torch.Tensor):
        answer = torch.as_tensor(answer, dtype=expected.dtype)
        return answer.shape == expected.shape and torch.allclose(answer.double(), expected.double(), atol=tolerance)
    if isinstance(expected, tuple):
        return tuple(answer) == expected
    if isinstance(expected, float):
        return abs(float(answer) - expected) <= tolerance * max(1.0, abs(expected))
    return answer == expected
