"""Self-check for the notebooks' exercises: a Spanish verdict the student gets by running a cell."""

from __future__ import annotations

import sys
import types
from contextlib import contextmanager
from unittest import mock


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


@contextmanager
def forbid(owner, name: str, error: BaseException, namespace: dict | None = None):
    """While it lasts, `owner.name` raises `error`: the exercise must be solved without it.

    `mock.patch.object` alone only replaces the attribute: a function of the notebook that keeps the
    reference under another name (`from module import name as other`, a default argument, a closure)
    would still reach it. So, first, every function of the notebook (`namespace`: the notebook's
    globals, found by itself) is looked at, and one that holds the reference makes the test fail too.
    """
    original = getattr(owner, name)
    namespace = _notebook_namespace() if namespace is None else namespace
    holders = sorted(_holders(namespace, original))
    if holders:
        raise AssertionError(f"{error} (también con otro nombre: {', '.join(holders)})")
    with mock.patch.object(owner, name, side_effect=error):
        yield


def _notebook_namespace() -> dict:
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") != "__main__":
        frame = frame.f_back
    return frame.f_globals if frame is not None else vars(sys.modules["__main__"])


def _is_reference(candidate, original) -> bool:
    for inner in (candidate, getattr(candidate, "func", None), getattr(candidate, "__func__", None)):
        if inner is original or (inner is not None and getattr(inner, "__wrapped__", None) is original):
            return True
    return False


def _holders(namespace: dict, original) -> set[str]:
    """Names of the notebook's functions that hold `original`, and under which name."""
    found = set()
    for function in list(namespace.values()):
        if not isinstance(function, types.FunctionType) or function.__module__ != "__main__":
            continue
        held = [(n, function.__globals__.get(n)) for n in _global_names(function.__code__)]
        held += [(v, c.cell_contents) for v, c in zip(function.__code__.co_freevars, function.__closure__ or ())
                 if c.cell_contents is not c]  # fmt: skip
        held += [("argumento por defecto", d) for d in (function.__defaults__ or ())]
        held += list((function.__kwdefaults__ or {}).items())
        for label, value in held:
            items = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
            items = value.values() if isinstance(value, dict) else items
            if any(_is_reference(item, original) for item in items):
                found.add(f"{function.__name__} → {label}")
    return found


def _global_names(code) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names
