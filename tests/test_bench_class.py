"""A small run of benchmarks/bench_class.py: a class of 4 against the Ollama double in its own process.

Counts only, no times: with a queue longer than the class every turn completes; with a shorter one the
server does answer 503, every 503 is accounted for by a retry notice or a ServerBusy, every waiting turn
showed the busy notice in its chat's status line, and nothing is lost from any history.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from course_utils import llm

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_class.py"
SMALL = dict(students=4, turns=2, token_delay=0.01, answer_words=20, think=0.0)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_class", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(llm, "BUSY_BACKOFF", 0.05)
    monkeypatch.setattr(llm, "BUSY_BACKOFF_CAP", 0.4)
    monkeypatch.setattr(llm, "BUSY_ATTEMPTS", 8)  # ~1.9 s of retries against ~0.6 s of answers ahead


def run(bench, queue: int, widget: bool = True):
    s = SMALL
    return bench.run_scenario(
        "prueba", s["students"], s["turns"], queue, s["token_delay"], s["answer_words"], s["think"], widget
    )


def test_expected_answer_has_the_words_asked_for(bench):
    text = bench.expected_answer("¿Qué ves?", 30)
    assert len(text.split(" ")) == 30 and "«¿Qué ves?»" in text
    assert "doble de pruebas" in text  # the stand-in says it is one


def test_queue_longer_than_the_class_completes_every_turn(bench, quick_retries):
    result = run(bench, queue=8)
    assert result.crashes == []
    assert result.completed == result.sent == 8
    assert result.lost == 0
    assert not result.errors
    assert result.rejected == result.retries == 0
    assert result.chats == 8  # one request per turn: nobody had to retry
    assert bench.verdict(result)[0]


@pytest.mark.parametrize("widget", [True, False], ids=["chat-widget", "conversation"])
def test_queue_shorter_than_the_class_loses_nothing_and_shows_the_busy_notice(bench, quick_retries, widget):
    result = run(bench, queue=1, widget=widget)  # room for 2 of the 4: one answering, one waiting
    assert result.crashes == []
    assert result.rejected > 0  # the short queue really turned students away
    assert result.rejected == result.busy_seen  # each 503 gave a retry notice, or was the last try
    assert result.chats == result.sent + result.rejected
    assert result.lost == 0
    assert set(result.errors) <= {"ServerBusy"}
    assert result.completed + result.errors["ServerBusy"] == result.sent
    waiting = result.waiting
    assert waiting and all(turn.saw_busy for turn in waiting)
    if widget:  # the notice came from the chat's own status line
        assert any("Servidor ocupado, reintento en" in text and "/8)" in text for t in waiting for text in t.shown)
    assert bench.verdict(result)[0]


def test_a_missing_answer_counts_as_lost(bench):
    student = bench.Student(1, 1, 0.0, widget=False, export_dir=PATH.parent)
    turn = bench.Turn(1, "¿Hola?", pieces=["Ho", "la"])
    student.done.append(turn)
    from course_utils.conversation import Message

    student.conversation.history = [Message("user", "¿Hola?"), Message("assistant", "Ho")]  # "la" went missing
    student.check(words=20)
    assert turn.lost == 1 and not turn.completed


def test_the_script_prints_its_table(bench, capsys, monkeypatch, quick_retries):
    monkeypatch.setattr(
        "sys.argv",
        [
            "bench_class.py",
            "--students",
            "2",
            "--turns",
            "1",
            "--queue",
            "4",
            "--token-delay",
            "0.005",
            "--answer-words",
            "10",
            "--think",
            "0",
        ],
    )
    with pytest.raises(SystemExit) as exit_:
        bench.main()
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "| escenario | cola |" in out and "| cola ≥ clase | 4 |" in out and "2/2" in out
    assert "no es un modelo real" in out and "cumplido" in out
