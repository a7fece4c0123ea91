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


def test_forbid_catches_the_reference_under_another_name():
    """`mock.patch.object` alone misses `from module import reference as other`: forbid() does not."""
    import types

    from course_utils import attention, exercises

    error = AssertionError("Escribe la atención tú.")
    namespace = {"__name__": "__main__"}
    exec(  # what a student writes in a solution cell
        "from course_utils.attention import scaled_dot_product_attention as _f\n"
        "def by_alias(q, k, v):\n    return _f(q, k, v)\n"
        "def by_default(q, k, v, f=_f):\n    return f(q, k, v)\n"
        "def by_module(q, k, v):\n    return attention.scaled_dot_product_attention(q, k, v)\n"
        "def honest(q, k, v):\n    return (q @ k.transpose(-2, -1)).softmax(-1) @ v\n",
        namespace,
    )
    namespace["attention"] = attention
    q = torch.ones(1, 2, 4)
    for name in ("by_alias", "by_default", "by_module"):
        try:
            with exercises.forbid(attention, "scaled_dot_product_attention", error, namespace=namespace):
                namespace[name](q, q, q)
        except AssertionError as raised:
            assert "Escribe la atención tú." in str(raised)
        else:
            raise AssertionError(f"{name} llamó a la referencia y forbid() no lo vio")
    for name in ("by_alias", "by_default"):
        only = {k: v for k, v in namespace.items() if not isinstance(v, types.FunctionType) or k == name}
        try:
            with exercises.forbid(attention, "scaled_dot_product_attention", error, namespace=only):
                pass
        except AssertionError as raised:
            assert name in str(raised)
        else:
            raise AssertionError(f"{name}: forbid() no vio el alias")
    honest = {"honest": namespace["honest"], "__name__": "__main__"}
    with exercises.forbid(attention, "scaled_dot_product_attention", error, namespace=honest):
        assert namespace["honest"](q, q, q).shape == (1, 2, 4)
    assert attention.scaled_dot_product_attention(q, q, q)[0].shape == (1, 2, 4)  # put back afterwards
