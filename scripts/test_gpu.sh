#!/usr/bin/env bash
# The unit tests and every notebook (nbval) on a CUDA GPU: COURSE_TEST_DEVICE=cuda makes tests/harness.py
# set COURSE_DEVICE=cuda, so the models run on the GPU in half precision; tests/test_vision_gpu.py adds
# the classifier's GPU path against its PIL path. CI has no GPU: run this on the lab server.
#
#   bash scripts/test_gpu.sh                 # everything but the browser and hub tests (about 10 min on an H100)
#   bash scripts/test_gpu.sh tests/test_vision.py tests/test_vision_gpu.py    # some files only
#
# A machine without internet can bring the missing Python packages as wheels in WHEELS (default .whl):
# each one whose distribution is not installed yet is installed from there, without dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
# The course's environment (`make` builds .venv) where there is one, else the python3 on PATH.
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
WHEELS=${WHEELS:-.whl}

if ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "No hay GPU CUDA visible para PyTorch: estas pruebas son para el servidor del laboratorio." >&2
    exit 1
fi
if [ -d "$WHEELS" ]; then
    "$PYTHON" - "$WHEELS" <<'PY'
import importlib.metadata as md, pathlib, re, subprocess, sys
missing = []
for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    try:
        md.version(re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower())
    except md.PackageNotFoundError:
        missing.append(str(wheel))
if missing:
    print("Instalando desde", sys.argv[1] + ":", " ".join(pathlib.Path(w).name.split("-")[0] for w in missing))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    *missing], check=True)
PY
fi
# The notebooks' kernels and the tests' subprocesses import course_utils too: where this checkout is
# not installed yet, it is installed in place (no dependencies, so nothing is fetched).
if ! (cd / && "$PYTHON" -c "import course_utils" 2>/dev/null); then
    "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e .
fi
# CTranslate2 (faster-whisper) from PyPI is built for CUDA 12 and loads libcublas.so.12 when it first
# computes on the GPU. A torch for CUDA 13 brings only libcublas.so.13: then `pip install nvidia-cublas-cu12`
# and this puts its folder on the library path of the tests and the notebooks' kernels.
CUBLAS12=$("$PYTHON" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("nvidia")
for base in spec.submodule_search_locations if spec else []:
    if (pathlib.Path(base) / "cublas" / "lib" / "libcublas.so.12").exists():
        print(pathlib.Path(base) / "cublas" / "lib")
        break
PY
)
if [ -n "$CUBLAS12" ]; then
    export LD_LIBRARY_PATH="$CUBLAS12${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
elif ! "$PYTHON" -c "import ctypes; ctypes.CDLL('libcublas.so.12')" 2>/dev/null; then
    echo "Aviso: no hay libcublas.so.12; faster-whisper no podrá calcular en la GPU" \
        "(instálala con: $PYTHON -m pip install nvidia-cublas-cu12)." >&2
fi
"$PYTHON" - <<'PY'
import importlib.metadata as md, platform, torch
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "no instalado"
print(f"GPU: {torch.cuda.get_device_name()} | CUDA {torch.version.cuda} | Python {platform.python_version()} | "
      f"torch {torch.__version__} | torchvision {version('torchvision')} | transformers {version('transformers')} | "
      f"openai-whisper {version('openai-whisper')} | faster-whisper {version('faster-whisper')} | "
      f"ctranslate2 {version('ctranslate2')} | nbgrader {version('nbgrader')}")
PY
if [ "$#" -eq 0 ]; then
    # The browser tests need Chromium (`make browser`), the hub has its own target (`make test-hub`);
    # where Playwright is not installed, the files that import it are not even collected.
    set -- -m "not hub and not browser"
    if ! "$PYTHON" -c "import playwright, axe_playwright_python" 2>/dev/null; then
        for file in $(grep -l "playwright" tests/*.py); do
            set -- "$@" "--ignore=$file"
        done
    fi
fi
COURSE_TEST_DEVICE=cuda exec "$PYTHON" -m pytest -q "$@"
