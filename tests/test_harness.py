"""The stand-ins load through the real loading code, and the Ollama double speaks the documented API."""

import base64
import io
import os

import ollama
import pytest
from PIL import Image


def test_environment_points_at_standins(standins):
    assert os.environ["COURSE_VIT_MODEL"] == str(standins["vit"])
    assert os.environ["COURSE_WHISPER_MODEL"] == str(standins["whisper"])
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_vit_standin_loads_with_from_pretrained(standins):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(standins["vit"])
    processor = AutoImageProcessor.from_pretrained(standins["vit"])
    assert model.config.num_labels == 1000
    assert model.config.id2label[281] == "tabby, tabby cat"
    pixels = processor(images=Image.new("RGB", (300, 200)), return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape) == (1, 3, 224, 224)
    assert tuple(model(pixel_values=pixels).logits.shape) == (1, 1000)


def test_whisper_standin_loads_with_load_model(standins):
    import whisper

    model = whisper.load_model(str(standins["whisper"]), device="cpu")
    assert model.is_multilingual
    assert model.dims.n_audio_layer == 2
    assert (standins["whisper"].parent / "STANDIN.txt").read_text(encoding="utf-8").startswith("Modelo de prueba")


def test_double_lists_and_shows_models(ollama_double):
    client = ollama.Client(host=ollama_double.url)
    assert [m.model for m in client.list().models] == ["llama3.2-vision:latest"]
    assert "vision" in client.show("llama3.2-vision").capabilities
    with pytest.raises(ollama.ResponseError) as err:
        client.show("no-such-model")
    assert err.value.status_code == 404


def test_double_chat_streams_and_records_images(ollama_double):
    client = ollama.Client(host=ollama_double.url)
    buf = io.BytesIO()
    Image.new("RGB", (32, 16), "red").save(buf, "PNG")
    messages = [{"role": "user", "content": "describe", "images": [buf.getvalue()]}]
    chunks = list(client.chat(model="llama3.2-vision", messages=messages, stream=True, options={"seed": 1}))
    text = "".join(c.message.content for c in chunks)
    assert chunks[-1].done and len(chunks) > 3
    assert text.startswith("[doble de pruebas de Ollama]") and "PNG 32×16" in text
    sent = ollama_double.chats()[0]
    assert sent["options"] == {"seed": 1}
    assert Image.open(io.BytesIO(base64.b64decode(sent["messages"][0]["images"][0]))).size == (32, 16)


def test_double_imitates_sampling_only_at_a_positive_temperature(ollama_double):
    client = ollama.Client(host=ollama_double.url)

    def answer(**options) -> str:
        reply = client.chat(
            model="llama3.2-vision", messages=[{"role": "user", "content": "un nombre"}], options=options
        )
        return reply.message.content

    assert "Sorteo simulado" not in answer(temperature=0, seed=1) and "Sorteo simulado" not in answer()
    same = answer(temperature=1, seed=42)
    assert "Sorteo simulado (T=1, semilla=42)" in same and answer(temperature=1, seed=42) == same
    draws = {answer(temperature=1, seed=seed).split(":")[-1] for seed in (1, 2, 3)}
    assert len(draws) > 1


def test_double_unknown_model_error_body(ollama_double):
    client = ollama.Client(host=ollama_double.url)
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="llama9", messages=[{"role": "user", "content": "hola"}])
    assert err.value.status_code == 404 and "not found" in err.value.error


def test_double_cut_stream_has_no_done_line(ollama_double):
    ollama_double.cut_after_chunks = 2
    client = ollama.Client(host=ollama_double.url)
    chunks = list(client.chat(model="llama3.2-vision", messages=[{"role": "user", "content": "a b c"}], stream=True))
    assert len(chunks) == 2 and not chunks[-1].done
