#!/usr/bin/env bash
# Installs a Debian package that some tests drive, when its program is missing:
#   bash scripts/install_debian_package.sh PACKAGE PROGRAM "qué pasa sin él"
# chromium: the browser tests (Playwright cannot download its own browser here, so they drive /usr/bin/chromium).
# nginx: the reverse-proxy test, which starts its own nginx on loopback (the system service is not used).
set -u
package=$1 program=$2 skipped=$3
if command -v "$program" >/dev/null || [ -x "/usr/bin/$program" ] || [ -x "/usr/sbin/$program" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "AVISO: no hay $program y no puedo instalarlo (hace falta root y apt-get)." >&2
  echo "       $skipped. Instálalo con: sudo apt-get install $package" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq --no-install-recommends "$package" >/dev/null \
  || echo "AVISO: falló 'apt-get install $package'; $skipped." >&2
