#!/usr/bin/env bash
# Installs the course's JupyterHub on the lab server (Debian or Ubuntu with systemd), as root.
# Run it from the course's folder, cloned where every student can read it (for example /opt/curso):
#
#   sudo bash deploy/install_hub.sh           # our own hub in /opt/curso-hub (make install-hub)
#   sudo bash deploy/install_hub.sh --tljh    # the course on an installed The Littlest JupyterHub
#
# It can be run again (after a `git pull`, for example): it only adds what is missing and updates
# the configuration. docs/laboratorio.md explains each step and what to do after it.
# Variables: PREFIX (/opt/curso-hub), COURSE_HUB_SHARED (/srv/curso), TORCH (torch: the CUDA build
# from PyPI; TORCH=torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu for a CPU-only server).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${PREFIX:-/opt/curso-hub}"
SHARED="${COURSE_HUB_SHARED:-/srv/curso}"
EXCHANGE=/srv/nbgrader/exchange   # the same as deploy/nbgrader/nbgrader_config.py
TORCH="${TORCH:-torch}"
MODE=own
case "${1:-}" in
  --tljh) MODE=tljh ;;
  "") ;;
  *) echo "Uso: sudo bash $0 [--tljh]" >&2; exit 2 ;;
esac

say() { printf '\n==> %s\n' "$*"; }
[ "$(id -u)" = 0 ] || { echo "Hace falta root: sudo bash $0 $*" >&2; exit 1; }
command -v systemctl >/dev/null || { echo "Este servidor no usa systemd: ver docs/laboratorio.md." >&2; exit 1; }
if [ "$(stat -c %a "$REPO")" != 755 ] && [ "$(stat -c %a "$REPO")" != 775 ]; then
  echo "AVISO: los estudiantes deben poder leer $REPO (chmod 755)." >&2
fi

say "Carpetas compartidas: $SHARED/cache (modelos, solo lectura) y $EXCHANGE (nbgrader)"
install -d -m 755 "$SHARED" "$SHARED/cache"
install -d -m 755 "$(dirname "$EXCHANGE")"
install -d "$EXCHANGE"
chmod ugo+rwx "$EXCHANGE"

if [ "$MODE" = tljh ]; then
  [ -x /opt/tljh/user/bin/pip ] || { echo "No encuentro The Littlest JupyterHub en /opt/tljh: instálalo antes." >&2; exit 1; }
  say "El curso en el entorno de los estudiantes (/opt/tljh/user)"
  /opt/tljh/user/bin/pip install -q $TORCH
  /opt/tljh/user/bin/pip install -q -e "$REPO"
  say "La configuración del curso: /opt/tljh/config/jupyterhub_config.d/curso.py"
  install -D -m 644 "$REPO/deploy/jupyterhub/curso.py" /opt/tljh/config/jupyterhub_config.d/curso.py
  install -D -m 644 "$REPO/deploy/nbgrader/nbgrader_config.py" /opt/tljh/user/etc/jupyter/nbgrader_config.py
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
  say "JupyterHub y el curso en $PREFIX/venv"
  install -d -m 755 "$PREFIX"
  [ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
  "$PREFIX/venv/bin/pip" install -q --upgrade pip
  "$PREFIX/venv/bin/pip" install -q $TORCH
  "$PREFIX/venv/bin/pip" install -q -e "$REPO[hub]"
  say "configurable-http-proxy (npm) en $PREFIX/node"
  npm install --prefix "$PREFIX/node" --no-audit --no-fund --loglevel=error configurable-http-proxy@5
  say "Configuración en $PREFIX y el servicio curso-hub"
  install -m 644 "$REPO/deploy/jupyterhub/jupyterhub_config.py" "$REPO/deploy/jupyterhub/curso.py" "$PREFIX/"
  install -D -m 644 "$REPO/deploy/nbgrader/nbgrader_config.py" "$PREFIX/venv/etc/jupyter/nbgrader_config.py"
  getent group "${COURSE_HUB_GROUP:-curso}" >/dev/null || groupadd "${COURSE_HUB_GROUP:-curso}"
  sed "s|@PREFIX@|$PREFIX|g" "$REPO/deploy/systemd/curso-hub.service" > /etc/systemd/system/curso-hub.service
  systemctl daemon-reload
  systemctl enable curso-hub >/dev/null
  systemctl restart curso-hub
fi

say "JupyterLab en castellano, sin el aviso de noticias ni las herramientas del profesor (jupyter/README.md)"
USER_ENV="$([ "$MODE" = tljh ] && echo /opt/tljh/user || echo "$PREFIX/venv")"
install -D -m 644 "$REPO/jupyter/lab/settings/overrides.json" "$USER_ENV/share/jupyter/lab/settings/overrides.json"
install -D -m 644 "$REPO/jupyter/estudiante/labconfig/page_config.json" /etc/jupyter/labconfig/page_config.json

say "Hecho. Antes de la primera clase, llena las cachés de modelos:"
if [ "$MODE" = tljh ]; then
  echo "   sudo -E /opt/tljh/user/bin/python -m course_utils.prepare_class"
else
  echo "   sudo $PREFIX/venv/bin/python -m course_utils.prepare_class"
  echo "   Estudiantes: cuentas del sistema en el grupo ${COURSE_HUB_GROUP:-curso} (sudo usermod -aG ${COURSE_HUB_GROUP:-curso} alumno)."
  echo "   El hub escucha en http://127.0.0.1:8000: ponle delante HTTPS (docs/laboratorio.md)."
fi
