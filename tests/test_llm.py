"""course_utils.llm against the loopback Ollama double: what reaches the server, and every error."""

import base64
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from course_utils import llm, vision_models
from course_utils.errors import (
    Cancelled,
    ConfigError,
    ImageError,
    ModelNotPulled,
    OllamaError,
    ServerBusy,
    ServerTimeout,
    ServerUnreachable,
    StreamCut,
    TooManyImages,
)
from tests.ollama_double import BUSY_ERROR, ERROR_LINE, MALFORMED_LINE, NON_OBJECT_LINES, PREFIX, split_pieces

LIMIT = 10.0  # seconds: a generous bound for "returns instead of hanging"


def sent(double) -> dict:
    """The body the server received, without the empty fields the official client adds (tools: [])."""
    (body,) = double.chats()
    return {key: value for key, value in body.items() if value not in ([], None)}


def decode(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_the_server_receives_exactly_build_request(ollama_double, samples):
    args = dict(
        prompt="describe la imagen",
        images=[samples / "gato.jpg"],
        system="Responde en español.",
        temperature=0.2,
        seed=7,
        top_p=0.9,
        num_ctx=4096,
        num_predict=64,
        keep_alive="10m",
    )
    expected = llm.build_request(**args)
    answer = llm.ask(**args)

    assert answer.startswith(PREFIX)
    assert sent(ollama_double) == expected
    assert expected["model"] == "llama3.2-vision"
    assert [m["role"] for m in expected["messages"]] == ["system", "user"]
    assert expected["options"] == {"temperature": 0.2, "seed": 7, "top_p": 0.9, "num_ctx": 4096, "num_predict": 64}
    assert expected["keep_alive"] == "10m" and "keep_alive" not in expected["options"]


def test_images_arrive_as_base64_of_the_prepared_image(ollama_double, samples):
    llm.ask("describe la imagen", images=samples / "gato.jpg")
    (data,) = sent(ollama_double)["messages"][-1]["images"]
    assert base64.b64decode(data) == llm.prepare_image(samples / "gato.jpg")
    image = decode(data)
    assert image.format == "JPEG" and image.mode == "RGB"
    assert image.size == Image.open(samples / "gato.jpg").size  # small enough: not resized


@pytest.mark.parametrize("kind", ["path", "bytes", "pil", "numpy"])
def test_every_image_kind_is_prepared_as_rgb_jpeg_within_the_maximum_side(kind, tmp_path):
    picture = Image.new("RGBA", (3000, 1500), (200, 30, 30, 128))
    picture.save(tmp_path / "big.png")
    source = {
        "path": tmp_path / "big.png",
        "bytes": (tmp_path / "big.png").read_bytes(),
        "pil": picture,
        "numpy": np.asarray(picture),
    }[kind]
    request = llm.build_request("¿qué ves?", images=source)
    image = decode(request["messages"][-1]["images"][0])
    assert (image.format, image.mode) == ("JPEG", "RGB")
    width, height = image.size
    assert width * height <= llm.MAX_IMAGE_PIXELS and width == 2 * height and width > 1120


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((2240, 560), (2240, 560)),  # a panorama fills a 1×4 layout at full resolution
        ((600, 2400), (560, 2240)),  # a receipt: 4×1 tiles of 560
        ((1120, 1120), (1120, 1120)),  # 2×2
        ((8000, 1000), (2240, 280)),  # no side longer than 4 tiles
    ],
)
def test_images_keep_what_four_tiles_can_hold(size, expected):
    prepared = Image.open(io.BytesIO(llm.prepare_image(Image.new("RGB", size, "blue"))))
    assert prepared.size == expected


def test_too_many_images_fail_before_anything_is_sent(ollama_double, samples):
    with pytest.raises(TooManyImages, match="2 imágenes"):
        llm.ask("compara", images=[samples / "gato.jpg", samples / "cafe.jpg"])
    history = [{"role": "user", "content": "mira", "images": [samples / "gato.jpg", samples / "cafe.jpg"]}]
    with pytest.raises(TooManyImages):
        llm.build_request("¿y ahora?", history=history)
    assert ollama_double.chats() == []


def test_the_servers_image_limit_is_also_explained(ollama_double, samples, monkeypatch):
    # as if the kit believed the model took two images: the server's own refusal is explained
    two_per_message = vision_models.ModelProfile("x", "qwen25vl", ("vision",))
    monkeypatch.setattr(llm, "model_profile", lambda model=None, host=None: two_per_message)
    with pytest.raises(TooManyImages, match="only supports one image"):
        llm.ask("compara", images=[samples / "gato.jpg", samples / "cafe.jpg"])


def test_a_file_that_is_not_an_image_is_a_spanish_error(tmp_path):
    (tmp_path / "notas.jpg").write_text("no soy una foto")
    with pytest.raises(ImageError, match="no es una imagen"):
        llm.build_request("describe", images=tmp_path / "notas.jpg")


def test_history_is_sent_in_order_after_the_system_prompt(ollama_double, samples):
    history = [
        {"role": "user", "content": "Hola, soy Ana.", "images": [samples / "cafe.jpg"]},
        {"role": "assistant", "content": "Hola, Ana. Veo una taza de café."},
        {"role": "user", "content": "¿De qué color es?"},
        {"role": "assistant", "content": "Blanca."},
    ]
    llm.ask("¿Cómo me llamo?", system="Eres breve.", history=history)
    messages = sent(ollama_double)["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("system", "Eres breve."),
        *[(m["role"], m["content"]) for m in history],
        ("user", "¿Cómo me llamo?"),
    ]
    assert base64.b64decode(messages[1]["images"][0]) == llm.prepare_image(samples / "cafe.jpg")
    assert [("images" in m) for m in messages] == [False, True, False, False, False, False]


def test_a_bad_history_entry_is_explained():
    with pytest.raises(OllamaError, match="historial"):
        llm.build_request("¿y?", history=[{"role": "robot", "content": "bip"}])


def test_stream_yields_pieces_that_reassemble_the_answer(ollama_double):
    reply = "Una respuesta con varias palabras, acentos: árbol, niño y canción."
    ollama_double.replies.append(reply)
    pieces = list(llm.stream("cuéntame algo"))
    assert len(pieces) > 5
    assert "".join(pieces) == reply


def test_a_cut_stream_keeps_the_partial_answer(ollama_double):
    ollama_double.replies.append("uno dos tres cuatro cinco seis")
    ollama_double.cut_after_chunks = 3
    received = []
    with pytest.raises(StreamCut) as cut:
        for piece in llm.stream("cuenta"):
            received.append(piece)
    assert cut.value.partial == "uno dos tres " == "".join(received)
    assert "se cortó" in cut.value.message


def test_ask_on_a_cut_stream_raises_with_the_partial(ollama_double):
    ollama_double.cut_after_chunks = 2
    with pytest.raises(StreamCut) as cut:
        llm.ask("hola")
    assert cut.value.partial == f"{PREFIX.split()[0]} de "


def test_an_unknown_model_says_how_to_pull_it(ollama_double):
    with pytest.raises(ModelNotPulled) as error:
        llm.ask("hola", model="llava-que-no-existe")
    assert "llava-que-no-existe" in error.value.message
    assert "ollama pull llava-que-no-existe" in error.value.hint


def test_a_server_failure_is_explained(ollama_double):
    ollama_double.failures.append((500, "llama runner process has terminated: signal: killed"))
    with pytest.raises(OllamaError) as error:
        llm.ask("hola")
    assert type(error.value) is OllamaError
    assert "500" in error.value.message and "ollama serve" in error.value.hint


def test_a_closed_port_says_to_start_the_server(closed_port, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", closed_port)
    with pytest.raises(ServerUnreachable) as error:
        llm.ask("hola")
    assert closed_port in error.value.message and "ollama serve" in error.value.hint
    status = llm.check_server()
    assert not status.reachable and not status.ok and isinstance(status.error, ServerUnreachable)
    assert "ollama serve" in status.error.hint


def test_a_server_that_never_answers_times_out(monkeypatch):
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{silent.getsockname()[1]}")
        with pytest.raises(ServerTimeout, match="a tiempo"):
            llm.ask("hola", timeout=0.3)


def test_a_stream_that_stalls_midway_keeps_the_partial(ollama_double):
    ollama_double.replies.append("primero segundo tercero")
    ollama_double.chunk_delay = 5.0  # the double stops waiting as soon as the client leaves
    with pytest.raises(StreamCut) as cut:
        llm.ask("hola", timeout=1.0)
    assert cut.value.partial == "primero "
    assert "tiempo" in cut.value.message


def test_check_server_lists_the_pulled_models(ollama_double):
    ollama_double.models = ["llama3.2-vision:latest", "llava:7b"]
    status = llm.check_server()
    assert status.ok and status.version and status.models == ["llama3.2-vision:latest", "llava:7b"]
    assert not llm.check_server("moondream").model_pulled


def test_check_server_says_when_the_model_is_not_pulled(ollama_double):
    ollama_double.models = ["llava:7b"]
    status = llm.check_server()
    assert status.reachable and not status.model_pulled
    assert isinstance(status.error, ModelNotPulled) and "ollama pull llama3.2-vision" in status.error.hint


def test_check_server_recognises_a_host_that_is_not_ollama(monkeypatch):
    class Handler(BaseHTTPRequestHandler):  # another web server: 404 for /api/version
        def do_GET(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{server.server_address[1]}")
        status = llm.check_server()
    finally:
        server.shutdown()
        server.server_close()
    assert not status.reachable and "no es un servidor de Ollama" in status.error.message
    assert "OLLAMA_HOST" in status.error.hint


def test_unknown_options_and_empty_messages_are_refused():
    with pytest.raises(OllamaError, match="temprature"):
        llm.build_request("hola", temprature=0.5)
    with pytest.raises(OllamaError, match="vacío"):
        llm.build_request("   ")


@pytest.mark.parametrize(
    "prompt, kind",
    [
        (["¿qué", "ves?"], "una lista"),
        (42, "un número"),
        (3.5, "un número"),
        (None, "None"),
        (b"hola", "bytes"),
        ({"content": "hola"}, "un diccionario"),
        (("a", "b"), "una tupla"),
    ],
)
def test_a_prompt_that_is_not_text_says_it_must_be_text(ollama_double, samples, prompt, kind):
    for images in (None, samples / "gato.jpg"):  # with an image too: the image alone would be a valid message
        with pytest.raises(OllamaError) as error:
            llm.ask(prompt, images=images)
        assert type(error.value) is OllamaError
        assert error.value.message == f"La pregunta debe ser una cadena de texto, no {kind}."
        assert "comillas" in error.value.hint and "vacío" not in str(error.value)
    assert ollama_double.chats() == []


def test_history_text_that_is_not_a_string_names_its_kind():
    with pytest.raises(OllamaError, match="debe ser una cadena de texto, no una lista"):
        llm.build_request("¿y?", history=[{"role": "user", "content": ["hola"]}])


@pytest.mark.parametrize(
    "name, tag",
    [
        ("llama3.2-vision", "llama3.2-vision:latest"),  # no tag means :latest, as `ollama list` shows it
        ("llama3.2-vision:latest", "llama3.2-vision:latest"),
        ("llama3.2-vision:11b", "llama3.2-vision:11b"),
        ("llava:7b-v1.6-mistral-q4_0", "llava:7b-v1.6-mistral-q4_0"),
        ("usuario/modelo", "usuario/modelo:latest"),
        ("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M", "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"),
        ("registro.lab:5000/curso/llava", "registro.lab:5000/curso/llava:latest"),  # a port is not a tag
        ("registro.lab:5000/curso/llava:7b", "registro.lab:5000/curso/llava:7b"),
    ],
)
def test_full_tag_adds_latest_only_when_there_is_no_tag(name, tag):
    assert llm.full_tag(name) == tag


def test_a_model_without_tag_is_found_among_the_pulled_ones():
    status = llm.ServerStatus("http://x:1", "llava", reachable=True, models=["llava:latest", "llama3.2-vision:11b"])
    assert status.model_pulled
    assert not llm.ServerStatus(
        "http://x:1", "llama3.2-vision", reachable=True, models=["llama3.2-vision:11b"]
    ).model_pulled


def test_none_options_are_left_out_and_the_model_can_be_chosen():
    request = llm.build_request("hola", model="llava:7b", temperature=None, seed=3)
    assert request["model"] == "llava:7b" and request["options"] == {"seed": 3}
    assert "keep_alive" not in llm.build_request("hola")


def test_format_request_shortens_images_for_display(samples):
    request = llm.build_request("describe", images=samples / "gato.jpg")
    data = request["messages"][-1]["images"][0]
    shown = llm.format_request(request)
    assert data[:40] in shown and data not in shown and f"({len(data)} caracteres en base64)" in shown
    assert request["messages"][-1]["images"][0] == data  # the request itself is untouched


# --- errors that tell the truth ---------------------------------------------------------------------


def test_an_html_error_page_from_a_proxy_is_summarised_in_one_line(ollama_double):
    ollama_double.html_failures.append(502)
    with pytest.raises(OllamaError) as error:
        llm.ask("hola")
    message = error.value.message
    assert "502" in message and "Bad Gateway" in message
    assert "<" not in message and "nginx" not in message and "\n" not in message
    assert "proxy" in error.value.hint and "memoria" not in error.value.hint


def test_a_long_error_text_is_truncated(ollama_double):
    ollama_double.failures.append((500, "fallo " * 500))
    with pytest.raises(OllamaError) as error:
        llm.ask("hola")
    assert "500" in error.value.message and len(error.value.message) < 300


BAD_LINES = {
    "malformed": MALFORMED_LINE,
    "object without message": "{}",
    "message not an object": '{"message": 5}',
    **{f"non-object {line}": line for line in NON_OBJECT_LINES},
}
# What the JSON parser and pydantic write in English: never in a student's message.
PARSER_JARGON = (
    "Unterminated",
    "Expecting",
    "validation error",
    "Field required",
    "input_value",
    "char ",
    "For further",
    "errors.pydantic",
    "line 1 column",
    "AttributeError",
)


def plain_spanish(message: str) -> bool:
    return not [word for word in PARSER_JARGON if word in message] and len(message) <= 160


@pytest.mark.parametrize("line", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_a_bad_line_midway_keeps_the_partial_answer(ollama_double, line):
    ollama_double.replies.append("uno dos tres cuatro")
    ollama_double.line_after_chunks = (2, line)
    received = []
    with pytest.raises(StreamCut) as cut:
        for piece in llm.stream("cuenta"):
            received.append(piece)
    assert cut.value.partial == "uno dos " == "".join(received)
    assert "llegó una línea que no se entiende" in cut.value.message and "conexión" not in cut.value.message
    assert plain_spanish(cut.value.message), cut.value.message
    assert ("no es un objeto JSON" in cut.value.message) == (line in NON_OBJECT_LINES)


@pytest.mark.parametrize("line", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_a_bad_first_line_says_the_answer_is_not_understood(ollama_double, line):
    ollama_double.line_after_chunks = (0, line)
    with pytest.raises(OllamaError) as error:
        llm.ask("hola")
    assert type(error.value) is OllamaError and "no se entiende" in error.value.message
    assert plain_spanish(error.value.message), error.value.message
    assert ("no es un objeto JSON" in error.value.message) == (line in NON_OBJECT_LINES)


def test_an_error_line_midway_keeps_the_partial_and_says_what_the_server_said(ollama_double):
    ollama_double.replies.append("uno dos tres cuatro")
    ollama_double.line_after_chunks = (3, ERROR_LINE)
    with pytest.raises(StreamCut) as cut:
        llm.ask("cuenta")
    assert cut.value.partial == "uno dos tres "
    assert "unexpected EOF" in cut.value.message


# --- a busy server (HTTP 503) -----------------------------------------------------------------------


def busy(double, times: int) -> None:
    double.failures.extend([(503, BUSY_ERROR)] * times)


def test_a_busy_server_is_retried_and_the_wait_is_announced(ollama_double, monkeypatch):
    monkeypatch.setattr(llm, "BUSY_BACKOFF", 0.1)
    busy(ollama_double, 2)
    statuses = []
    answer = llm.ask("hola", on_status=statuses.append)
    assert answer.startswith(PREFIX) and len(ollama_double.chats()) == 3
    assert len(statuses) == 2
    for status, attempt in zip(statuses, (2, 3)):
        assert re.fullmatch(rf"Servidor ocupado, reintento en [\d,]+ s \({attempt}/5\)", status), status


def test_after_five_busy_answers_the_student_is_told_to_try_later(ollama_double, monkeypatch):
    monkeypatch.setattr(llm, "BUSY_BACKOFF", 0.01)
    busy(ollama_double, 5)
    statuses = []
    with pytest.raises(ServerBusy) as error:
        llm.ask("hola", on_status=statuses.append)
    assert len(ollama_double.chats()) == 5 and len(statuses) == 4
    assert error.value.message.startswith("El servidor de Ollama está ocupado")
    assert "momento" in error.value.hint and "memoria" not in str(error.value)


def test_the_retry_delays_grow_with_jitter_up_to_a_cap(monkeypatch):
    monkeypatch.setattr(llm, "BUSY_BACKOFF", 1.0)
    delays = [[llm._retry_delay(attempt) for _ in range(50)] for attempt in range(1, 8)]
    for attempt, seen in enumerate(delays, start=1):
        nominal = min(2.0 ** (attempt - 1), llm.BUSY_BACKOFF_CAP)
        assert all(nominal * 0.75 <= d <= nominal * 1.25 for d in seen)
        assert len(set(seen)) > 1  # jittered, so a class does not retry in lockstep
    assert max(delays[-1]) <= llm.BUSY_BACKOFF_CAP * 1.25


def test_the_wait_before_a_retry_can_be_cancelled(ollama_double, monkeypatch):
    monkeypatch.setattr(llm, "BUSY_BACKOFF", 60.0)
    busy(ollama_double, 5)
    cancel = threading.Event()
    during_the_wait = threading.Timer(0.2, cancel.set)
    outcome = finishes(lambda: llm.ask("hola", cancel=cancel, on_status=lambda _: during_the_wait.start()))
    assert isinstance(outcome.get("error"), Cancelled) and outcome["error"].partial == ""
    assert len(ollama_double.chats()) == 1


def test_the_load_mode_answers_503_with_ollamas_body_when_its_queue_is_full(ollama_double):
    ollama_double.max_queue = 0  # one answer at a time and no waiting room
    ollama_double.chunk_delay = 0.05
    body = {"model": "llama3.2-vision", "messages": [{"role": "user", "content": "hola"}]}
    with httpx.stream("POST", ollama_double.url + "/api/chat", json=body, timeout=LIMIT) as first:
        lines = first.iter_lines()
        next(lines)  # the first answer is being generated
        second = httpx.post(ollama_double.url + "/api/chat", json=body, timeout=LIMIT)
        assert second.status_code == 503 and second.json() == {"error": BUSY_ERROR}
        *_, last = lines
    assert json.loads(last)["done"] is True and ollama_double.rejected == 1


def test_a_class_on_a_queued_server_all_get_their_answers(ollama_double, monkeypatch):
    monkeypatch.setattr(llm, "BUSY_BACKOFF", 0.3)
    monkeypatch.setattr(llm, "BUSY_ATTEMPTS", 10)  # patience, so a slow machine cannot make it fail
    ollama_double.max_queue = 2
    ollama_double.chunk_delay = 0.05
    students = 6
    start = threading.Barrier(students)
    results, statuses = [None] * students, [[] for _ in range(students)]

    def student(i: int) -> None:
        start.wait()
        results[i] = llm.ask(f"pregunta {i}", on_status=statuses[i].append)

    threads = [threading.Thread(target=student, args=(i,), daemon=True) for i in range(students)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    for i, answer in enumerate(results):
        assert answer is not None and answer.endswith(f"«pregunta {i}».")
    assert ollama_double.rejected > 0  # some had to retry, and each retry was announced
    assert sum(map(len, statuses)) == ollama_double.rejected
    assert all(s.startswith("Servidor ocupado") for each in statuses for s in each)


# --- cancelling at any moment -----------------------------------------------------------------------


def finishes(call, limit: float = LIMIT) -> dict:
    """Run `call` in a thread; {"value": ...} or {"error": ...}, failing if it still runs after `limit` s."""
    box = {}

    def target():
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still running after {limit} s"
    return box


def test_cancel_before_the_first_token_closes_the_request(ollama_double):
    ollama_double.hang = True
    cancel = threading.Event()
    threading.Thread(target=lambda: ollama_double.hanging.wait(LIMIT) and cancel.set(), daemon=True).start()
    outcome = finishes(lambda: llm.ask("hola", cancel=cancel))
    assert isinstance(outcome.get("error"), Cancelled), outcome
    assert outcome["error"].partial == "" and "cancel" in outcome["error"].message
    assert ollama_double.disconnected.wait(LIMIT)


def test_cancel_between_tokens_closes_the_request_and_keeps_the_partial(ollama_double):
    ollama_double.replies.append("uno dos tres cuatro cinco seis")
    ollama_double.chunk_delay = 0.3
    cancel = threading.Event()
    pieces = llm.stream("cuenta", cancel=cancel)
    received = [next(pieces)]
    cancel.set()
    assert ollama_double.disconnected.wait(LIMIT)  # closed even before the consumer asks for more
    with pytest.raises(Cancelled) as stopped:
        received += list(pieces)
    assert received[0] == "uno " and stopped.value.partial.startswith("".join(received))
    assert "Se conserva lo recibido" in stopped.value.message


def test_an_already_set_cancel_sends_nothing(ollama_double):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        llm.ask("hola", cancel=cancel)
    assert ollama_double.chats() == []


def test_closing_the_iterator_closes_the_request(ollama_double):
    ollama_double.replies.append("uno dos tres cuatro cinco seis")
    ollama_double.chunk_delay = 0.3
    pieces = llm.stream("cuenta")
    assert next(pieces) == "uno "
    pieces.close()
    assert ollama_double.disconnected.wait(LIMIT)


def test_an_interrupt_in_the_consumer_closes_the_request(ollama_double):
    ollama_double.replies.append("uno dos tres cuatro cinco seis")
    ollama_double.chunk_delay = 0.3
    with pytest.raises(KeyboardInterrupt):
        for _ in llm.stream("cuenta"):
            raise KeyboardInterrupt  # as Ctrl+C (or Jupyter's stop button) while the student's loop runs
    assert ollama_double.disconnected.wait(LIMIT)


def test_an_interrupt_while_waiting_for_the_first_token_closes_the_request(ollama_double):
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        pytest.skip("needs the default Ctrl+C handler in the main thread")
    ollama_double.hang = True
    interrupt = threading.Timer(0.0, lambda: ollama_double.hanging.wait(LIMIT) and os.kill(os.getpid(), signal.SIGINT))
    interrupt.start()
    with pytest.raises(KeyboardInterrupt):
        llm.ask("hola")
    interrupt.join()
    assert ollama_double.disconnected.wait(LIMIT)


def test_the_read_timeout_stays_long_for_the_first_load_of_a_big_model():
    assert llm.READ_TIMEOUT >= 120


# --- check_server with a bad configuration ----------------------------------------------------------


def test_check_server_reports_a_bad_configuration_instead_of_raising(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "localhost:114340")
    status = llm.check_server()
    assert not status.reachable and not status.ok
    assert status.host == "localhost:114340" and isinstance(status.error, ConfigError)
    assert "localhost:114340" in str(status) and "OLLAMA_HOST" in str(status)


def test_llm_imports_and_explains_a_malformed_host():
    # `import ollama` parses OLLAMA_HOST and raised a raw ValueError: the chat could not even be imported.
    code = "from course_utils import llm; print(llm.check_server())"
    env = {**os.environ, "OLLAMA_HOST": "localhost:114340"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "OLLAMA_HOST=«localhost:114340»" in done.stdout


# --- the double's answers ---------------------------------------------------------------------------


def test_a_one_megabyte_answer_arrives_whole(ollama_double):
    ollama_double.reply_size = 1_000_000
    ollama_double.piece_size = 1000
    pieces = list(llm.stream("escribe mucho"))
    assert len(pieces) == 1000 and all(len(p) == 1000 for p in pieces)
    answer = "".join(pieces)
    assert len(answer) == 1_000_000 and answer.startswith(PREFIX)


def test_the_final_line_carries_ollamas_statistics(ollama_double):
    body = {"model": "llama3.2-vision", "messages": [{"role": "user", "content": "hola"}]}
    with httpx.stream("POST", ollama_double.url + "/api/chat", json=body, timeout=LIMIT) as response:
        lines = [json.loads(line) for line in response.iter_lines()]
    final = lines[-1]
    assert final["done"] is True and final["done_reason"] == "stop" and final["message"]["content"] == ""
    for name in (
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ):
        assert isinstance(final[name], int) and final[name] > 0
    assert final["eval_count"] == len(lines) - 1


def test_split_pieces_reassembles_the_text():
    text = "una frase con  dos espacios"
    assert "".join(split_pieces(text, None)) == text == "".join(split_pieces(text, 4))
    assert split_pieces(text, 4)[0] == "una "


def test_a_bad_line_keeps_the_parsers_error_chained_for_debugging(ollama_double):
    ollama_double.replies.append("uno dos tres")
    ollama_double.line_after_chunks = (1, MALFORMED_LINE)
    with pytest.raises(StreamCut) as cut:
        llm.ask("cuenta")
    assert isinstance(cut.value.__cause__, json.JSONDecodeError)  # for the teacher; the student sees Spanish


def test_stream_hands_over_the_statistics_of_the_last_line(ollama_double):
    ollama_double.replies.append("uno dos tres")
    got = []
    assert "".join(llm.stream("cuenta", on_stats=got.append)) == "uno dos tres"
    (stats,) = got
    assert set(stats) == set(llm.STAT_FIELDS)
    assert stats["eval_count"] == 3 and stats["load_duration"] > 0 and stats["eval_duration"] > 0
    parts = stats["load_duration"] + stats["prompt_eval_duration"] + stats["eval_duration"]
    assert stats["total_duration"] >= parts  # the double's figures add up as Ollama's do


def test_a_stopped_or_cut_answer_has_no_statistics(ollama_double):
    ollama_double.replies.append("uno dos tres cuatro")
    ollama_double.cut_after_chunks = 2
    got = []
    with pytest.raises(StreamCut):
        "".join(llm.stream("corta", on_stats=got.append))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        "".join(llm.stream("para", cancel=cancel, on_stats=got.append))
    assert got == []
