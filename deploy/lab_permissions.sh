#!/usr/bin/env bash
# Who can read and write what on the lab server; install_hub.sh runs it, and it can be run alone, as root:
#
#   sudo COURSE_HUB_TEACHER=profesora bash deploy/lab_permissions.sh
#
# 1. The nbgrader exchange: root's, mode 1777 (the sticky bit: a student can create her own entries but
#    never rename or delete someone else's; nbgrader's docs and its issue #1225). The course's folder in
#    it is created here by root and given to the teacher, so no student can take its name first or put
#    her own in its place; inbound/ (2733: students write, cannot list) and outbound/ (755) as nbgrader
#    makes them.
# 2. The course directory (solutions, hidden tests, gradebook): a copy of instructor/ in COURSE_DIR,
#    the teacher's, mode 700. Never overwritten once it exists (it holds the teacher's work).
# 3. The student notebooks (notebooks/, no solutions) in $SHARED/cuadernos, readable by all: the
#    repository itself can stay private to root.
# 4. Private homes: mode 700 for every member of the course group (students and teacher).
# Run again at any time: it changes only modes and owners, and moves aside a course folder in the
# exchange that is not the teacher's (the name of the moved copy is printed).
set -euo pipefail

REPO="${REPO:-$(cd "$(dirname "$0")/.." && pwd)}"
EXCHANGE="${COURSE_HUB_EXCHANGE:-/srv/nbgrader/exchange}"   # the same as deploy/nbgrader/nbgrader_config.py
COURSE_ID="${COURSE_HUB_COURSE_ID:-curso-multimodal}"        # the same as deploy/nbgrader/nbgrader_config.py
COURSE_DIR="${COURSE_HUB_COURSE_DIR:-/srv/nbgrader/$COURSE_ID}"
SHARED="${COURSE_HUB_SHARED:-/srv/curso}"
GROUP="${COURSE_HUB_GROUP:-curso}"
TEACHER="${COURSE_HUB_TEACHER:-}"

say() { printf '\n==> %s\n' "$*"; }
fail() { echo "ERROR: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "hace falta root: sudo bash $0"
[ -n "$TEACHER" ] || fail "falta COURSE_HUB_TEACHER, la cuenta del profesor (p. ej. COURSE_HUB_TEACHER=profesora)."
getent passwd "$TEACHER" >/dev/null || fail "no existe la cuenta $TEACHER: créala antes (sudo useradd -m $TEACHER)."
TEACHER_GROUP="$(id -gn "$TEACHER")"

say "Intercambio de nbgrader: $EXCHANGE (1777) y $EXCHANGE/$COURSE_ID (de $TEACHER)"
install -d -m 755 -o root -g root "$(dirname "$EXCHANGE")"
install -d -m 1777 -o root -g root "$EXCHANGE"
chown root:root "$EXCHANGE" && chmod 1777 "$EXCHANGE"   # also when it existed with other modes
course="$EXCHANGE/$COURSE_ID"
if [ -e "$course" ] || [ -L "$course" ]; then
  if [ -L "$course" ] || [ ! -d "$course" ] || [ "$(stat -c %U "$course")" != "$TEACHER" ]; then
    aside="$EXCHANGE/.$COURSE_ID.retirada-$(date +%Y%m%d-%H%M%S)"
    squatter="$(stat -c %U "$course")"
    mv "$course" "$aside"   # whoever made it keeps nothing in the course's name
    chown -h root:root "$aside"
    [ -L "$aside" ] || chmod 700 "$aside"
    echo "AVISO: $course era de $squatter, no de $TEACHER: apartada en $aside (revísala)" >&2
  fi
fi
install -d -m 755 -o "$TEACHER" -g "$TEACHER_GROUP" "$course" "$course/outbound"
install -d -m 2733 -o "$TEACHER" -g "$TEACHER_GROUP" "$course/inbound"

say "Carpeta del curso (soluciones, pruebas ocultas, libro de notas): $COURSE_DIR (700, de $TEACHER)"
install -d -m 755 -o root -g root "$(dirname "$COURSE_DIR")"
if [ ! -e "$COURSE_DIR/source" ]; then
  install -d -m 700 -o "$TEACHER" -g "$TEACHER_GROUP" "$COURSE_DIR"
  (cd "$REPO/instructor" && tar --exclude=gradebook.db --exclude=release --exclude=submitted \
    --exclude=autograded --exclude=feedback --exclude=.ipynb_checkpoints --exclude=__pycache__ -cf - .) \
    | tar -C "$COURSE_DIR" --no-same-owner -xf -
  chown -R "$TEACHER:$TEACHER_GROUP" "$COURSE_DIR"
else
  echo "   Ya existe: no se toca su contenido (el trabajo del profesor)."
fi
chown "$TEACHER:$TEACHER_GROUP" "$COURSE_DIR" && chmod 700 "$COURSE_DIR"
# The teacher's nbgrader (terminal and Formgrader tab) finds the course directory from anywhere.
teacher_home="$(getent passwd "$TEACHER" | cut -d: -f6)"
if [ -d "$teacher_home" ] && [ ! -e "$teacher_home/.jupyter/nbgrader_config.py" ]; then
  runuser -u "$TEACHER" -- mkdir -p "$teacher_home/.jupyter"
  printf '# deploy/lab_permissions.sh: the course directory of the lab server.\nload_subconfig(%s)\n' \
    "'$COURSE_DIR/nbgrader_config.py'" | runuser -u "$TEACHER" -- tee "$teacher_home/.jupyter/nbgrader_config.py" >/dev/null
fi

say "Cuadernos del estudiante (sin soluciones): $SHARED/cuadernos"
install -d -m 755 -o root -g root "$SHARED" "$SHARED/cuadernos"
install -m 644 -o root -g root "$REPO"/notebooks/*.ipynb "$REPO/notebooks/glosario.md" "$SHARED/cuadernos/"

say "Carpetas personales privadas (700) de los miembros del grupo $GROUP"
if getent group "$GROUP" >/dev/null; then
  gid="$(getent group "$GROUP" | cut -d: -f3)"
  members="$(getent group "$GROUP" | cut -d: -f4 | tr , ' ') $(getent passwd | awk -F: -v g="$gid" '$4 == g {print $1}')"
  for user in $members $TEACHER; do
    home="$(getent passwd "$user" | cut -d: -f6)"
    uid="$(id -u "$user")"
    # Only a real home of that user: never /, a shared folder or someone else's.
    if [ "$uid" -ge 1000 ] && [ -d "$home" ] && [ "$home" != / ] && [ "$(stat -c %u "$home")" = "$uid" ]; then
      chmod 700 "$home"
    fi
  done
else
  echo "   No existe el grupo $GROUP todavía: nada que hacer."
fi

if [ "$(stat -c %A "$REPO" | cut -c8-10)" != "---" ] && [ -d "$REPO/instructor/source" ]; then
  echo "AVISO: cualquiera puede entrar en $REPO, y en instructor/ están las soluciones:" >&2
  echo "       sudo chmod 700 $REPO (los estudiantes no lo necesitan)." >&2
fi
