"""Image classification with a Vision Transformer: the old top-7 desktop script, done right.

From a terminal:  python -m course_utils.vision foto.jpg [más fotos o carpetas] [--top 7]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tqdm.auto import tqdm

from course_utils import config
from course_utils.display import ALERT, alert_html, announce_standin, standin_html, standin_notice, table_html
from course_utils.errors import CourseError, ImageError, ModelLoadError, OptionError
from course_utils.hf_hub import pretrained_source
from course_utils.hf_progress import no_weight_loading_bar
from course_utils.images import open_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
# The files `save_pretrained` writes that a local model folder needs (PyTorch weights: one file or shards).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
PROCESSOR_FILE = "preprocessor_config.json"
_SAVED_FOLDER = ("Pon en COURSE_VIT_MODEL una carpeta guardada entera con `save_pretrained` (config.json, "
                 "los pesos y preprocessor_config.json), o vuelve a copiarla.")


@dataclass
class Classifier:
    name: str
    model: object  # transformers ViTForImageClassification, in eval mode on `device`
    processor: object  # its image processor
    device: str
    standin: str | None  # the stand-in's description when a test stand-in is loaded

    @property
    def labels(self) -> dict[int, str]:
        return self.model.config.id2label


def load_classifier(model: str | None = None) -> Classifier:
    """Load the configured ViT classifier once per kernel (later calls return the same object).

    `model` (default COURSE_VIT_MODEL) is a Hugging Face id or a folder saved with `save_pretrained`;
    a missing folder, a folder that is not a model or damaged weights raise ModelLoadError (Spanish).
    """
    return _load(os.path.expanduser(str(model or config.vit_model())), config.device())


@lru_cache(maxsize=4)  # the course's one model cache (speech._load too): the last four models stay loaded
def _load(name: str, device: str) -> Classifier:
    import torch  # heavy: only when a model is loaded
    from safetensors import SafetensorError
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    _check_local(name)
    source = pretrained_source(name)
    try:
        with no_weight_loading_bar():
            # Eager attention so that `output_attentions=True` works (attention maps in notebook 03).
            model = AutoModelForImageClassification.from_pretrained(
                name, attn_implementation="eager",
                dtype=torch.float16 if device.startswith("cuda") else torch.float32, **source,
            )
        processor = AutoImageProcessor.from_pretrained(name, **source)
    except OSError as exc:
        if Path(name).is_dir():  # a local folder: nothing to download, so no word about internet
            raise _local_problem(Path(name), name) from exc
        raise ModelLoadError(
            f"No pude cargar el modelo de visión «{name}».",
            "Revisa COURSE_VIT_MODEL; si es un identificador de Hugging Face, la primera vez hace "
            "falta internet para descargarlo.",
        ) from exc
    except SafetensorError as exc:
        raise ModelLoadError(f"Los pesos del modelo de visión «{name}» (.safetensors) están dañados o incompletos.",
                             "Vuelve a copiar o a descargar el modelo (si vino de Hugging Face, bórralo de su "
                             "caché), o cambia COURSE_VIT_MODEL.") from exc
    except ValueError as exc:  # a config.json transformers does not know, or not an image classifier
        raise ModelLoadError(f"«{name}» no es un clasificador de imágenes que transformers sepa cargar.",
                             f"Pon en COURSE_VIT_MODEL un modelo de clasificación de imágenes, como "
                             f"{config.DEFAULTS['COURSE_VIT_MODEL']}.") from exc
    standin = announce_standin(config.standin_note(name))
    return Classifier(name, model.to(device).eval(), processor, device, standin)


def _check_local(name: str) -> None:
    """A local model must be an existing folder whose config.json (and preprocessor_config.json) are JSON
    objects; missing weights are explained when loading fails (hub ids are left to pretrained_source)."""
    folder = Path(name)
    looks_like_path = folder.is_absolute() or name.startswith(".") or name.count("/") > 1
    if not folder.is_dir() and looks_like_path:
        raise ModelLoadError(f"No encuentro la carpeta del modelo de visión «{name}».",
                             "Revisa la ruta en COURSE_VIT_MODEL (¿está bien escrita?) o usa un "
                             "identificador de Hugging Face.")
    if not folder.is_dir():
        return
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"La carpeta «{name}» no contiene un modelo: le falta config.json.",
                             "Pon en COURSE_VIT_MODEL una carpeta guardada con `save_pretrained` "
                             "(config.json, pesos y preprocessor_config.json).")
    _check_json(folder / "config.json", name)
    if (folder / PROCESSOR_FILE).is_file():
        _check_json(folder / PROCESSOR_FILE, name)


def _local_problem(folder: Path, name: str) -> ModelLoadError:
    """Why transformers could not open a local folder (its OSError talks about downloading from the hub)."""
    if not any((folder / weights).is_file() for weights in WEIGHT_FILES):
        return ModelLoadError(f"La carpeta «{name}» no tiene los pesos del modelo (model.safetensors o "
                              "pytorch_model.bin).", _SAVED_FOLDER)
    if not (folder / PROCESSOR_FILE).is_file():
        return ModelLoadError(f"A la carpeta «{name}» le falta {PROCESSOR_FILE}: sin él no sé preparar las "
                              "imágenes para el modelo.", _SAVED_FOLDER)
    return ModelLoadError(f"No pude cargar el modelo de visión de la carpeta «{name}»: le falta algún archivo "
                          "o alguno no se puede leer.", _SAVED_FOLDER)


def _check_json(path: Path, name: str) -> None:
    """A configuration file of a local model must be a JSON object (transformers fails on anything else with
    an English error or a raw TypeError)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except PermissionError as exc:
        raise ModelLoadError(f"No tengo permiso para leer {path.name} en la carpeta «{name}».",
                             "Pide permiso de lectura, copia la carpeta del modelo a la tuya o cambia "
                             "COURSE_VIT_MODEL.") from exc
    except (ValueError, OSError) as exc:  # not JSON, not UTF-8, or unreadable
        raise ModelLoadError(f"El {path.name} de la carpeta «{name}» está dañado: no es un JSON válido.",
                             _SAVED_FOLDER) from exc
    if not isinstance(value, dict):
        raise ModelLoadError(f"El {path.name} de la carpeta «{name}» está dañado: no es un JSON válido "
                             "(debe ser un objeto {…}).", _SAVED_FOLDER)


class Ranking(list):
    """The top-k `(label, probability)` pairs, most probable first; shows as a Spanish table."""

    def __init__(self, pairs=(), standin: str | None = None):
        super().__init__(pairs)
        self.standin = standin

    def table(self) -> str:
        width = max([len("clase")] + [len(label) for label, _ in self])
        lines = [f"{'#':>2}  {'clase':<{width}}  probabilidad"]
        lines += [f"{i:>2}  {label:<{width}}  {p:>12.3f}" for i, (label, p) in enumerate(self, 1)]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table() + (f"\n{standin_notice(self.standin)}" if self.standin else "")

    def _repr_html_(self) -> str:
        rows = [(i, label, f"{p:.3f}") for i, (label, p) in enumerate(self, 1)]
        return table_html(("#", "clase", "probabilidad"), rows, left={1}) + standin_html(self.standin)


@dataclass
class Row:
    """One file of a batch: its main prediction and top-k, or the Spanish error that stopped it."""

    file: str
    label: str | None = None
    probability: float | None = None
    top: Ranking | None = None
    error: str | None = None


class Results(list):
    """Rows of `classify_files`/`classify_folder`, one per file, in order; shows as a table."""

    standin: str | None = None

    def __str__(self) -> str:
        width = max([len("archivo")] + [len(Path(r.file).name) for r in self])
        lines = [f"{'archivo':<{width}}  {'probabilidad':>12}  clase"]
        for r in self:
            result = f"Error: {r.error}" if r.error else f"{r.probability:>12.3f}  {r.label}"
            lines.append(f"{Path(r.file).name:<{width}}  {result}")
        return "\n".join(lines) + (f"\n{standin_notice(self.standin)}" if self.standin else "")

    def _repr_html_(self) -> str:
        def cells(r: Row) -> tuple:
            name = Path(r.file).name
            if r.error:  # one cell over clase and probabilidad
                return name, alert_html(f"Error: {r.error}")
            return name, r.label, f"{r.probability:.3f}"

        return (table_html(("archivo", "clase", "probabilidad"), [cells(r) for r in self], left={0, 1})
                + standin_html(self.standin))


def top_k(image, k: int = 7, *, classifier: Classifier | None = None) -> Ranking:
    """The k most probable classes of one image (a path, bytes, a PIL image or a numpy array)."""
    classifier = classifier or load_classifier()
    return _rank([open_image(image)], k, classifier)[0]


def _rank(images: list, k: int, classifier: Classifier) -> list[Ranking]:
    """Processor → logits → softmax → top-k, for a batch of RGB images."""
    import torch  # heavy: only when classifying

    n_labels = len(classifier.labels)
    if not 1 <= k <= n_labels:
        raise OptionError(f"No puedo dar las {k} clases más probables: el modelo tiene {n_labels}.",
                          f"Elige un número entre 1 y {n_labels}.")
    model = classifier.model
    pixels = classifier.processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        logits = model(pixel_values=pixels.to(classifier.device, dtype=model.dtype)).logits
    values, indices = logits.float().softmax(dim=-1).topk(k, dim=-1)
    return [Ranking([(classifier.labels[i], p) for i, p in zip(idx, val)], classifier.standin)
            for idx, val in zip(indices.tolist(), values.tolist())]


def classify_files(files, batch_size: int = 8, k: int = 7, *, classifier: Classifier | None = None,
                   progress: bool = True) -> Results:
    """Classify many image files in batches; a file that is not a valid image gets an error row."""
    if batch_size < 1:
        raise OptionError(f"batch_size={batch_size} no vale.", "Usa un tamaño de lote de 1 o más.")
    classifier = classifier or load_classifier()
    files = [str(f) for f in files]
    rows = Results(Row(f) for f in files)
    rows.standin = classifier.standin
    with tqdm(total=len(files), desc="Clasificando", unit="img", disable=not progress) as bar:
        for start in range(0, len(files), batch_size):
            batch = rows[start:start + batch_size]
            images = [_open_or_note(row) for row in batch]
            ok = [(row, img) for row, img in zip(batch, images) if img is not None]
            if ok:
                for (row, _), ranking in zip(ok, _rank([img for _, img in ok], k, classifier)):
                    row.top, (row.label, row.probability) = ranking, ranking[0]
            bar.update(len(batch))
    return rows


def _open_or_note(row: Row):
    try:
        return open_image(row.file)
    except ImageError as exc:
        row.error = exc.message
        return None


def classify_folder(path, batch_size: int = 8, k: int = 7, *, classifier: Classifier | None = None,
                    progress: bool = True) -> Results:
    """Classify every image in a folder (jpg, png, webp, gif, bmp, tiff), in batches of `batch_size`."""
    return classify_files(image_files(path), batch_size, k, classifier=classifier, progress=progress)


def image_files(path) -> list[Path]:
    """The image files directly inside a folder, sorted by name."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ImageError(f"No encuentro la carpeta {folder}.", "Revisa la ruta (¿está bien escrita?).")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageError(f"La carpeta {folder} no tiene imágenes.",
                         "Pon dentro archivos jpg, png, webp, gif o bmp.")
    return files


def show_prediction(image, preds):
    """A figure: the image titled with its main prediction, and a bar chart of the top-k probabilities."""
    import matplotlib.pyplot as plt  # heavy: only when drawing

    if not preds:
        raise CourseError("No hay predicciones que dibujar.", "Calcula antes las predicciones con top_k(imagen).")
    labels, probs = zip(*preds)
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 1.4]})
    ax_img.imshow(open_image(image))
    ax_img.set_axis_off()
    ax_img.set_title(f"Predicción: {_short(labels[0])} ({probs[0]:.3f})")
    bars = ax_bar.barh(range(len(preds)), probs, color=["#1f77b4"] + ["#9ecae1"] * (len(preds) - 1))
    ax_bar.set_yticks(range(len(preds)), [_short(label) for label in labels])
    ax_bar.invert_yaxis()
    ax_bar.bar_label(bars, fmt="%.3f", padding=3)
    ax_bar.set_xlim(0, min(1.0, max(probs) * 1.25) or 1.0)
    ax_bar.set_xlabel("Probabilidad")
    ax_bar.set_title(f"Las {len(preds)} clases más probables")
    if getattr(preds, "standin", None):
        fig.suptitle(standin_notice("modelo de prueba con pesos aleatorios, sus predicciones no significan nada"),
                     color=ALERT)
    fig.tight_layout()
    plt.close(fig)  # returned, not auto-shown: a notebook displays it once
    return fig


def _short(label: str, width: int = 28) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.vision",
                                     description="Clasifica imágenes con un ViT y muestra las clases más probables.")
    parser.add_argument("images", nargs="+", help="imágenes o carpetas con imágenes")
    parser.add_argument("--top", type=int, default=7, help="cuántas clases mostrar (por defecto 7)")
    parser.add_argument("--batch-size", type=int, default=8, help="imágenes por lote (por defecto 8)")
    parser.add_argument("--model", help="modelo de Hugging Face o carpeta (por defecto COURSE_VIT_MODEL)")
    args = parser.parse_args(argv)
    try:
        files = [f for arg in args.images for f in (image_files(arg) if Path(arg).is_dir() else [arg])]
        rows = classify_files(files, args.batch_size, args.top, classifier=load_classifier(args.model),
                              progress=len(files) > args.batch_size)
    except CourseError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    for row in rows:
        print(f"\n{row.file}")
        print(f"  Error: {row.error}" if row.error else "\n".join("  " + line for line in row.top.table().splitlines()))
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
