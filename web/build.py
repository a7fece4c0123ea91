"""`make web`: the course's website from the student notebooks, executed, with README, the glossary and
docs/laboratorio.md. Offline: the notebooks run against the test suite's stand-ins (tiny random-weight
models and the loopback Ollama double; each says it is one in its output), and the maths uses MathJax
from npm, served with the site.

    python web/build.py [OUTPUT]     (default build/web; the site is OUTPUT/html/index.html)

An exercise shows as the student sees it (nbgrader's student version, without its solution): the error
of its unanswered cell and of the checks after it is replaced by a short Spanish note.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.ollama_double import OllamaDouble  # noqa: E402 - the repository's own stand-ins
from tests.standins import build_all  # noqa: E402

PAGES = {
    "README.md": ROOT / "README.md",
    "glosario.md": ROOT / "notebooks" / "glosario.md",
    "laboratorio.md": ROOT / "docs" / "laboratorio.md",
}
EXERCISE_NOTE = "> ✏️ **Ejercicio sin resolver**: aquí aparece tu resultado cuando lo completes en JupyterLab."
WIDGET_NOTE = "> 🖱️ **Control interactivo**: pruébalo en JupyterLab."
WIDGET = "application/vnd.jupyter.widget-view+json"


def standin_env(cache: Path, ollama_url: str) -> dict[str, str]:
    """The environment of tests/harness.py: the real loading code pointed at the stand-ins."""
    paths = build_all(cache)
    return {
        "COURSE_VIT_MODEL": str(paths["vit"]),
        "COURSE_WHISPER_MODEL": str(paths["whisper"]),
        "COURSE_LLM_MODEL": "llama3.2-vision",
        "OLLAMA_HOST": ollama_url,
        "COURSE_CACHE_DIR": str(ROOT / ".cache"),
        "COURSE_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
        "PYTHONPATH": str(ROOT),
    }


def clean_outputs(nb) -> None:
    """Errors of unanswered exercises become a note; live widgets, a pointer to JupyterLab."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs, noted = [], False
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                if not noted:
                    outputs.append(nbformat.v4.new_output("display_data", data={"text/markdown": EXERCISE_NOTE}))
                    noted = True
            elif out.output_type in ("display_data", "execute_result") and WIDGET in out.get("data", {}):
                outputs.append(nbformat.v4.new_output("display_data", data={"text/markdown": WIDGET_NOTE}))
            elif out.output_type == "stream" and out.name == "stderr":
                continue  # progress bars and library warnings, not the lesson
            else:
                outputs.append(out)
        cell.outputs = outputs
    nb.metadata.pop("widgets", None)


def execute(notebook: Path, target: Path) -> None:
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(target.parent)}},
    )
    client.execute()
    clean_outputs(nb)
    nbformat.write(nb, target)


def index_page(lessons: list[Path]) -> str:
    toc = "\n".join(p.stem for p in lessons)
    return f"""# Modelos multimodales: el curso

```{{include}} README.md
:start-line: 1
```

```{{toctree}}
:caption: Lecciones
:hidden:

{toc}
```

```{{toctree}}
:caption: Referencia
:hidden:

glosario
laboratorio
```
"""


def build(output: Path) -> Path:
    src = output / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    shutil.copy(ROOT / "web" / "conf.py", src / "conf.py")
    for name, path in PAGES.items():
        shutil.copy(path, src / name)
    lessons = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    double = OllamaDouble().start()
    saved = dict(os.environ)
    try:
        os.environ.update(standin_env(ROOT / ".cache" / "standins", double.url))
        for notebook in lessons:
            print(f"Ejecutando {notebook.name}…", flush=True)
            execute(notebook, src / notebook.name)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        double.stop()
    (src / "index.md").write_text(index_page(lessons), encoding="utf-8")
    static = src / "_static"
    static.mkdir()
    shutil.copytree(mathjax_folder(output), static / "mathjax")
    html = output / "html"
    subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-j", "1", str(src), str(html)], check=True)
    return html / "index.html"


def mathjax_folder(output: Path) -> Path:
    """MathJax 3's browser build, from the npm registry into a folder of the build."""
    node = output / "node"
    folder = node / "node_modules" / "mathjax" / "es5"
    if not (folder / "tex-chtml.js").is_file():
        subprocess.run(
            ["npm", "install", "--prefix", str(node), "--no-audit", "--no-fund", "--loglevel=error", "mathjax@3"],
            check=True,
        )
    return folder


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "web"
    print(f"Sitio listo: {build(out.resolve())}")
