"""course_utils.llm against the loopback Ollama double: what reaches the server, and every error."""

import base64
import io
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from course_utils import llm
from course_utils.errors import (ImageError, ModelNotPulled, OllamaError, ServerTimeout,
                                 ServerUnreachable, StreamCut, TooManyImages)
from tests.ollama_double import PREFIX


def sent(double) -> dict:
    """The body the server received, without the empty fields the official client adds (tools: [])."""
    (body,) = double.chats()
    return {key: value for key, value in body.items() if value not in ([], None)}


def decode(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_the_server_receives_exactly_build_request(ollama_double, samples):
    args = dict(prompt="describe la imagen", images=[samples / "gato.jpg"], system="Responde en español.",
                temperature=0.2, seed=7, top_p=0.9, num_ctx=4096, num_predict=64, keep_alive="10m")
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
    source = {"path": tmp_path / "big.png", "bytes": (tmp_path / "big.png").read_bytes(),
              "pil": picture, "numpy": np.asarray(picture)}[kind]
    request = llm.build_request("¿qué ves?", images=source)
    image = decode(request["messages"][-1]["images"][0])
    assert (image.format, image.mode) == ("JPEG", "RGB")
    assert image.size == (llm.MAX_IMAGE_SIDE, llm.MAX_IMAGE_SIDE // 2)


def test_too_many_images_fail_before_anything_is_sent(ollama_double, samples):
    with pytest.raises(TooManyImages, match="2 imágenes"):
        llm.ask("compara", images=[samples / "gato.jpg", samples / "cafe.jpg"])
    history = [{"role": "user", "content": "mira", "images": [samples / "gato.jpg", samples / "cafe.jpg"]}]
    with pytest.raises(TooManyImages):
        llm.build_request("¿y ahora?", history=history)
    assert ollama_double.chats() == []


def test_the_servers_image_limit_is_also_explained(ollama_double, samples, monkeypatch):
    monkeypatch.setattr(llm, "MAX_IMAGES_PER_MESSAGE", 2)  # as if the helper allowed more than the model
    with pytest.raises(TooManyImages, match="single image"):
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
        ("system", "Eres breve."), *[(m["role"], m["content"]) for m in history], ("user", "¿Cómo me llamo?")]
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
        monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:%d" % silent.getsockname()[1])
        with pytest.raises(ServerTimeout, match="a tiempo"):
            llm.ask("hola", timeout=0.3)


def test_a_stream_that_stalls_midway_keeps_the_partial(ollama_double):
    ollama_double.replies.append("primero segundo tercero")
    ollama_double.chunk_delay = 1.0
    with pytest.raises(StreamCut) as cut:
        llm.ask("hola", timeout=0.3)
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
        monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:%d" % server.server_address[1])
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

