"""How a current vision model sees the same photo: Qwen2.5-VL's image processor next to Llama 3.2 Vision's tiles.

Notebook 06 («Otro modelo, otra manera de ver») uses these helpers. Nothing is downloaded: the processor is
transformers' own `Qwen2VLImageProcessorPil` (Qwen2-VL and Qwen2.5-VL share it: `image_processing_auto` maps both
model types to it) with the class's default settings, and the vision tower is a tiny
`Qwen2_5_VisionTransformerPretrainedModel` with random weights.

Qwen resizes the whole photo to sides that are multiples of 28 px (`smart_resize`), cuts it into patches of 14 px
and merges every 2×2 patches into one token that goes *into* the text; Mllama puts the photo on a canvas of up to
4 tiles of 560 px and sends (40 × 40 patches + 1 CLS) vectors per tile to its cross-attention layers.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import Qwen2VLImageProcessorPil
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

from course_utils import llama_vision
from course_utils.display import Table, announce_standin
from course_utils.errors import CourseError
from course_utils.images import open_image

# The defaults of transformers' Qwen2VLImageProcessor (its class attributes and `Qwen2VLImageProcessorKwargs`):
# patches of 14 px, 2×2 patches merged into one token, between 56·56 and 28·28·1280 pixels (4 to 1280 tokens).
QWEN_RULE = {"patch_size": 14, "merge_size": 2, "min_pixels": 56 * 56, "max_pixels": 28 * 28 * 1280}
# Llama 3.2 Vision's published preprocessor and vision configuration (course_utils.llama_vision).
MLLAMA_RULE = {"tile": 560, "patch_size": 14, "max_tiles": 4}
TEMPORAL_PATCH = 2  # Qwen's patches are 2 frames deep (for video): a photo is repeated to fill them
TOKEN_COLOUR = "cyan"  # one token outlined on the photo: it stands out on skin, wood and sky alike
MAX_RATIO = 200  # smart_resize refuses a photo whose long side is more than 200 times its short side

TINY_TOWER = {
    "depth": 2,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_heads": 2,
    "out_hidden_size": 32,
    "fullatt_block_indexes": [1],
}
TINY_NOTE = (
    "este codificador de visión de Qwen2.5-VL es diminuto, con pesos aleatorios y construido aquí mismo (2 capas "
    "de 32 dimensiones): sus parches, su fusión 2×2 y su número de tokens son los del modelo publicado; sus números "
    "no significan nada."
)


def image_processor(**rule) -> Qwen2VLImageProcessorPil:
    """transformers' Qwen2-VL / Qwen2.5-VL image processor (PIL version) with QWEN_RULE; `rule` changes some values."""
    settings = {**QWEN_RULE, **rule}
    return Qwen2VLImageProcessorPil(**settings)


def _check_size(height, width) -> None:
    for name, value in (("alto", height), ("ancho", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise CourseError(
                f"El {name} de la imagen debe ser un número entero de píxeles mayor que 0, no {value!r}.",
                "Pasa (alto, ancho) en píxeles, por ejemplo token_counts(400, 600).",
            )
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise CourseError(
            f"Una imagen de {width}×{height} (ancho×alto) es demasiado alargada para Qwen: un lado mide más de "
            f"{MAX_RATIO} veces el otro.",
            "Recorta la imagen o pártela en trozos menos alargados.",
        )


def qwen_resized_size(height: int, width: int, rule: dict | None = None) -> tuple[int, int]:
    """(height, width) Qwen resizes a photo to: transformers' smart_resize with the rule's constants."""
    rule = {**QWEN_RULE, **(rule or {})}
    _check_size(height, width)
    new_height, new_width = smart_resize(
        int(height),
        int(width),
        factor=rule["patch_size"] * rule["merge_size"],
        min_pixels=rule["min_pixels"],
        max_pixels=rule["max_pixels"],
    )
    return int(new_height), int(new_width)


def token_counts(height: int, width: int, qwen: dict | None = None, mllama: dict | None = None) -> dict:
    """What each model makes of an image of height × width pixels.

    qwen_size: the size Qwen resizes it to; qwen_tokens: its tokens in the text (patches / merge²);
    mllama_tiles: Mllama's real tiles; mllama_tokens: their vectors for the cross-attention layers (patches + CLS).
    """
    qwen = {**QWEN_RULE, **(qwen or {})}
    mllama = {**MLLAMA_RULE, **(mllama or {})}
    new_height, new_width = qwen_resized_size(height, width, qwen)
    patches = (new_height // qwen["patch_size"]) * (new_width // qwen["patch_size"])
    rows, cols = llama_vision.tile_layout(height, width, mllama["tile"], mllama["max_tiles"])
    per_tile = (mllama["tile"] // mllama["patch_size"]) ** 2 + 1
    return {
        "qwen_size": (new_height, new_width),
        "qwen_tokens": patches // qwen["merge_size"] ** 2,
        "mllama_tiles": rows * cols,
        "mllama_tokens": rows * cols * per_tile,
    }


def processor_counts(image, qwen_processor=None, mllama_processor=None, mllama_patch: int = 14) -> dict:
    """The same four numbers, read from what the two processors really return for `image`."""
    qwen_processor = qwen_processor or image_processor()
    mllama_processor = mllama_processor or llama_vision.image_processor()
    picture = open_image(image)
    t, grid_h, grid_w = (int(v) for v in qwen_processor(picture, return_tensors="pt")["image_grid_thw"][0])
    patch = qwen_processor.patch_size
    tiles = int(mllama_processor(picture, return_tensors="pt")["num_tiles"][0][0])
    tile = mllama_processor.size["height"]
    return {
        "qwen_size": (grid_h * patch, grid_w * patch),
        "qwen_tokens": t * grid_h * grid_w // qwen_processor.merge_size**2,
        "mllama_tiles": tiles,
        "mllama_tokens": tiles * ((tile // mllama_patch) ** 2 + 1),
    }


def comparison_table(sizes) -> Table:
    """For each (width, height): both models side by side, worked out here and checked with both processors."""
    qwen_processor, mllama_processor = image_processor(), llama_vision.image_processor()
    rows = []
    for width, height in sizes:
        counts = token_counts(height, width)
        got = processor_counts(np.zeros((height, width, 3), dtype=np.uint8), qwen_processor, mllama_processor)
        new_height, new_width = counts["qwen_size"]
        patch = QWEN_RULE["patch_size"]
        rows.append(
            {
                "imagen (ancho×alto)": f"{width}×{height}",
                "Qwen: redimensionada a": f"{new_width}×{new_height}",
                f"Qwen: parches de {patch} px": f"{new_width // patch}×{new_height // patch}",
                "Qwen: tokens en el texto": counts["qwen_tokens"],
                "Mllama: teselas": counts["mllama_tiles"],
                "Mllama: vectores para la atención cruzada": counts["mllama_tokens"],
                "Mllama: tokens en el texto": 1,
                "¿coincide con los procesadores?": "sí" if got == counts else "NO",
            }
        )
    return Table(rows)


def qwen_picture(pixel_values: torch.Tensor, grid_thw, processor: Qwen2VLImageProcessorPil | None = None) -> np.ndarray:
    """Qwen's flattened patches of one image put back together as a picture (H, W, 3) in [0, 1]."""
    processor = processor or image_processor()
    _t, grid_h, grid_w = (int(v) for v in grid_thw)
    patch, merge, depth = processor.patch_size, processor.merge_size, processor.temporal_patch_size
    # pixel_values: (patches, 3·depth·patch·patch), patches ordered block by block of merge × merge (patchify)
    blocks = pixel_values.reshape(grid_h // merge, grid_w // merge, merge, merge, 3, depth, patch, patch)
    first = blocks[:, :, :, :, :, 0]  # both frames hold the same photo
    picture = first.permute(0, 2, 5, 1, 3, 6, 4).reshape(grid_h * patch, grid_w * patch, 3)
    mean, std = np.array(processor.image_mean), np.array(processor.image_std)
    return np.clip(picture.float().numpy() * std + mean, 0.0, 1.0)


def plot_comparison(image, qwen_processor=None, mllama_processor=None):
    """The same photo as each model receives it, at the same scale: Qwen's resized grid and Mllama's tile canvas."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    qwen_processor = qwen_processor or image_processor()
    mllama_processor = mllama_processor or llama_vision.image_processor()
    picture = open_image(image)
    out = qwen_processor(picture, return_tensors="pt")
    qwen = qwen_picture(out["pixel_values"], out["image_grid_thw"][0], qwen_processor)
    tile = mllama_processor.size["height"]
    layout = llama_vision.tile_layout(picture.height, picture.width, tile, mllama_processor.max_image_tiles)
    canvas = llama_vision.tiles_to_canvas(
        llama_vision.process(picture, mllama_processor)["pixel_values"], layout, mllama_processor
    )
    counts = processor_counts(picture, qwen_processor, mllama_processor)
    step = qwen_processor.patch_size * qwen_processor.merge_size
    height = max(qwen.shape[0], canvas.shape[0])
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(13, 5.6), gridspec_kw={"width_ratios": [qwen.shape[1], canvas.shape[1]]}
    )
    left.imshow(qwen)
    for x in range(step, qwen.shape[1], step):
        left.axvline(x - 0.5, color="white", linewidth=0.6, alpha=0.8)
    for y in range(step, qwen.shape[0], step):
        left.axhline(y - 0.5, color="white", linewidth=0.6, alpha=0.8)
    # One token in the middle of the photo, outlined: its 2×2 patches of 14 px.
    grid_h, grid_w = qwen.shape[0] // step, qwen.shape[1] // step
    x0, y0 = (grid_w // 2) * step - 0.5, (grid_h // 2) * step - 0.5
    half = qwen_processor.patch_size
    left.add_patch(Rectangle((x0, y0), step, step, fill=False, edgecolor=TOKEN_COLOUR, linewidth=2.5))
    left.plot([x0 + half] * 2, [y0, y0 + step], color=TOKEN_COLOUR, linewidth=1.2)
    left.plot([x0, x0 + step], [y0 + half] * 2, color=TOKEN_COLOUR, linewidth=1.2)
    left.set(
        title=(
            f"Qwen2.5-VL: la foto a {qwen.shape[1]}×{qwen.shape[0]} px\n"
            f"{grid_w}×{grid_h} cuadros de {step} px = {counts['qwen_tokens']} tokens dentro del texto\n"
            f"(en azul claro, un token: 2×2 parches de {half} px)"
        ),
        xlim=(-0.5, qwen.shape[1] - 0.5),
        ylim=(height - 0.5, -0.5),
        xlabel="x (píxeles)",
        ylabel="y (píxeles)",
    )
    right.imshow(canvas)
    for k in range(1, layout[1]):
        right.axvline(k * tile - 0.5, color="yellow", linewidth=3)
    for k in range(1, layout[0]):
        right.axhline(k * tile - 0.5, color="yellow", linewidth=3)
    right.set(
        title=(
            f"Llama 3.2 Vision: lienzo de {layout[0]}×{layout[1]} teselas de {tile} px\n"
            f"{counts['mllama_tiles']} × 1601 = {counts['mllama_tokens']} vectores para la atención cruzada\n"
            "y 1 token <|image|> en el texto (en negro, el relleno)"
        ),
        xlim=(-0.5, canvas.shape[1] - 0.5),
        ylim=(height - 0.5, -0.5),
        xlabel="x (píxeles)",
    )
    fig.suptitle(f"La misma foto ({picture.width}×{picture.height} px) en los dos modelos, a la misma escala")
    fig.tight_layout()
    plt.close(fig)
    return fig


# --- the tiny vision tower ---------------------------------------------------------------------------------


def build_tiny_tower(seed: int = 0) -> Qwen2_5_VisionTransformerPretrainedModel:
    """A tiny Qwen2.5-VL vision encoder with random weights (seeded), the published patch and merge; says it is one."""
    announce_standin(TINY_NOTE)
    torch.manual_seed(seed)
    config = Qwen2_5_VLVisionConfig(
        patch_size=QWEN_RULE["patch_size"],
        spatial_merge_size=QWEN_RULE["merge_size"],
        temporal_patch_size=TEMPORAL_PATCH,
        **TINY_TOWER,
    )
    return Qwen2_5_VisionTransformerPretrainedModel(config).eval()


def tower_shapes(tower, processed) -> Table:
    """Run the tower once on the processor's output; the shape at every stage of the way."""
    stages = [
        (tower.patch_embed, "parches: la Conv3d de 2×14×14 y paso 2×14×14"),
        (tower.blocks[-1], "tras las capas del codificador (autoatención entre parches)"),
        (tower.merger, "fusión de parches: cada 2×2 parches → 1 token, a la dimensión del texto"),
    ]
    seen = {}

    def recorder(key):
        def hook(_module, _inputs, output):  # returns None: the output goes on unchanged
            seen.setdefault(key, tuple((output[0] if isinstance(output, tuple) else output).shape))

        return hook

    hooks = [module.register_forward_hook(recorder(i)) for i, (module, _what) in enumerate(stages)]
    try:
        with torch.no_grad():
            tower(processed["pixel_values"], grid_thw=processed["image_grid_thw"])
    finally:
        for hook in hooks:
            hook.remove()
    rows = [
        {"etapa": "pixel_values (el procesador): parches aplanados", "forma": tuple(processed["pixel_values"].shape)}
    ]
    rows += [{"etapa": what, "forma": seen[i]} for i, (_m, what) in enumerate(stages)]
    return Table(rows, left=("etapa",))
