#!/usr/bin/env bash
# A self-signed certificate for the hub's HTTPS on a closed lab network (deploy/nginx/hub-https.conf):
#
#   sudo bash deploy/make_selfsigned_cert.sh curso.laboratorio [192.168.1.10]
#
# Writes hub.crt (public: install it as trusted on the lab's computers) and hub.key (0600, root's)
# in COURSE_HUB_TLS_DIR (/etc/curso-hub/tls). Valid for 825 days, the most that browsers accept.
# The server's name (and its address, if the students use it) go in subjectAltName: browsers ignore CN.
set -euo pipefail
NAME="${1:?Uso: bash $0 NOMBRE [IP]   (p. ej. curso.laboratorio 192.168.1.10)}"
IP="${2:-}"
DIR="${COURSE_HUB_TLS_DIR:-/etc/curso-hub/tls}"
SAN="DNS:$NAME${IP:+,IP:$IP}"
install -d -m 755 "$DIR"
umask 077
openssl req -x509 -newkey rsa:3072 -sha256 -days 825 -nodes \
  -subj "/CN=$NAME" -addext "subjectAltName=$SAN" \
  -addext "keyUsage=digitalSignature,keyEncipherment" -addext "extendedKeyUsage=serverAuth" \
  -keyout "$DIR/hub.key" -out "$DIR/hub.crt" 2>/dev/null
chmod 600 "$DIR/hub.key"
chmod 644 "$DIR/hub.crt"
echo "Certificado: $DIR/hub.crt ($SAN), clave: $DIR/hub.key"
openssl x509 -in "$DIR/hub.crt" -noout -fingerprint -sha256
