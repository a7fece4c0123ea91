#!/usr/bin/env bash
# Installs Debian's nginx for the reverse-proxy test (tests/test_proxy.py) when it is missing.
# The test starts its own nginx on loopback with a generated configuration; the system service
# that the package may start is not used.
set -u
if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "AVISO: no hay nginx y no puedo instalarlo (hace falta root y apt-get)." >&2
  echo "       La prueba del proxy inverso se saltará. Instálalo con: sudo apt-get install nginx" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx >/dev/null \
  || echo "AVISO: falló 'apt-get install nginx'; la prueba del proxy inverso se saltará." >&2
