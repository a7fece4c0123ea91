"""Configuration and the exception family."""

import pytest

from course_utils import config
from course_utils.errors import ConfigError, CourseError, ModelNotPulled, ServerUnreachable, StreamCut


def test_defaults_are_the_seed_projects_models(monkeypatch, gpus):
    for name in config.DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    cfg = config.settings()
    assert cfg.whisper_model == "base"
    assert cfg.vit_model == "google/vit-base-patch16-224"
    assert cfg.llm_model == "llama3.2-vision"
    assert cfg.ollama_host == "http://localhost:11434"
    assert cfg.device == "cpu" and cfg.fp16 is False  # no GPU (the fixture says so, on every machine)
    assert (cfg.faster_whisper_model, cfg.whisper_backend, cfg.standins) == ("base", "whisper", False)


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("COURSE_WHISPER_MODEL", "small")
    monkeypatch.setenv("COURSE_LLM_MODEL", "llava:7b")
    monkeypatch.setenv("COURSE_VIT_MODEL", "  ")  # blank means default
    cfg = config.settings()
    assert (cfg.whisper_model, cfg.llm_model, cfg.vit_model) == ("small", "llava:7b", "google/vit-base-patch16-224")


def test_each_whisper_backend_has_its_own_model(monkeypatch, tmp_path):
    checkpoint, folder = tmp_path / "mio.pt", tmp_path / "mio-ct2"
    checkpoint.write_bytes(b"x")
    folder.mkdir()
    monkeypatch.setenv("COURSE_WHISPER_MODEL", str(checkpoint))
    monkeypatch.setenv("COURSE_FASTER_WHISPER_MODEL", str(folder))
    monkeypatch.setenv("COURSE_WHISPER_BACKEND", "faster-whisper")
    monkeypatch.setenv("COURSE_STANDINS", "1")
    cfg = config.settings()
    assert (cfg.whisper_model, cfg.faster_whisper_model) == (str(checkpoint), str(folder))
    assert config.whisper_model("faster-whisper") == str(folder) and config.whisper_model() == str(checkpoint)
    assert cfg.whisper_backend == "faster-whisper" and cfg.standins is True


@pytest.mark.parametrize(
    "variable, value, words, fix",
    [
        ("COURSE_FASTER_WHISPER_MODEL", "{tmp}/mio.pt", "es un archivo: faster-whisper", "COURSE_WHISPER_MODEL"),
        ("COURSE_FASTER_WHISPER_MODEL", "/no/existe.pt", "es un archivo", "COURSE_WHISPER_MODEL"),
        ("COURSE_WHISPER_MODEL", "{tmp}", "es una carpeta: openai-whisper necesita", "COURSE_FASTER_WHISPER_MODEL"),
        ("COURSE_WHISPER_BACKEND", "vosk", "COURSE_WHISPER_BACKEND=vosk no es válido", "faster-whisper"),
        ("COURSE_STANDINS", "quizá", "COURSE_STANDINS=quizá no es válido", "Usa 1"),
    ],
)
def test_whisper_and_standin_settings_are_checked(monkeypatch, tmp_path, variable, value, words, fix):
    (tmp_path / "mio.pt").write_bytes(b"x")
    monkeypatch.setenv(variable, value.format(tmp=tmp_path))
    with pytest.raises(ConfigError) as err:
        config.settings()
    assert words in err.value.message and fix in err.value.hint


@pytest.mark.parametrize(
    "raw, url",
    [
        ("localhost:11434", "http://localhost:11434"),
        ("0.0.0.0", "http://localhost:11434"),
        ("http://servidor-lab:8080/", "http://servidor-lab:8080"),
        ("https://ollama.example.org", "https://ollama.example.org:11434"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_ollama_host_is_normalized(monkeypatch, raw, url):
    monkeypatch.setenv("OLLAMA_HOST", raw)
    assert config.settings().ollama_host == url


@pytest.fixture
def gpus(monkeypatch):
    """Pretend PyTorch sees `n` GPUs (0: none), so that device tests give the same result on every machine."""
    import torch

    def see(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    see(0)
    config._device.cache_clear()
    yield see
    config._device.cache_clear()


def test_device_choice(gpus):
    assert config.choose_device("auto") == "cpu"
    assert config.choose_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="no ve ninguna GPU"):
        config.choose_device("cuda")
    with pytest.raises(ConfigError, match="no es válido"):
        config.choose_device("tpu")


@pytest.mark.parametrize(
    "raw, device",
    [
        ("auto", "cuda"),
        ("cuda", "cuda"),
        ("CUDA", "cuda"),
        ("cuda:0", "cuda:0"),
        ("cuda:1", "cuda:1"),
        ("cuda:01", "cuda:1"),
        (" cpu ", "cpu"),
    ],
)
def test_valid_devices_with_two_gpus(gpus, raw, device):
    gpus(2)
    assert config.choose_device(raw) == device


@pytest.mark.parametrize(
    "raw, phrase",
    [
        ("cuda:abc", "COURSE_DEVICE=cuda:abc no es válido"),
        ("cuda:", "COURSE_DEVICE=cuda: no es válido"),
        ("cuda:-1", "COURSE_DEVICE=cuda:-1 no es válido"),
        ("cuda:1.5", "COURSE_DEVICE=cuda:1.5 no es válido"),
        ("cudas", "COURSE_DEVICE=cudas no es válido"),
        ("cuda0", "COURSE_DEVICE=cuda0 no es válido"),
        ("cuda:2", "COURSE_DEVICE=cuda:2 pero PyTorch ve 2 GPU (de cuda:0 a cuda:1)"),
        ("cuda:7", "COURSE_DEVICE=cuda:7 pero PyTorch ve 2 GPU"),
    ],
)
def test_bad_cuda_device_is_a_config_error(gpus, monkeypatch, raw, phrase):
    gpus(2)
    with pytest.raises(ConfigError) as err:
        config.choose_device(raw)
    assert phrase in err.value.message and "cuda:" in err.value.hint
    monkeypatch.setenv("COURSE_DEVICE", raw)  # through the variable too, as the helpers read it
    with pytest.raises(ConfigError):
        config.device()


def test_one_gpu_is_named(gpus):
    gpus(1)
    with pytest.raises(ConfigError, match="PyTorch ve solo la GPU cuda:0"):
        config.choose_device("cuda:1")


def test_standin_note(tmp_path, standins):
    assert "pesos aleatorios" in config.standin_note(str(standins["vit"]))
    assert "pesos aleatorios" in config.standin_note(str(standins["whisper"]))
    assert config.standin_note(str(tmp_path)) is None
    assert config.standin_note("google/vit-base-patch16-224") is None


def test_errors_carry_spanish_message_and_hint():
    err = ServerUnreachable("No hay servidor en http://x:1.")
    assert "ollama serve" in err.hint and str(err).startswith("No hay servidor")
    assert "ollama pull" in ModelNotPulled("falta").hint
    assert isinstance(err, CourseError)
    assert "<b>ServerUnreachable</b>" in err._repr_html_()
    cut = StreamCut("cortada", partial="Hola, soy")
    assert cut.partial == "Hola, soy"
    custom = CourseError("algo", "haz esto")
    assert str(custom) == "algo\n→ haz esto"


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("localhost:114340", "puerto"),
        ("http://localhost:abc", "puerto"),
        ("http://localhost:0", "puerto"),
        ("http://[::1", "IPv6"),
        ("ftp://host", "protocolo «ftp»"),
        ("http://", "falta el nombre"),
        ("http://:11434", "falta el nombre"),
        ("local host:11434", "espacios"),
        ("http://servidor lab", "espacios"),
        ("http://servidor!:11434", "nombre de servidor"),
    ],
)
def test_malformed_ollama_host_is_a_spanish_config_error(monkeypatch, raw, reason):
    monkeypatch.setenv("OLLAMA_HOST", raw)
    for read in (config.settings, config.ollama_host):
        with pytest.raises(ConfigError) as err:
            read()
        assert f"OLLAMA_HOST=«{raw}»" in err.value.message and reason in err.value.message
        assert "OLLAMA_HOST=http://localhost:11434" in err.value.hint


@pytest.mark.parametrize(
    "raw, url",
    [
        (":11434", "http://localhost:11434"),  # the ollama client's shorthand
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("ollama_lab.local", "http://ollama_lab.local:11434"),
    ],
)
def test_unusual_but_valid_hosts_still_work(monkeypatch, raw, url):
    monkeypatch.setenv("OLLAMA_HOST", raw)
    assert config.ollama_host() == url


def test_one_bad_variable_does_not_stop_reading_the_others(monkeypatch, gpus):
    monkeypatch.setenv("OLLAMA_HOST", "localhost:114340")
    monkeypatch.setenv("COURSE_VIT_MODEL", "mi/vit")
    monkeypatch.setenv("COURSE_DEVICE", "auto")  # with no GPU (the fixture), auto is the CPU on any machine
    assert config.vit_model() == "mi/vit" and config.device() == "cpu" and config.fp16() is False
    assert config.whisper_model() and config.llm_model() == "llama3.2-vision"


def test_caches_live_in_the_users_cache_folder_never_in_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.user_cache() == tmp_path / "xdg"
    assert config.cache_dir() == tmp_path / "xdg" / "curso-multimodal"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "casa"))
    assert config.cache_dir() == tmp_path / "casa" / ".cache" / "curso-multimodal"
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "compartida"))
    assert config.cache_dir() == tmp_path / "compartida"
