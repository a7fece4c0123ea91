"""A whole class chatting with one Ollama at once: completed turns, lost messages, waits, retries and errors.

    python benchmarks/bench_class.py                          # 60 students, 2 turns each, queues 120 and 15
    python benchmarks/bench_class.py --students 8             # a small group
    python benchmarks/bench_class.py --queue 4 --no-widget    # one queue length, students without widgets

Each simulated student is a thread with its own headless `ChatWidget` (or only a `Conversation` with
--no-widget) that sends its turns to one server: the loopback Ollama double, started in its own process,
in its load mode (one answer generated at a time, at most `--queue` chats waiting, HTTP 503 with Ollama's
body beyond that, `--token-delay` seconds per word). The double is a stand-in: it answers filler text,
not a model, and the times are the queue's, not llama3.2-vision's. All students press Enter at the same
instant, then read for about `--think` seconds before their next question.

Per scenario it reports completed turns, lost messages (a question, or any text that arrived, missing from
the history), time to first token (p50/p95), retries (the "Servidor ocupado…" notices `llm` gave), the 503
answers the server sent, errors by class, and how many waiting turns showed the busy notice in the chat's
status line. Goals (issue 13): with a queue longer than the class, every turn completes with 0 errors and
0 lost; with a shorter queue, nothing is lost and every waiting student sees the busy notice. Where a short
queue leaves some turn in ServerBusy after llm's retries, that scenario runs again with more patient retry
settings (--patient; default 7 attempts from 2 s, doubling up to 15 s) to show what lets every turn complete.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUSY_NOTE = "Servidor ocupado"  # how `llm` starts its retry notice
PATIENT = (7, 2.0, 15.0)  # attempts, backoff, cap: all 16 turns completed with 8 students, queue 2, 4-s answers
JOIN_LIMIT = 600.0  # seconds: a student thread still running after this is reported as hung


# --- the server, in its own process --------------------------------------------------------------------


def expected_answer(question: str, words: int) -> str:
    """The double's answer to `question`: it names the question (so a mixed-up answer shows) and is
    padded with filler to exactly `words` words (at least the heading's)."""
    from tests.ollama_double import FILLER, PREFIX

    head = f"{PREFIX} Respuesta a «{question}»:".split(" ")
    filler = FILLER.split()
    body = [filler[i % len(filler)] for i in range(max(0, words - len(head)))]
    return " ".join(head + body)


def serve(queue: int, token_delay: float, words: int) -> None:
    """Child process: a double in load mode. Prints its URL; then answers each line "stats" on stdin with a
    JSON line (503 answers, chat requests); ends when stdin closes."""
    from tests.ollama_double import OllamaDouble

    class ClassDouble(OllamaDouble):
        def answer(self, body: dict) -> str:
            messages = body.get("messages") or [{}]
            return expected_answer(messages[-1].get("content", ""), words)

    double = ClassDouble(max_queue=queue, chunk_delay=token_delay).start()
    print(double.url, flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps({"rejected": double.rejected, "chats": len(double.chats())}), flush=True)
    double.stop()


class Server:
    """The double in its own process, as a real Ollama is."""

    def __init__(self, queue: int, token_delay: float, words: int):
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            "--queue",
            str(queue),
            "--token-delay",
            str(token_delay),
            "--answer-words",
            str(words),
        ]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            self.close()
            raise RuntimeError("the Ollama double did not start")

    def stats(self) -> dict:
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()


# --- the students --------------------------------------------------------------------------------------


@dataclass
class Turn:
    student: int
    question: str
    sent: float = 0.0
    first: float | None = None  # when the first piece arrived
    pieces: list[str] = field(default_factory=list)  # every piece the student's chat received
    retries: int = 0  # "Servidor ocupado, reintento…" notices from llm
    shown: list[str] = field(default_factory=list)  # the chat's status line while the turn ran
    error: str = ""  # class of the error the turn ended with
    completed: bool = False  # the whole expected answer is in the history
    lost: int = 0  # messages of this turn missing from the history (question, text received)

    @property
    def waited(self) -> bool:
        """The server answered 503 at least once to this turn."""
        return self.retries > 0 or self.error == "ServerBusy"

    @property
    def saw_busy(self) -> bool:
        return any(BUSY_NOTE in text for text in self.shown)


def measured_conversation(*args):
    """A Conversation that records, for the turn in progress, the pieces, the retry notices and the error."""
    from course_utils.conversation import Conversation

    class Measured(Conversation):
        turn: Turn

        def answer(self, question, *, on_piece=None, on_status=None, cancel=None):
            turn = self.turn

            def piece(text: str) -> None:
                if turn.first is None:
                    turn.first = time.monotonic()
                turn.pieces.append(text)
                if on_piece:
                    on_piece(text)

            def status(text: str) -> None:
                turn.retries += BUSY_NOTE in text
                if on_status:
                    on_status(text)
                else:  # no widget: what llm says is what the student would be shown
                    turn.shown.append(text)

            try:
                return super().answer(question, on_piece=piece, on_status=status, cancel=cancel)
            except Exception as exc:
                turn.error = type(exc).__name__
                raise

    return Measured(*args)


class Student:
    def __init__(self, number: int, turns: int, think: float, widget: bool, export_dir: Path):
        self.number, self.turns, self.think = number, turns, think
        self.done: list[Turn] = []
        self.crash = ""
        self.current: Turn | None = None
        if widget:
            from course_utils.chat import ChatWidget

            self.chat = ChatWidget(export_dir=export_dir)
            old = self.chat.conversation
            conversation = self.chat.conversation = measured_conversation(old.model, old.temperature, old.system)
            self.chat.status.observe(self._status, "value")
        else:
            self.chat = None
            conversation = measured_conversation()
        self.conversation = conversation

    def _status(self, change) -> None:
        if self.current is not None:
            self.current.shown.append(change["new"])

    def run(self, start: threading.Barrier, rng: random.Random) -> None:
        from course_utils.conversation import Message
        from course_utils.errors import CourseError

        try:
            start.wait()
            for index in range(1, self.turns + 1):
                question = f"Alumno {self.number}, pregunta {index}: ¿qué hace la atención en un transformer?"
                turn = Turn(self.number, question)
                self.conversation.turn = self.current = turn
                turn.sent = time.monotonic()
                if self.chat is not None:
                    if not self.chat.send(turn.question):
                        raise RuntimeError("the chat refused to send")
                    self.chat.wait()
                else:
                    try:
                        self.conversation.answer(Message("user", turn.question))
                    except CourseError:
                        pass  # recorded in the turn; the conversation keeps it
                self.current = None
                self.done.append(turn)
                if self.think and index < self.turns:
                    time.sleep(self.think * rng.uniform(0.5, 1.5))
        except Exception as exc:  # noqa: BLE001 - a harness failure is reported, not hidden
            self.crash = f"{type(exc).__name__}: {exc}"

    def check(self, words: int) -> None:
        """Compare each turn with the history: the question, then everything that arrived."""
        history = self.conversation.history
        for i, turn in enumerate(self.done):
            asked = history[2 * i] if 2 * i < len(history) else None
            answer = history[2 * i + 1] if 2 * i + 1 < len(history) else None
            turn.lost += not (asked is not None and asked.role == "user" and asked.content == turn.question)
            received = "".join(turn.pieces)
            turn.lost += not (answer is not None and answer.role == "assistant" and answer.content == received)
            turn.completed = (
                not turn.error and answer is not None and answer.content == expected_answer(turn.question, words)
            )


# --- one scenario ------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    students: int
    turns: int
    queue: int
    attempts: int
    backoff: float
    cap: float
    widget: bool
    done: list[Turn]
    crashes: list[str]
    rejected: int
    chats: int
    seconds: float

    @property
    def sent(self) -> int:
        return self.students * self.turns

    @property
    def completed(self) -> int:
        return sum(t.completed for t in self.done)

    @property
    def lost(self) -> int:
        return sum(t.lost for t in self.done) + 2 * (self.sent - len(self.done))  # turns never recorded

    @property
    def retries(self) -> int:
        return sum(t.retries for t in self.done)

    @property
    def errors(self) -> Counter:
        return Counter(t.error for t in self.done if t.error)

    @property
    def busy_seen(self) -> int:
        """503 answers the students' chats account for: one per retry notice, plus the last one of a
        turn that ended in ServerBusy."""
        return self.retries + self.errors["ServerBusy"]

    @property
    def waiting(self) -> list[Turn]:
        return [t for t in self.done if t.waited]

    def ttft(self, share: float) -> float | None:
        times = sorted(t.first - t.sent for t in self.done if t.completed)
        return times[max(0, math.ceil(share * len(times)) - 1)] if times else None


def retry_window(attempts: int, backoff: float, cap: float) -> float:
    """Nominal seconds a request keeps retrying a busy server before ServerBusy (jitter ±25 % aside)."""
    return sum(min(backoff * 2 ** (k - 1), cap) for k in range(1, attempts))


def run_scenario(
    name: str,
    students: int,
    turns: int,
    queue: int,
    token_delay: float,
    words: int,
    think: float = 0.0,
    widget: bool = True,
    attempts: int | None = None,
    backoff: float | None = None,
    cap: float | None = None,
    seed: int = 13,
) -> Result:
    """Start a double with this queue, run the class against it, and collect the counts. `attempts`,
    `backoff` and `cap` replace llm's BUSY_* settings for this run (None keeps them)."""
    from course_utils import llm

    saved = llm.BUSY_ATTEMPTS, llm.BUSY_BACKOFF, llm.BUSY_BACKOFF_CAP
    llm.BUSY_ATTEMPTS = saved[0] if attempts is None else attempts
    llm.BUSY_BACKOFF = saved[1] if backoff is None else backoff
    llm.BUSY_BACKOFF_CAP = saved[2] if cap is None else cap
    settings = llm.BUSY_ATTEMPTS, llm.BUSY_BACKOFF, llm.BUSY_BACKOFF_CAP
    server = Server(queue, token_delay, words)
    host = os.environ.get("OLLAMA_HOST")
    os.environ["OLLAMA_HOST"] = server.url
    try:
        export_dir = ROOT / ".cache" / "bench" / "class"
        class_ = [Student(n, turns, think, widget, export_dir) for n in range(1, students + 1)]
        start = threading.Barrier(students + 1)
        threads = [
            threading.Thread(target=s.run, args=(start, random.Random(seed + s.number)), daemon=True) for s in class_
        ]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.monotonic()
        deadline = began + JOIN_LIMIT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        seconds = time.monotonic() - began
        crashes = [f"alumno {s.number}: {s.crash}" for s in class_ if s.crash]
        crashes += [f"alumno {s.number}: sigue sin terminar" for s, t in zip(class_, threads) if t.is_alive()]
        for student in class_:
            student.check(words)
        stats = server.stats()
    finally:
        server.close()
        llm.BUSY_ATTEMPTS, llm.BUSY_BACKOFF, llm.BUSY_BACKOFF_CAP = saved
        if host is None:
            os.environ.pop("OLLAMA_HOST", None)
        else:
            os.environ["OLLAMA_HOST"] = host
    return Result(
        name,
        students,
        turns,
        queue,
        *settings,
        widget,
        [t for s in class_ for t in s.done],
        crashes,
        stats["rejected"],
        stats["chats"],
        seconds,
    )


# --- the report --------------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _errors(result: Result) -> str:
    return ", ".join(f"{name} × {count}" for name, count in sorted(result.errors.items())) or "0"


def table(results: list[Result]) -> str:
    lines = [
        "| escenario | cola | reintentos | turnos completos | mensajes perdidos | "
        "1.er token p50 (s) | p95 (s) | avisos de reintento | 503 servidor / contados | errores | "
        "turnos en espera con aviso visible | duración (s) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        waiting = r.waiting
        lines.append(
            f"| {r.name} | {r.queue} | {r.attempts} intentos, {r.backoff:g} s ×2, máx. {r.cap:g} s "
            f"(~{retry_window(r.attempts, r.backoff, r.cap):g} s) | {r.completed}/{r.sent} | {r.lost} | "
            f"{_s(r.ttft(0.5))} | {_s(r.ttft(0.95))} | {r.retries} | {r.rejected} / {r.busy_seen} | {_errors(r)} | "
            f"{sum(t.saw_busy for t in waiting)}/{len(waiting)} | {r.seconds:.1f} |"
        )
    return "\n".join(lines)


def verdict(result: Result) -> tuple[bool, str]:
    """Whether the scenario meets its goal (issue 13), and why, in Spanish."""
    problems = [*result.crashes]
    if result.rejected != result.busy_seen:
        problems.append(
            f"el servidor envió {result.rejected} respuestas 503 y los alumnos dan cuenta de {result.busy_seen}"
        )
    if result.lost:
        problems.append(f"{result.lost} mensajes perdidos")
    if result.queue >= result.students:
        goal = "objetivo: todos los turnos completos, 0 errores, 0 perdidos"
        if result.completed < result.sent:
            problems.append(f"{result.sent - result.completed} turnos sin completar")
        if result.errors:
            problems.append(f"errores: {_errors(result)}")
    else:
        goal = "objetivo: nada perdido y cada alumno en espera ve el aviso de ocupado"
        unseen = [t for t in result.waiting if not t.saw_busy]
        if unseen:
            problems.append(f"{len(unseen)} turnos esperaron sin ver el aviso")
        other = {name: n for name, n in result.errors.items() if name != "ServerBusy"}
        if other:
            problems.append(f"errores distintos de ServerBusy: {other}")
    if problems:
        return False, f"{result.name} ({goal}): NO cumplido: " + "; ".join(problems) + "."
    note = ""
    if result.queue < result.students:
        busy = result.errors["ServerBusy"]
        note = f" Turnos completos: {result.completed}/{result.sent}; " + (
            f"terminados en ServerBusy tras {result.attempts} intentos: {busy} (la pregunta queda en el "
            "historial y el chat la devuelve al cuadro de texto)."
            if busy
            else "ninguno terminó en ServerBusy."
        )
    return True, f"{result.name} ({goal}): cumplido.{note}"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=60, help="simulated students (default 60, a full lab)")
    parser.add_argument("--turns", type=int, default=2, help="questions per student (default 2)")
    parser.add_argument(
        "--queue",
        type=int,
        nargs="+",
        help="the double's max_queue, one scenario each (default: 2 × students and students ÷ 4)",
    )
    parser.add_argument("--token-delay", type=float, default=0.02, help="seconds per streamed word (default 0.02)")
    parser.add_argument("--answer-words", type=int, default=40, help="words per answer (default 40)")
    parser.add_argument(
        "--think", type=float, default=1.0, help="seconds a student reads before the next question, ±50 %% (default 1)"
    )
    parser.add_argument("--no-widget", action="store_true", help="students with a Conversation only, no ChatWidget")
    parser.add_argument(
        "--patient",
        type=float,
        nargs=3,
        metavar=("ATTEMPTS", "BACKOFF", "CAP"),
        help="retry settings tried again on a short queue where some turn ended in ServerBusy "
        "(default 7 2 15); given, they are tried on every short queue",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.queue[0], args.token_delay, args.answer_words)

    queues = args.queue or [2 * args.students, max(1, args.students // 4)]
    who = "ChatWidget sin navegador" if not args.no_widget else "Conversation sin widget"
    answer_seconds = args.answer_words * args.token_delay
    print(
        f"Servidor: doble de pruebas de Ollama en otro proceso (no es un modelo real): una respuesta a la vez, "
        f"{args.answer_words} palabras a {args.token_delay:g} s cada una (~{answer_seconds:.1f} s por respuesta), "
        f"hasta «cola» peticiones esperando y 503 con la cola llena."
    )
    print(
        f"Clase: {args.students} alumnos ({who}, un hilo cada uno), {args.turns} preguntas cada uno, todos a la vez; "
        f"~{args.think:g} s de lectura entre preguntas.\n"
    )
    print(table([]), flush=True)
    results = []
    attempts, backoff, cap = (int(args.patient[0]), *args.patient[1:]) if args.patient else PATIENT
    for queue in queues:
        kind = "cola ≥ clase" if queue >= args.students else "cola < clase"
        scenario = functools.partial(
            run_scenario,
            students=args.students,
            turns=args.turns,
            queue=queue,
            token_delay=args.token_delay,
            words=args.answer_words,
            think=args.think,
            widget=not args.no_widget,
        )
        results.append(scenario(kind))
        print(table(results[-1:]).splitlines()[-1], flush=True)
        if queue < args.students and (args.patient or results[-1].errors["ServerBusy"]):
            results.append(scenario(f"{kind}, más paciencia", attempts=attempts, backoff=backoff, cap=cap))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    print()
    all_met = True
    for result in results:
        met, text = verdict(result)
        all_met &= met
        print(f"- {text}")
        if result.queue < result.students:
            print(
                f"  Se reintenta durante ~{retry_window(result.attempts, result.backoff, result.cap):g} s; con "
                f"toda la clase preguntando a la vez, la última respuesta empieza tras ~"
                f"{(result.students - 1) * answer_seconds:.1f} s ({result.students - 1} × {answer_seconds:.1f} s), "
                "y quien espera reintentando no guarda su sitio."
            )
    print(f"\nMáquina: {cpu_name()}, {os.cpu_count()} núcleos. Tiempos del doble (cola), no de llama3.2-vision.")
    sys.exit(0 if all_met else 1)


if __name__ == "__main__":
    main()
