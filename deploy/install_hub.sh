#!/usr/bin/env bash
# Installs the course's JupyterHub on the lab server (Debian or Ubuntu with systemd), as root.
# Run it from the course's folder (for example /opt/curso, which can stay private to root: students
# never read it; the solutions are in its instructor/ folder):
#
#   sudo COURSE_HUB_TEACHER=profesora bash deploy/install_hub.sh           # our own hub in /opt/curso-hub
#   sudo COURSE_HUB_TEACHER=profesora bash deploy/install_hub.sh --tljh    # on an installed TLJH
#
# It can be run again (after a `git pull`, for example): it only adds what is missing, updates the
# configuration and restarts the hub; the students' servers keep running (cleanup_servers=False).
# docs/laboratorio.md explains each step and what to do after it.
# Variables: COURSE_HUB_TEACHER (the teacher's Unix account: she owns the course directory and the
# course's folder in the exchange), PREFIX (/opt/curso-hub), COURSE_HUB_SHARED (/srv/curso),
# COURSE_HUB_COURSE_DIR (/srv/nbgrader/curso-multimodal), COURSE_HUB_STUDENTS_MEMORY_MAX (80%: all the
# students' servers together), TORCH (torch: the CUDA build from PyPI;
# TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" for a CPU-only server),
# OLLAMA_VERSION (default: the one COURSE_LLM_MODEL needs, deploy/install_ollama.sh), COURSE_HUB_SKIP_OLLAMA.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${PREFIX:-/opt/curso-hub}"
SHARED="${COURSE_HUB_SHARED:-/srv/curso}"
TORCH="${TORCH:-torch}"
STUDENTS_MEMORY_MAX="${COURSE_HUB_STUDENTS_MEMORY_MAX:-80%}"
MODE=own
case "${1:-}" in
  --tljh) MODE=tljh ;;
  "") ;;
  *) echo "Uso: sudo COURSE_HUB_TEACHER=profesora bash $0 [--tljh]" >&2; exit 2 ;;
esac

say() { printf '\n==> %s\n' "$*"; }
[ "$(id -u)" = 0 ] || { echo "Hace falta root: sudo bash $0 $*" >&2; exit 1; }
command -v systemctl >/dev/null || { echo "Este servidor no usa systemd: ver docs/laboratorio.md." >&2; exit 1; }
[ -n "${COURSE_HUB_TEACHER:-}" ] || { echo "Falta COURSE_HUB_TEACHER=<cuenta del profesor>." >&2; exit 1; }
if [ "$MODE" = tljh ]; then
  export COURSE_HUB_GROUP="${COURSE_HUB_GROUP:-jupyterhub-users}"   # TLJH's group of students
else
  export COURSE_HUB_GROUP="${COURSE_HUB_GROUP:-curso}"
  getent group "$COURSE_HUB_GROUP" >/dev/null || groupadd "$COURSE_HUB_GROUP"
fi

say "Permisos: intercambio, carpeta del curso, cuadernos y carpetas personales"
COURSE_HUB_SHARED="$SHARED" REPO="$REPO" bash "$REPO/deploy/lab_permissions.sh"
install -d -m 755 "$SHARED/cache"

say "Todos los servidores de los estudiantes juntos: curso-estudiantes.slice (MemoryMax=$STUDENTS_MEMORY_MAX)"
sed "s|@MEMORY_MAX@|$STUDENTS_MEMORY_MAX|g" "$REPO/deploy/systemd/curso-estudiantes.slice" \
  > /etc/systemd/system/curso-estudiantes.slice

say "Los puertos propios de Ollama (11435, 11436), solo para root y nginx: curso-ollama-firewall"
command -v nft >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null; }
install -D -m 644 "$REPO/deploy/nftables/curso-ollama.nft" /etc/curso-hub/curso-ollama.nft
install -m 644 "$REPO/deploy/systemd/curso-ollama-firewall.service" /etc/systemd/system/
systemctl daemon-reload
systemctl enable curso-ollama-firewall >/dev/null
systemctl restart curso-ollama-firewall

if [ "$MODE" = tljh ]; then
  [ -x /opt/tljh/user/bin/pip ] || { echo "No encuentro The Littlest JupyterHub en /opt/tljh: instálalo antes." >&2; exit 1; }
  say "El curso en el entorno de los estudiantes (/opt/tljh/user)"
  /opt/tljh/user/bin/pip install -q $TORCH
  /opt/tljh/user/bin/pip install -q "$REPO"   # a copy, not a link: students never read $REPO
  say "La configuración del curso: /opt/tljh/config/jupyterhub_config.d/curso.py"
  install -D -m 644 "$REPO/deploy/jupyterhub/curso.py" /opt/tljh/config/jupyterhub_config.d/curso.py
  install -D -m 644 "$REPO/deploy/nbgrader/nbgrader_config.py" /opt/tljh/user/etc/jupyter/nbgrader_config.py
  for f in conf.json index.html.j2; do  # Voilà's page without a public CDN (deploy/voila)
    install -D -m 644 "$REPO/deploy/voila/voila/templates/curso/$f" "/opt/tljh/user/share/jupyter/voila/templates/curso/$f"
  done
  for f in conf.json index.html.j2; do  # Voilà's page without a public CDN (deploy/voila)
    install -D -m 644 "$REPO/deploy/voila/voila/templates/curso/$f" "/opt/tljh/user/share/jupyter/voila/templates/curso/$f"
  done
  say "Límites por estudiante, JupyterLab y servidores inactivos (tljh-config)"
  tljh-config set limits.memory "${COURSE_HUB_MEM_LIMIT:-3G}"
  tljh-config set limits.cpu "${COURSE_HUB_CPU_LIMIT:-2}"
  tljh-config set user_environment.default_app jupyterlab
  tljh-config set services.cull.timeout "${COURSE_HUB_CULL_TIMEOUT:-3600}"
  tljh-config reload
else
  say "Python, venv, Node.js y npm (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  command -v npm >/dev/null && python3 -c "import venv, ensurepip" 2>/dev/null \
    || { apt-get update -qq && apt-get install -y -qq python3-venv nodejs npm >/dev/null; }
  install -d -m 755 "$PREFIX"
  say "El entorno del hub, fijado: $PREFIX/hub (deploy/requirements-hub.lock)"
  [ -x "$PREFIX/hub/bin/python" ] || python3 -m venv "$PREFIX/hub"
  "$PREFIX/hub/bin/pip" install -q --upgrade pip
  "$PREFIX/hub/bin/pip" install -q --require-hashes -r "$REPO/deploy/requirements-hub.lock"
  say "El entorno de los estudiantes: $PREFIX/user (el curso, PyTorch, JupyterLab, nbgrader)"
  [ -x "$PREFIX/user/bin/python" ] || python3 -m venv "$PREFIX/user"
  "$PREFIX/user/bin/pip" install -q --upgrade pip
  "$PREFIX/user/bin/pip" install -q $TORCH
  # The same JupyterHub as the hub (its single-user server), and the course as a copy.
  "$PREFIX/user/bin/pip" install -q "$REPO" "$(grep -E '^jupyterhub==' "$REPO/deploy/requirements-hub.lock" | cut -d' ' -f1)"
  # What is installed, to reinstall exactly the same later (docs/laboratorio.md, «Actualizar»).
  "$PREFIX/user/bin/pip" freeze --exclude-editable > "$PREFIX/user-environment.txt"
  say "configurable-http-proxy (npm) en $PREFIX/node"
  npm install --prefix "$PREFIX/node" --no-audit --no-fund --loglevel=error configurable-http-proxy@5
  say "Configuración en $PREFIX y el servicio curso-hub"
  install -m 644 "$REPO/deploy/jupyterhub/jupyterhub_config.py" "$REPO/deploy/jupyterhub/curso.py" "$PREFIX/"
  install -D -m 644 "$REPO/deploy/nbgrader/nbgrader_config.py" "$PREFIX/user/etc/jupyter/nbgrader_config.py"
  for f in conf.json index.html.j2; do  # Voilà's page without a public CDN (deploy/voila)
    install -D -m 644 "$REPO/deploy/voila/voila/templates/curso/$f" "$PREFIX/user/share/jupyter/voila/templates/curso/$f"
  done
  sed "s|@PREFIX@|$PREFIX|g" "$REPO/deploy/systemd/curso-hub.service" > /etc/systemd/system/curso-hub.service
  systemctl daemon-reload
  systemctl enable curso-hub >/dev/null
  systemctl restart curso-hub   # the students' servers are units of their own: they keep running
fi

# Ollama in the version the course's model needs (llama3.2-vision: 0.24.0; OLLAMA_VERSION chooses another;
# COURSE_HUB_SKIP_OLLAMA=1 leaves Ollama alone, for a server where it runs on another machine).
if [ "${COURSE_HUB_SKIP_OLLAMA:-0}" != 1 ]; then
  if [ "$MODE" = tljh ]; then COURSE_PYTHON=/opt/tljh/user/bin/python; else COURSE_PYTHON="$PREFIX/user/bin/python"; fi
  PYTHON="$COURSE_PYTHON" bash "$REPO/deploy/install_ollama.sh"
fi

say "JupyterLab en castellano, sin el aviso de noticias ni las herramientas del profesor (jupyter/README.md)"
USER_ENV="$([ "$MODE" = tljh ] && echo /opt/tljh/user || echo "$PREFIX/venv")"
install -D -m 644 "$REPO/jupyter/lab/settings/overrides.json" "$USER_ENV/share/jupyter/lab/settings/overrides.json"
install -D -m 644 "$REPO/jupyter/estudiante/labconfig/page_config.json" /etc/jupyter/labconfig/page_config.json

say "Hecho. Antes de la primera clase, llena las cachés de modelos:"
if [ "$MODE" = tljh ]; then
  echo "   sudo -E /opt/tljh/user/bin/python -m course_utils.prepare_class"
else
  echo "   sudo $PREFIX/user/bin/python -m course_utils.prepare_class"
  echo "   Estudiantes: cuentas del sistema en el grupo ${COURSE_HUB_GROUP:-curso} (sudo usermod -aG ${COURSE_HUB_GROUP:-curso} alumno)."
  echo "   El hub escucha en http://127.0.0.1:8000: ponle delante HTTPS (deploy/nginx/hub-https.conf)."
fi
