"""The exercises' self-check: unanswered is not wrong, and a wrong answer is never called right."""

import torch

from course_utils.exercises import check


def test_unanswered_is_reported_not_failed(capsys):
    assert not check(None, 3, number=2)
    assert "Ejercicio 2: todavía sin responder" in capsys.readouterr().out


def test_values_tensors_tuples_and_floats(capsys):
    assert check(3, 3) and not check(4, 3)
    assert check([[1, 0], [1, 1]], torch.tril(torch.ones(2, 2)))
    assert not check([[1, 0], [0, 1]], torch.ones(2, 2))
    assert not check("hola", torch.ones(2))  # not a number: wrong, not a crash
    assert check([3, 7], (3, 7)) and not check((7, 3), (3, 7))
    assert check(0.25, 1 / 4) and not check(0.3, 1 / 4)
    assert check(0.41, 0.4, tolerance=0.02) and not check(0.45, 0.4, tolerance=0.02)
    out = capsys.readouterr().out
    assert "✅ correcto." in out and "❌ todavía no" in out


def test_predicate(capsys):
    assert check({"a": 1}, lambda r: r.get("a") == 1, number=1)
    assert not check({"a": 2}, lambda r: r.get("a") == 1, number=1)
    assert not check(5, lambda r: r.get("a") == 1)  # a predicate that raises means wrong
    assert "Ejercicio 1: ✅ correcto." in capsys.readouterr().out
