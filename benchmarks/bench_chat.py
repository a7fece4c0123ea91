"""How long the chat widget takes to show a long streamed answer, next to `llm.ask` on the same server.

    python benchmarks/bench_chat.py                 # answers of 10 KB, 200 KB and 1 MB
    python benchmarks/bench_chat.py --sizes 50000   # other sizes, in characters

Both read the same Markdown answer, one word per line as Ollama streams it, from the loopback Ollama double
running in its own process, as a real server does (a stand-in that answers at once, so the time is the
client's own work). `llm.ask` only joins the pieces: it is the limit for any client. The widget also renders
the Markdown into its bubble while the answer arrives (code highlighted by Pygments, maths converted to
MathML); the goal is at most 1.5 × `ask`. The CPU columns count this process's processor time, all threads:
on a shared machine they move less than the wall-clock ones.
With --before, the widget also renders the whole answer every 50 ms whatever the cost, as it did before
(slow: use it with small sizes).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Each block's formula and code differ (n counts the blocks): the renderer's caches only spare it the
# unfinished block that it renders again while the answer grows, as in a real answer.
BLOCK = (
    "## Sección\n\nUn párrafo con **negrita**, `código` y una fórmula $x_{{{n}}}^2$ que se alarga para "
    "parecerse a una respuesta real del modelo, con varias frases seguidas.\n\n- un punto\n- otro punto\n\n"
    "```python\nfor i in range({n}):\n    print(i)\n```\n\n| a | b |\n|---|---|\n| {n} | 2 |\n\n"
)


def answer_of(size: int) -> str:
    blocks, length = [], 0
    while length < size:
        blocks.append(BLOCK.format(n=len(blocks)))
        length += len(blocks[-1])
    return "".join(blocks)[:size]


def serve(text: str, count: int, ready) -> None:
    """In a child process: a double that gives `text` as its next `count` answers."""
    from tests.ollama_double import OllamaDouble

    double = OllamaDouble(replies=[text] * count).start()
    ready.send(double.url)
    threading.Event().wait()


def time_ask(text: str) -> tuple[float, float]:
    """Wall and CPU seconds (this process, all threads) for `llm.ask` to receive the answer."""
    from course_utils import llm

    started, cpu = time.perf_counter(), time.process_time()
    got = llm.ask("Escribe mucho")
    elapsed = time.perf_counter() - started, time.process_time() - cpu
    assert got == text, "ask did not receive the whole answer"
    return elapsed


def time_widget(text: str, render_share: float | None = None) -> tuple[float, float]:
    """Wall and CPU seconds for the chat widget to receive and show the answer."""
    from course_utils import chat

    widget = chat.ChatWidget(export_dir=ROOT / ".cache" / "bench" / "chat")
    saved = chat._LiveAnswer.RENDER_SHARE
    if render_share is not None:
        chat._LiveAnswer.RENDER_SHARE = render_share
    try:
        started, cpu = time.perf_counter(), time.process_time()
        widget.send("Escribe mucho")
        widget.wait()
        elapsed = time.perf_counter() - started, time.process_time() - cpu
    finally:
        chat._LiveAnswer.RENDER_SHARE = saved
    assert widget.history[-1].content == text, "the widget did not keep the whole answer"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 200_000, 1_000_000])
    parser.add_argument("--before", action="store_true", help="also time the old render-every-50-ms widget")
    args = parser.parse_args()

    print("Servidor: doble de pruebas de Ollama en otro proceso (no es un modelo real; responde sin esperar).\n")
    header = "| respuesta | `llm.ask` (s) | chat (s) | chat / ask | CPU `ask` (s) | CPU chat (s) | CPU chat / ask |"
    print(header + (" antes (s) |" if args.before else ""))
    print("|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if args.before else ""))
    for size in args.sizes:
        text = answer_of(size)
        receive, send = multiprocessing.Pipe(duplex=False)
        server = multiprocessing.Process(target=serve, args=(text, 5, send), daemon=True)
        server.start()
        os.environ["OLLAMA_HOST"] = receive.recv()
        try:
            # the best of two: the first call also warms up the client (and the renderer's imports)
            asks, widgets = [time_ask(text) for _ in range(2)], [time_widget(text) for _ in range(2)]
            (ask, ask_cpu), (widget, widget_cpu) = map(min, zip(*asks)), map(min, zip(*widgets))
            row = f"| {size / 1000:g} KB | {ask:.2f} | {widget:.2f} | {widget / ask:.2f} |"
            row += f" {ask_cpu:.2f} | {widget_cpu:.2f} | {widget_cpu / ask_cpu:.2f} |"
            if args.before:
                row += f" {time_widget(text, render_share=float('inf'))[0]:.2f} |"
            print(row, flush=True)
        finally:
            server.kill()
    print(f"\nObjetivo: chat / ask ≤ 1.5. Máquina: {os.cpu_count()} núcleos.")
    print("CPU: segundos de procesador de este proceso (el cliente), que cambian poco con la carga de la máquina.")


if __name__ == "__main__":
    main()
