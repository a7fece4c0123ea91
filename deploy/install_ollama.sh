#!/usr/bin/env bash
# Installs the Ollama that runs the course's model, as root, with Ollama's own install script.
#
#   sudo bash deploy/install_ollama.sh                          # the version COURSE_LLM_MODEL needs
#   sudo OLLAMA_VERSION=0.32.15 bash deploy/install_ollama.sh   # a version of your choice
#
# llama3.2-vision (the default model) loads only up to Ollama 0.24.0: from 0.30 on, Ollama runs models on
# llama.cpp's server, which has no `mllama` (docs/laboratorio.md, «Qué Ollama y qué modelo»). So by default
# the version is pinned to 0.24.0 for it, and left to Ollama's latest release for any other model.
# Nothing is reinstalled when the right version is already there. PYTHON: a Python with course_utils.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
MODEL="${COURSE_LLM_MODEL:-llama3.2-vision}"
say() { printf '\n==> %s\n' "$*"; }

if [ -z "${OLLAMA_VERSION+x}" ]; then
  OLLAMA_VERSION="$(cd "$REPO" && "$PYTHON" -m course_utils.vision_models "$MODEL")"
fi
installed=""
if command -v ollama >/dev/null; then
  # `ollama --version` says «ollama version is 0.24.0» (or «client version is …» with no server running)
  installed="$(ollama --version 2>&1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | tail -n 1 || true)"
fi

if [ -n "$OLLAMA_VERSION" ]; then
  say "Ollama $OLLAMA_VERSION para «$MODEL» (instalada: ${installed:-ninguna})"
  if [ "$installed" = "$OLLAMA_VERSION" ]; then
    echo "   Ya está instalada: no se toca."
    exit 0
  fi
  curl -fsSL https://ollama.com/install.sh | OLLAMA_VERSION="$OLLAMA_VERSION" sh
else
  say "Ollama, la última versión, para «$MODEL» (instalada: ${installed:-ninguna})"
  if [ -n "$installed" ]; then
    echo "   Ya hay una instalada: se deja como está (para actualizarla: OLLAMA_VERSION=<versión> $0)."
    exit 0
  fi
  curl -fsSL https://ollama.com/install.sh | sh
fi
echo "   Después: ollama pull $MODEL, y python -m course_utils.doctor para comprobar versión y modelo."
