"""Image classification with a Vision Transformer: the old top-7 desktop script, done right.

From a terminal:  python -m course_utils.vision foto.jpg [más fotos o carpetas] [--top 7]

Speed (docs/rendimiento.md): the model runs with PyTorch's fused attention (SDPA) and switches to the
explicit ("eager") attention only for a call that asks for the attention weights; on CUDA it runs in
bf16 (fp16 on GPUs without bf16). `classify_files` prepares the next batch in a thread while the
model works on the current one; on CUDA, when torchvision imports, JPEG files are decoded in batches
on the GPU (nvJPEG) and resized and normalised there. Everything else (other formats, JPEGs that the
GPU decoder does not treat as PIL does, and machines without torchvision, as CI's CPU-only torch) takes
the PIL path: `open_image` and the model's image processor.
"""

from __future__ import annotations

import argparse
import functools
import json
import numbers
import os
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from tqdm.auto import tqdm

from course_utils import config, standins
from course_utils.display import (
    ALERT,
    alert_html,
    announce_standin,
    standin_html,
    standin_notice,
    table_html,
)
from course_utils.errors import CourseError, ImageError, ModelLoadError, OptionError
from course_utils.hf_hub import NotDownloaded, pretrained_source
from course_utils.hf_progress import no_weight_loading_bar
from course_utils.images import MAX_PIXELS, open_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
# The files `save_pretrained` writes that a local model folder needs (PyTorch weights: one file or shards).
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
PROCESSOR_FILE = "preprocessor_config.json"
_SAVED_FOLDER = (
    "Pon en COURSE_VIT_MODEL una carpeta guardada entera con `save_pretrained` (config.json, "
    "los pesos y preprocessor_config.json), o vuelve a copiarla."
)


@dataclass
class Classifier:
    name: str
    model: object  # transformers ViTForImageClassification, in eval mode on `device`
    processor: object  # its image processor
    device: str
    standin: str | None  # the stand-in's description when a test stand-in is loaded
    batch_size: int | None = field(default=None, repr=False)  # fitted to the GPU's memory on first use

    @property
    def labels(self) -> dict[int, str]:
        return self.model.config.id2label


def load_classifier(model: str | None = None) -> Classifier:
    """Load the configured ViT classifier once per kernel (later calls return the same object).

    `model` (default COURSE_VIT_MODEL) is a Hugging Face id or a folder saved with `save_pretrained`;
    a missing folder, a folder that is not a model or damaged weights raise ModelLoadError (Spanish).
    A hub model that is not downloaded, with no network, is replaced by a stand-in if COURSE_STANDINS=1.
    """
    name = os.path.expanduser(str(model or config.vit_model()))
    try:
        return _load(name, config.device())
    except NotDownloaded:
        if not config.standins():
            raise
    return _load(str(standins.vit_standin()), config.device())  # it says so: «Aviso: Modelo de sustitución…»


@lru_cache(maxsize=4)  # the course's one model cache (speech._load too): the last four models stay loaded
def _load(name: str, device: str) -> Classifier:
    from safetensors import SafetensorError
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    _check_local(name)
    source = pretrained_source(name)
    try:
        with no_weight_loading_bar():
            # transformers' default attention: SDPA where the model supports it (eager otherwise);
            # attention_on_demand() switches to eager for the calls that ask for the weights.
            model = AutoModelForImageClassification.from_pretrained(name, dtype=model_dtype(device), **source)
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
        raise ModelLoadError(
            f"Los pesos del modelo de visión «{name}» (.safetensors) están dañados o incompletos.",
            "Vuelve a copiar o a descargar el modelo (si vino de Hugging Face, bórralo de su "
            "caché), o cambia COURSE_VIT_MODEL.",
        ) from exc
    except ValueError as exc:  # a config.json transformers does not know, or not an image classifier
        raise ModelLoadError(
            f"«{name}» no es un clasificador de imágenes que transformers sepa cargar.",
            f"Pon en COURSE_VIT_MODEL un modelo de clasificación de imágenes, como "
            f"{config.DEFAULTS['COURSE_VIT_MODEL']}.",
        ) from exc
    standin = announce_standin(config.standin_note(name))
    model = attention_on_demand(model.to(device).eval())
    return Classifier(name, model, processor, device, standin)


def model_dtype(device: str):
    """bf16 on GPUs that compute it natively (compute capability 8.0 on: Ampere, Hopper…), fp16 on older
    GPUs, float32 on the CPU (half precision only pays off on CUDA)."""
    import torch  # heavy: only when a model is loaded

    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16


def attention_on_demand(model):
    """Let `model` keep its fast attention (SDPA) and still answer `output_attentions=True`.

    SDPA never forms the attention matrix, so transformers returns no weights with it. A call of the
    model (or of its ViT body) that asks for them runs with eager attention, and the model goes back
    to its own attention right after, even if the call fails. Returns the model itself.
    """
    for module in {model, getattr(model, model.base_model_prefix, model)}:
        if not getattr(module, "_course_attention_hooks", False):
            module.register_forward_pre_hook(_eager_if_weights_asked, with_kwargs=True)
            module.register_forward_hook(_restore_attention, with_kwargs=True, always_call=True)
            module._course_attention_hooks = True
    return model


def _set_attention(model, implementation: str) -> None:
    setter = getattr(model, "set_attn_implementation", None)  # transformers >= 4.56
    if setter is not None:
        setter(implementation)
    else:
        model.config._attn_implementation = implementation


def _eager_if_weights_asked(module, args, kwargs):
    stack = module.__dict__.setdefault("_course_attention_stack", [])
    current = module.config._attn_implementation
    stack.append(current)
    if (kwargs.get("output_attentions") or module.config.output_attentions) and current != "eager":
        _set_attention(module, "eager")


def _restore_attention(module, args, kwargs, output):
    previous = module._course_attention_stack.pop()
    if module.config._attn_implementation != previous:
        _set_attention(module, previous)


def _check_local(name: str) -> None:
    """A local model must be an existing folder whose config.json (and preprocessor_config.json) are JSON
    objects; missing weights are explained when loading fails (hub ids are left to pretrained_source)."""
    folder = Path(name)
    looks_like_path = folder.is_absolute() or name.startswith(".") or name.count("/") > 1
    if not folder.is_dir() and looks_like_path:
        raise ModelLoadError(
            f"No encuentro la carpeta del modelo de visión «{name}».",
            "Revisa la ruta en COURSE_VIT_MODEL (¿está bien escrita?) o usa un identificador de Hugging Face.",
        )
    if not folder.is_dir():
        return
    if not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"La carpeta «{name}» no contiene un modelo: le falta config.json.",
            "Pon en COURSE_VIT_MODEL una carpeta guardada con `save_pretrained` "
            "(config.json, pesos y preprocessor_config.json).",
        )
    _check_json(folder / "config.json", name)
    if (folder / PROCESSOR_FILE).is_file():
        _check_json(folder / PROCESSOR_FILE, name)


def _local_problem(folder: Path, name: str) -> ModelLoadError:
    """Why transformers could not open a local folder (its OSError talks about downloading from the hub)."""
    if not any((folder / weights).is_file() for weights in WEIGHT_FILES):
        return ModelLoadError(
            f"La carpeta «{name}» no tiene los pesos del modelo (model.safetensors o pytorch_model.bin).", _SAVED_FOLDER
        )
    if not (folder / PROCESSOR_FILE).is_file():
        return ModelLoadError(
            f"A la carpeta «{name}» le falta {PROCESSOR_FILE}: sin él no sé preparar las imágenes para el modelo.",
            _SAVED_FOLDER,
        )
    return ModelLoadError(
        f"No pude cargar el modelo de visión de la carpeta «{name}»: le falta algún archivo o alguno no se puede leer.",
        _SAVED_FOLDER,
    )


def _check_json(path: Path, name: str) -> None:
    """A configuration file of a local model must be a JSON object (transformers fails on anything else with
    an English error or a raw TypeError)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except PermissionError as exc:
        raise ModelLoadError(
            f"No tengo permiso para leer {path.name} en la carpeta «{name}».",
            "Pide permiso de lectura, copia la carpeta del modelo a la tuya o cambia COURSE_VIT_MODEL.",
        ) from exc
    except (ValueError, OSError) as exc:  # not JSON, not UTF-8, or unreadable
        raise ModelLoadError(
            f"El {path.name} de la carpeta «{name}» está dañado: no es un JSON válido.", _SAVED_FOLDER
        ) from exc
    if not isinstance(value, dict):
        raise ModelLoadError(
            f"El {path.name} de la carpeta «{name}» está dañado: no es un JSON válido (debe ser un objeto {{…}}).",
            _SAVED_FOLDER,
        )


class Ranking(list):
    """The top-k `(label, probability)` pairs, most probable first; shows as a Spanish table."""

    def __init__(self, pairs=(), standin: str | None = None):
        super().__init__(pairs)
        self.standin = standin

    def table(self) -> str:
        names = [with_spanish(label) for label, _ in self]
        width = max([len("clase")] + [len(name) for name in names])
        lines = [f"{'#':>2}  {'clase':<{width}}  probabilidad"]
        lines += [f"{i:>2}  {name:<{width}}  {p:>12.3f}" for i, (name, (_, p)) in enumerate(zip(names, self), 1)]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table() + (f"\n{standin_notice(self.standin)}" if self.standin else "")

    def _repr_html_(self) -> str:
        rows = [(i, with_spanish(label), f"{p:.3f}") for i, (label, p) in enumerate(self, 1)]
        return table_html(("#", "clase", "probabilidad"), rows, left={1}) + standin_html(self.standin)


@functools.cache
def _spanish_names() -> dict[str, str]:
    path = Path(__file__).with_name("labels") / "imagenet_es.json"
    return json.loads(path.read_text(encoding="utf-8"))["clases"]


def spanish_name(label: str) -> str | None:
    """The Spanish name of an ImageNet class (by its English label), for the classes the course's table
    covers (a selection: the samples' and the lessons' classes and other common ones), else None."""
    return _spanish_names().get(label)


def with_spanish(label: str) -> str:
    """`label` with its Spanish name beside it where there is one: «tabby, tabby cat (gato atigrado)»."""
    name = spanish_name(label)
    return f"{label} ({name})" if name else label


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

        return table_html(("archivo", "clase", "probabilidad"), [cells(r) for r in self], left={0, 1}) + standin_html(
            self.standin
        )


CPU_BATCH = 8  # on the CPU the model's arithmetic dominates: bigger batches gain nothing (docs/rendimiento.md)
MAX_GPU_BATCH = 256  # past this a ViT-B already fills an H100: bigger batches only take memory
GPU_PREPARE_THREADS = 2  # batches prepared at once on the GPU path (reading and decoding overlap the model)
# How far probabilities may move between the PIL path in float32 and the GPU path in half precision
# (different JPEG decoder and resize, bf16 arithmetic); measured on the samples, see docs/rendimiento.md
# and tests/test_vision_gpu.py. Each probability may differ by this much, absolutely.
HALF_PRECISION_ATOL = 0.02


def top_k(image, k: int = 7, *, classifier: Classifier | None = None) -> Ranking:
    """The k most probable classes of one image (a path, bytes, a PIL image or a numpy array)."""
    classifier = classifier or load_classifier()
    return _rank([open_image(image)], k, classifier)[0]


def _rank(images: list, k: int, classifier: Classifier) -> list[Ranking]:
    """Processor → logits → softmax → top-k, for a batch of RGB images."""
    _check_k(k, classifier)
    return _rankings(_top(processor_pixels(images, classifier), k, classifier), classifier)


def _check_k(k: int, classifier: Classifier) -> None:
    n_labels = len(classifier.labels)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise OptionError(
            f"«k» es cuántas clases mostrar: debe ser un número entero, y vale {k!r}.",
            f"Por ejemplo k=7 (sin comillas ni decimales), entre 1 y {n_labels}.",
        )
    if not 1 <= k <= n_labels:
        raise OptionError(
            f"No puedo dar las {k} clases más probables: el modelo tiene {n_labels}.",
            f"Elige un número entre 1 y {n_labels}.",
        )


def processor_pixels(images: list, classifier: Classifier):
    """The model's input for RGB PIL images, made by its image processor: on the model's device and dtype."""
    pixels = classifier.processor(images=images, return_tensors="pt")["pixel_values"]
    return pixels.to(classifier.device, dtype=classifier.model.dtype)


def _top(pixels, k: int, classifier: Classifier):
    """(probabilities, class indices) of the k most probable classes, still on the model's device."""
    import torch  # heavy: only when classifying

    with torch.inference_mode():
        logits = classifier.model(pixel_values=pixels).logits
        return logits.float().softmax(dim=-1).topk(k, dim=-1)


def _rankings(top, classifier: Classifier) -> list[Ranking]:
    values, indices = top
    return [
        Ranking([(classifier.labels[i], p) for i, p in zip(idx, val)], classifier.standin)
        for idx, val in zip(indices.tolist(), values.tolist())
    ]


def auto_batch_size(classifier: Classifier) -> int:
    """Images per batch: 8 on the CPU; on a GPU, a power of two that fits half of its free memory,
    measured once per model with a small batch (at most MAX_GPU_BATCH)."""
    if not classifier.device.startswith("cuda"):
        return CPU_BATCH
    if classifier.batch_size is None:
        import torch  # heavy: only when classifying

        probe = 8
        side = getattr(classifier.model.config, "image_size", 224)
        pixels = torch.zeros(probe, 3, side, side, device=classifier.device, dtype=classifier.model.dtype)
        torch.cuda.synchronize(classifier.device)
        before = torch.cuda.memory_allocated(classifier.device)
        torch.cuda.reset_peak_memory_stats(classifier.device)
        with torch.inference_mode():
            classifier.model(pixel_values=pixels)
        per_image = max(1, torch.cuda.max_memory_allocated(classifier.device) - before) / probe
        # Beside the model's activations, an image takes its float32 input and a decoded photo.
        per_image += 3 * side * side * 4 + 3 * 1024 * 1024
        free, _ = torch.cuda.mem_get_info(classifier.device)
        fits = int(free // 2 // per_image)
        classifier.batch_size = max(1, min(MAX_GPU_BATCH, 1 << max(0, fits.bit_length() - 1)))
    return classifier.batch_size


def classify_files(
    files, batch_size: int | None = None, k: int = 7, *, classifier: Classifier | None = None, progress: bool = True
) -> Results:
    """Classify many image files in batches; a file that is not a valid image gets an error row.

    `batch_size` (images per batch) defaults to 8 on the CPU and, on a GPU, to what fits its free
    memory (auto_batch_size). While the model works on a batch, a thread prepares the next one (on the
    GPU path, GPU_PREPARE_THREADS threads prepare the next ones).
    """
    if batch_size is not None and batch_size < 1:
        raise OptionError(f"batch_size={batch_size} no vale.", "Usa un tamaño de lote de 1 o más.")
    classifier = classifier or load_classifier()
    _check_k(k, classifier)
    rows = Results(Row(str(f)) for f in files)
    rows.standin = classifier.standin
    _classify_rows(rows, batch_size or auto_batch_size(classifier), k, classifier, progress)
    _release_gpu_cache(classifier)  # after _classify_rows: its batches are no longer referenced
    return rows


def _classify_rows(rows: Results, size: int, k: int, classifier: Classifier, progress: bool) -> None:
    batches = [rows[start : start + size] for start in range(0, len(rows), size)]
    prepare = batch_loader(classifier)
    depth = GPU_PREPARE_THREADS if isinstance(prepare, GpuJpegLoader) else 1
    with (
        tqdm(total=len(rows), desc="Clasificando", unit="img", disable=not progress) as bar,
        ThreadPoolExecutor(depth, thread_name_prefix="course-images") as pool,
    ):
        ahead = deque(pool.submit(prepare, batch) for batch in batches[:depth])
        previous = None
        for i, batch in enumerate(batches):
            ok, pixels, ready = ahead.popleft().result()
            if i + depth < len(batches):
                ahead.append(pool.submit(prepare, batches[i + depth]))
            if ready is not None:  # made on the loader's CUDA stream: wait for it, keep its memory till used
                import torch  # heavy: only when classifying

                stream = torch.cuda.current_stream(pixels.device)
                stream.wait_event(ready)
                pixels.record_stream(stream)
            current = (batch, ok, _top(pixels, k, classifier) if ok else None)
            if previous:  # read the batch before only now, with this one queued on the GPU
                bar.update(_fill(*previous, classifier))
            previous = current
        if previous:
            bar.update(_fill(*previous, classifier))


def _release_gpu_cache(classifier: Classifier) -> None:
    """Give the batches' cached GPU memory back: on a shared lab GPU an idle kernel would otherwise keep
    about 3 GB after classifying a folder in batches of 256 (docs/laboratorio.md, «Memoria en la GPU»)."""
    if classifier.device.startswith("cuda"):
        import torch  # heavy: only when classifying

        torch.cuda.empty_cache()


def _fill(batch: list[Row], ok: list[Row], top, classifier: Classifier) -> int:
    if ok:
        for row, ranking in zip(ok, _rankings(top, classifier)):
            row.top, (row.label, row.probability) = ranking, ranking[0]
    return len(batch)


def _open_or_note(row: Row):
    try:
        return open_image(row.file)
    except ImageError as exc:
        row.error = exc.message
        return None


def batch_loader(classifier: Classifier):
    """A function `rows → (rows that are images, their model input, CUDA event or None)` that notes errors
    in the other rows (the event, when there is one, marks the input ready on the loader's stream).

    On CUDA with torchvision and a resize-rescale-normalise processor: GpuJpegLoader; else the PIL path.
    """
    plan = gpu_plan(classifier.processor)
    if classifier.device.startswith("cuda") and plan is not None and _torchvision_jpeg() is not None:
        return GpuJpegLoader(classifier, plan)
    return lambda batch: _pil_batch(batch, classifier)


def _pil_batch(batch: list[Row], classifier: Classifier):
    images = [_open_or_note(row) for row in batch]
    ok = [(row, image) for row, image in zip(batch, images) if image is not None]
    if not ok:
        return [], None, None
    return [row for row, _ in ok], processor_pixels([image for _, image in ok], classifier), None


@lru_cache(maxsize=1)
def _torchvision_jpeg():
    """torchvision's (decode_jpeg, ImageReadMode), or None where it does not import (CPU-only torch in CI)."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except Exception:  # noqa: BLE001 - not installed, or built for another torch: the PIL path stays
        return None
    return decode_jpeg, ImageReadMode


@dataclass(frozen=True)
class Plan:
    """What the image processor does, to do it on the GPU: resize to height×width (None: no resize),
    then pixel·scale, minus mean, over std (per channel)."""

    height: int
    width: int
    mode: str | None  # torch's interpolation mode, antialiased as PIL
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_PROCESSOR_STEPS = {"do_resize", "do_rescale", "do_normalize", "do_convert_rgb"}
_RESAMPLE_MODES = {2: "bilinear", 3: "bicubic"}  # PIL's BILINEAR and BICUBIC


def gpu_plan(processor) -> Plan | None:
    """The processor's steps as a Plan, or None if it does anything else (crop, pad…) or resamples
    with a filter that torch does not compute as PIL does."""
    steps = {name for name in dir(processor) if name.startswith("do_") and getattr(processor, name, None) is True}
    if not steps <= _PROCESSOR_STEPS:
        return None
    size = getattr(processor, "size", None) or {}
    height, width = (
        getattr(size, key, None) or (size.get(key) if hasattr(size, "get") else None) for key in ("height", "width")
    )
    if not (height and width):
        return None
    mode = None
    if "do_resize" in steps:
        resample = getattr(processor, "resample", None)
        value = getattr(resample, "value", resample)
        mode = value if value in _RESAMPLE_MODES.values() else _RESAMPLE_MODES.get(value)
        if mode is None:
            return None
    scale = float(processor.rescale_factor) if "do_rescale" in steps else 1.0
    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if "do_normalize" in steps:
        mean, std = (_three(processor.image_mean), _three(processor.image_std))
        if mean is None or std is None:
            return None
    return Plan(int(height), int(width), mode, scale, mean, std)


def _three(value) -> tuple[float, float, float] | None:
    values = [float(v) for v in value] if hasattr(value, "__len__") else [float(value)] * 3
    return tuple(values) if len(values) == 3 else None


def resize_normalize(images: list, plan: Plan, device, dtype):
    """uint8 (3, H, W) images → the model's input (N, 3, height, width) on `device` in `dtype`: the image
    processor's steps in torch. Images of one size are resized together, antialiased as PIL does and
    rounded to whole pixel values as PIL's 8-bit images are."""
    import torch  # heavy: only when classifying
    import torch.nn.functional as F

    out = torch.empty((len(images), 3, plan.height, plan.width), device=device, dtype=torch.float32)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape[-2:]), []).append(i)
    for (height, width), members in groups.items():
        step = max(1, RESIZE_FLOATS // (3 * height * width))  # bound the float copy of big photos
        for start in range(0, len(members), step):
            part = members[start : start + step]
            stack = torch.stack([images[i] for i in part]).to(device=device, dtype=torch.float32)
            if plan.mode and (height, width) != (plan.height, plan.width):
                stack = (
                    F.interpolate(
                        stack, size=(plan.height, plan.width), mode=plan.mode, antialias=True, align_corners=False
                    )
                    .round_()
                    .clamp_(0, 255)
                )
            elif (height, width) != (plan.height, plan.width):
                raise ImageError(
                    f"Una imagen de {width}×{height} no vale para este modelo.",
                    f"El modelo espera imágenes de {plan.width}×{plan.height}.",
                )
            out[torch.tensor(part, device=device)] = stack
    factor = torch.tensor([plan.scale / s for s in plan.std], device=device).view(1, 3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(plan.mean, plan.std)], device=device).view(1, 3, 1, 1)
    return out.mul_(factor).add_(shift).to(dtype)


RESIZE_FLOATS = 1 << 26  # at most 64 M floats (256 MB) in one resize call
DECODE_PIXELS = 1 << 27  # at most 128 M pixels (384 MB) decoded on the GPU at once


class GpuJpegLoader:
    """Prepares a batch on the GPU: reads the files (in classify_files' thread), decodes the JPEGs
    together with torchvision's nvJPEG decoder on a side stream, and resizes and normalises them there
    (resize_normalize). JPEGs that the GPU decoder might read otherwise than PIL (see jpeg_header) and
    every other format go through open_image; a file that is not an image gets its Spanish error, as
    on the PIL path. Returns (rows that are images, model input, CUDA event that marks it ready)."""

    def __init__(self, classifier: Classifier, plan: Plan, dtype=None):
        import torch  # heavy: only when classifying

        self.classifier, self.plan = classifier, plan
        self.dtype = dtype or classifier.model.dtype  # the model's, unless asked otherwise (tests)
        self.device = torch.device(classifier.device)
        self._local = threading.local()  # one CUDA stream per preparing thread

    @property
    def stream(self):
        import torch  # heavy: only when classifying

        if getattr(self._local, "stream", None) is None:
            self._local.stream = torch.cuda.Stream(self.device)
        return self._local.stream

    def __call__(self, batch: list[Row]):
        import torch  # heavy: only when classifying

        rows: list[Row] = []
        images: list = []
        jpegs: list[tuple[int, object, tuple[int, int, int]]] = []  # (place in images, bytes, header)
        stream = self.stream
        with torch.cuda.device(self.device), torch.cuda.stream(stream):
            for row in batch:
                data = _read_or_none(row.file)
                header = jpeg_header(data) if data else None
                if header is not None:
                    jpegs.append((len(images), torch.frombuffer(bytearray(data), dtype=torch.uint8), header))
                    images.append(None)
                    rows.append(row)
                elif (image := _open_or_note(row)) is not None:
                    images.append(self._upload(image))
                    rows.append(row)
            chunk, pixels = [], 0
            for n, item in enumerate(jpegs):
                chunk.append(item)
                pixels += item[2][0] * item[2][1]
                if pixels >= DECODE_PIXELS or n == len(jpegs) - 1:  # bound the decoded bytes on the GPU
                    for (place, _, header), image in zip(chunk, self._decode([data for _, data, _ in chunk])):
                        images[place] = None if image is None else orient(image, header[2])
                    chunk, pixels = [], 0
            for place, image in enumerate(images):
                if image is None:  # the GPU decoder refused it: PIL decides (a picture, or the error)
                    image = _open_or_note(rows[place])
                    images[place] = None if image is None else self._upload(image)
            keep = [place for place, image in enumerate(images) if image is not None]
            if not keep:
                return [], None, None
            model_input = resize_normalize([images[i] for i in keep], self.plan, self.device, self.dtype)
            ready = torch.cuda.Event()
            ready.record(stream)
        return [rows[i] for i in keep], model_input, ready

    def _upload(self, image):
        return _chw(image).to(self.device)

    def _decode(self, encoded: list) -> list:
        decode_jpeg, read_mode = _torchvision_jpeg()
        try:
            return decode_jpeg(encoded, mode=read_mode.RGB, device=self.device)
        except RuntimeError:  # one damaged file fails the whole call: decode one by one
            images = []
            for data in encoded:
                try:
                    images.append(decode_jpeg(data, mode=read_mode.RGB, device=self.device))
                except RuntimeError:
                    images.append(None)
            return images


def _read_or_none(file: str) -> bytes | None:
    try:
        return Path(file).read_bytes()
    except OSError:  # missing, a folder, no permission…: open_image will say which, in Spanish
        return None


def _chw(image):
    """An RGB PIL image as a uint8 (3, H, W) tensor."""
    import numpy as np
    import torch  # heavy: only when classifying

    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)


# Start-of-frame markers of the Huffman-coded JPEGs that nvJPEG decodes: baseline, extended, progressive.
_SOF_GPU = {0xC0, 0xC1, 0xC2}
_SOF_OTHER = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # lossless, hierarchical, arithmetic


def jpeg_header(data: bytes) -> tuple[int, int, int] | None:
    """(height, width, EXIF orientation) of a complete JPEG that the GPU may decode as PIL does; None for
    anything else: not a JPEG, truncated (no end marker: PIL calls it damaged), lossless or arithmetic
    coding, CMYK/YCCK (4 components) or RGB-coded colour, or more than images.MAX_PIXELS pixels."""
    if data[:3] != b"\xff\xd8\xff" or data[-32:].rstrip(b"\0")[-2:] != b"\xff\xd9":
        return None
    i, size, orientation, adobe_transform = 2, None, 1, None
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        segment = data[i + 4 : i + 2 + length]
        if marker in _SOF_OTHER:
            return None
        if marker in _SOF_GPU:
            if len(segment) < 6 or segment[5] not in (1, 3):
                return None
            if segment[5] == 3 and len(segment) >= 15 and bytes(segment[6:15:3]) == b"RGB":
                return None  # components named R, G, B: colour stored as RGB, not YCbCr
            size = int.from_bytes(segment[1:3], "big"), int.from_bytes(segment[3:5], "big")
        elif marker == 0xE1 and segment[:6] == b"Exif\0\0" and orientation == 1:
            orientation = _exif_orientation(segment[6:])
        elif marker == 0xEE and segment[:5] == b"Adobe" and len(segment) >= 12:
            adobe_transform = segment[11]
        elif marker == 0xDA:  # start of scan: the header is over
            break
        i += 2 + length
    if size is None or not (0 < size[0] * size[1] <= MAX_PIXELS) or adobe_transform == 0:
        return None  # adobe_transform 0: three components stored as RGB
    return size[0], size[1], orientation


def _exif_orientation(tiff: bytes) -> int:
    """The Orientation tag (0x0112) of the first image directory of EXIF data (1, upright, if absent)."""
    order = {b"II": "little", b"MM": "big"}.get(bytes(tiff[:2]))
    if order is None or len(tiff) < 8:
        return 1
    start = int.from_bytes(tiff[4:8], order)
    count = int.from_bytes(tiff[start : start + 2], order) if start + 2 <= len(tiff) else 0
    for entry in range(start + 2, start + 2 + 12 * count, 12):
        if entry + 12 > len(tiff):
            break
        if int.from_bytes(tiff[entry : entry + 2], order) == 0x0112:
            value = int.from_bytes(tiff[entry + 8 : entry + 10], order)
            return value if 1 <= value <= 8 else 1
    return 1


def orient(image, orientation: int):
    """Turn a (C, H, W) image upright by its EXIF orientation, as PIL's ImageOps.exif_transpose does."""
    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-2, -1)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-2, -1)
    if orientation == 6:
        return image.rot90(-1, (-2, -1))
    if orientation == 7:
        return image.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:
        return image.rot90(1, (-2, -1))
    return image


def classify_folder(
    path, batch_size: int | None = None, k: int = 7, *, classifier: Classifier | None = None, progress: bool = True
) -> Results:
    """Classify every image in a folder (jpg, png, webp, gif, bmp, tiff), in batches of `batch_size`
    (by default what suits the device: see classify_files)."""
    return classify_files(image_files(path), batch_size, k, classifier=classifier, progress=progress)


def image_files(path) -> list[Path]:
    """The image files directly inside a folder, sorted by name."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ImageError(f"No encuentro la carpeta {folder}.", "Revisa la ruta (¿está bien escrita?).")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ImageError(f"La carpeta {folder} no tiene imágenes.", "Pon dentro archivos jpg, png, webp, gif o bmp.")
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
        fig.suptitle(
            standin_notice("modelo de prueba con pesos aleatorios, sus predicciones no significan nada"), color=ALERT
        )
    fig.tight_layout()
    plt.close(fig)  # returned, not auto-shown: a notebook displays it once
    return fig


def _short(label: str, width: int = 28) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course_utils.vision",
        description="Clasifica imágenes con un ViT y muestra las clases más probables.",
    )
    parser.add_argument("images", nargs="+", help="imágenes o carpetas con imágenes")
    parser.add_argument("--top", type=int, default=7, help="cuántas clases mostrar (por defecto 7)")
    parser.add_argument(
        "--batch-size", type=int, help="imágenes por lote (por defecto 8 en CPU y en GPU las que quepan en su memoria)"
    )
    parser.add_argument("--model", help="modelo de Hugging Face o carpeta (por defecto COURSE_VIT_MODEL)")
    args = parser.parse_args(argv)
    try:
        files = [f for arg in args.images for f in (image_files(arg) if Path(arg).is_dir() else [arg])]
        rows = classify_files(
            files,
            args.batch_size,
            args.top,
            classifier=load_classifier(args.model),
            progress=len(files) > (args.batch_size or CPU_BATCH),
        )
    except CourseError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    for row in rows:
        print(f"\n{row.file}")
        print(f"  Error: {row.error}" if row.error else "\n".join("  " + line for line in row.top.table().splitlines()))
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
