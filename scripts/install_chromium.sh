#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests when it is missing.
# Playwright cannot download its own browser here, so the tests drive /usr/bin/chromium.
set -u
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "AVISO: no hay /usr/bin/chromium y no puedo instalarlo (hace falta root y apt-get)." >&2
  echo "       Las pruebas de navegador se saltarán. Instálalo con: sudo apt-get install chromium" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null \
  || echo "AVISO: falló 'apt-get install chromium'; las pruebas de navegador se saltarán." >&2
