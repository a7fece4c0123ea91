#!/usr/bin/env bash
# Regenerates the Spanish speech clips (needs espeak-ng and sox: apt-get install espeak-ng sox)
# and the photos (needs scikit-image: pip install scikit-image). The committed files are the output.
set -euo pipefail
cd "$(dirname "$0")"
say() {  # name, speed, text as spoken
  espeak-ng -v es-419+m3 -s "$2" -g 4 -w /tmp/espeak_raw.wav "$3"
  sox -q /tmp/espeak_raw.wav -r 16000 -c 1 -b 16 "$1.wav" gain -2
}
say explica_llm 150 "Explica qué es un ele ele eme."
say hola 150 "Hola, me llamo Ana y estudio inteligencia artificial en la universidad."
say describe_imagen 150 "Describe la imagen que te envío, por favor."
say gato 120 "El gato duerme en el sofá de la casa."
python3 - <<'PY'
from pathlib import Path
import skimage.data
from PIL import Image
src = Path(skimage.data.__file__).parent
for name, out in [("chelsea.png", "gato.jpg"), ("coffee.png", "cafe.jpg"),
                  ("astronaut.png", "astronauta.jpg"), ("rocket.jpg", "cohete.jpg")]:
    Image.open(src / name).convert("RGB").save(out, quality=88)
PY
