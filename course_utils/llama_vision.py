"""How Llama 3.2 Vision (mllama) sees an image: tiles, the vision encoder, cross-attention and `<|image|>`.

Notebook 06 uses these helpers. Nothing is downloaded: the image processor is transformers' own
`MllamaImageProcessorPil` with the settings Meta published for Llama 3.2 11B Vision, and the model is a
tiny `MllamaForConditionalGeneration` with random weights and the published layout (tiles of 560 px,
patches of 14 px, up to 4 tiles, a cross-attention layer every fifth layer from layer 3 on).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import numpy as np
import torch
from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessorPil
from transformers.models.mllama.image_processing_pil_mllama import (
    get_all_supported_aspect_ratios,
    get_image_size_fit_to_canvas,
    get_optimal_tiled_canvas,
)
from transformers.models.mllama.processing_mllama import (
    convert_sparse_cross_attention_mask_to_dense,
    get_cross_attention_token_mask,
)

from course_utils.display import ALERT, Table, announce_standin
from course_utils.errors import CourseError, OptionError
from course_utils.images import open_image

# preprocessor_config.json of meta-llama/Llama-3.2-11B-Vision-Instruct on the Hugging Face Hub (published
# with the model on 2024-09-25; the base 11B and the 90B models publish the same values). The course runs
# without the hub, so the file's values are written here.
PUBLISHED_PREPROCESSOR = {
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "MllamaImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "max_image_tiles": 4,
    "processor_class": "MllamaProcessor",
    "resample": 2,  # PIL's bilinear
    "rescale_factor": 0.00392156862745098,  # 1/255
    "size": {"height": 560, "width": 560},
}

# config.json of the same repository: the numbers this lesson quotes (the rest of the file is RoPE scaling,
# token ids and dtypes). transformers' MllamaTextConfig and MllamaVisionConfig default to the same values
# (`cross_attention_layers` = [3, 8, 13, 18, 23, 28, 33, 38]), documented as those of Llama-3.2-11B-Vision.
PUBLISHED_CONFIG = {
    "image_token_index": 128256,
    "text_config": {
        "vocab_size": 128256,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 40,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
    },
    "vision_config": {
        "image_size": 560,
        "patch_size": 14,
        "max_num_tiles": 4,
        "hidden_size": 1280,
        "attention_heads": 16,
        "intermediate_size": 5120,
        "num_hidden_layers": 32,
        "num_global_layers": 8,
        "intermediate_layers_indices": [3, 7, 15, 23, 30],
        "vision_output_dim": 7680,
    },
}
PUBLISHED_NAME = "meta-llama/Llama-3.2-11B-Vision-Instruct"

# Special tokens of the published Llama 3.2 tokenizer (tokenizer_config.json) used by the prompt format of
# meta-llama/llama-models, models/llama3_2/vision_prompt_format.md.
SPECIAL_TOKEN_IDS = {
    "<|begin_of_text|>": 128000,
    "<|start_header_id|>": 128006,
    "<|end_header_id|>": 128007,
    "<|eot_id|>": 128009,
    "<|image|>": 128256,
}
IMAGE_TOKEN = "<|image|>"

# The tiny model: the published image side, patch, tiles and cross-attention pattern (every fifth layer from
# layer 3 on), with 32-dimensional layers so that it runs in a second on a CPU.
TINY_CONFIG = {
    "image_token_index": 128,
    "text_config": {
        "vocab_size": 128,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 10,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "cross_attention_layers": [3, 8],
        "max_position_embeddings": 512,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    },
    "vision_config": {
        "image_size": 560,
        "patch_size": 14,
        "max_num_tiles": 4,
        "hidden_size": 32,
        "attention_heads": 2,
        "intermediate_size": 64,
        "num_hidden_layers": 4,
        "num_global_layers": 1,
        "intermediate_layers_indices": [1, 3],
        "vision_output_dim": 96,  # 32 × (1 + 2 intermediate layers), as 1280 × (1 + 5) = 7680 in the 11B
    },
}
TINY_NOTE = (
    "este Llama 3.2 Vision es un modelo diminuto con pesos aleatorios construido aquí mismo (capas de 32 "
    "dimensiones, 10 capas de texto): sus formas y su estructura son las del modelo publicado; sus números "
    "no significan nada."
)
GATE = 1.0  # the tiny model's gates: trained models learn them; at 0 (their initial value) images change nothing

# The prompt of the lesson in the Llama 3 format of Meta's documentation, cut into tokens by hand (the published
# tokenizer may cut the Spanish words differently).
PROMPT_TOKENS = [
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "user",
    "<|end_header_id|>",
    "\n\n",
    "<|image|>",
    "¿",
    "Qué",
    " hay",
    " en",
    " la",
    " foto",
    "?",
    "<|eot_id|>",
    "<|start_header_id|>",
    "assistant",
    "<|end_header_id|>",
    "\n\n",
]


# --- the published configuration and the image processor ---------------------------------------------------


def image_processor(**overrides) -> MllamaImageProcessorPil:
    """transformers' Mllama image processor (its PIL version) with the published settings; `overrides` change some."""
    settings = {k: v for k, v in PUBLISHED_PREPROCESSOR.items() if k not in ("image_processor_type", "processor_class")}
    settings.update(overrides)
    return MllamaImageProcessorPil(**copy.deepcopy(settings))


def published_config() -> MllamaConfig:
    """The published 11B configuration: numbers only, no weights are built or downloaded."""
    return MllamaConfig(**copy.deepcopy(PUBLISHED_CONFIG))


def tiny_config() -> MllamaConfig:
    return MllamaConfig(**copy.deepcopy(TINY_CONFIG))


def published_numbers() -> Table:
    """The published 11B numbers the lesson uses, next to the tiny model's."""
    big, tiny = published_config(), tiny_config()
    rows = [
        ("lado de una tesela (píxeles)", "vision_config.image_size", lambda c: c.vision_config.image_size),
        ("lado de un parche (píxeles)", "vision_config.patch_size", lambda c: c.vision_config.patch_size),
        ("teselas como máximo", "vision_config.max_num_tiles", lambda c: c.vision_config.max_num_tiles),
        ("dimensión del codificador de visión", "vision_config.hidden_size", lambda c: c.vision_config.hidden_size),
        ("capas del codificador (locales + globales)", "num_hidden_layers + num_global_layers", _vision_layers),
        ("capas intermedias que se añaden a la salida", "intermediate_layers_indices", _intermediate),
        (
            "dimensión de la salida de visión",
            "vision_config.vision_output_dim",
            lambda c: c.vision_config.vision_output_dim,
        ),
        ("dimensión del modelo de lenguaje", "text_config.hidden_size", lambda c: c.text_config.hidden_size),
        ("capas del modelo de lenguaje", "text_config.num_hidden_layers", lambda c: c.text_config.num_hidden_layers),
        ("capas de atención cruzada", "text_config.cross_attention_layers", _cross_layers),
        ("id del token <|image|>", "image_token_index", lambda c: c.image_token_index),
    ]
    return Table(
        (
            {"qué": what, "campo": field, "11B publicado": get(big), "diminuto (aleatorio)": get(tiny)}
            for what, field, get in rows
        ),
        left=("qué", "campo"),
    )


def _vision_layers(config) -> str:
    return f"{config.vision_config.num_hidden_layers} + {config.vision_config.num_global_layers}"


def _intermediate(config) -> str:
    return str(list(config.vision_config.intermediate_layers_indices))


def _cross_layers(config) -> str:
    return str(list(config.text_config.cross_attention_layers))


# --- tiles ---------------------------------------------------------------------------------------------------


def supported_layouts(max_tiles: int = 4) -> list[tuple[int, int]]:
    """The (rows, columns) of tiles the processor can choose, in the order of their aspect-ratio ids (1, 2, …).

    transformers' docstring calls the pairs (width, height), but its processor reads them as (rows, columns):
    (2, 1) is two tiles one above the other.
    """
    return [tuple(layout) for layout in get_all_supported_aspect_ratios(max_tiles)]


def tile_layout(height: int, width: int, tile: int = 560, max_tiles: int = 4) -> tuple[int, int]:
    """(rows, columns) of tiles the Mllama processor chooses for an image of height × width pixels."""
    _check_size(height, width)
    canvas_height, canvas_width = get_optimal_tiled_canvas(int(height), int(width), max_tiles, tile)
    return int(canvas_height) // tile, int(canvas_width) // tile


def resized_size(height: int, width: int, layout: tuple[int, int], tile: int = 560) -> tuple[int, int]:
    """(height, width) of the image once resized into its canvas (the rest of the canvas is black padding)."""
    _check_size(height, width)
    new_height, new_width = get_image_size_fit_to_canvas(
        int(height), int(width), layout[0] * tile, layout[1] * tile, tile
    )
    return int(new_height), int(new_width)


def aspect_ratio_id(layout: tuple[int, int], max_tiles: int = 4) -> int:
    """The id the processor gives a layout: its place in supported_layouts, from 1 (0 means «no image»)."""
    layouts = supported_layouts(max_tiles)
    if tuple(layout) not in layouts:
        raise OptionError(
            f"{layout} no es una disposición de teselas posible con {max_tiles} teselas como máximo.",
            f"Las posibles (filas, columnas) son: {layouts}.",
        )
    return layouts.index(tuple(layout)) + 1


def _check_size(height, width) -> None:
    for name, value in (("alto", height), ("ancho", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise CourseError(
                f"El {name} de la imagen debe ser un número entero de píxeles mayor que 0, no {value!r}.",
                "Pasa (alto, ancho) en píxeles, por ejemplo tile_layout(300, 451).",
            )


def process(image, processor: MllamaImageProcessorPil | None = None):
    """Any image (path, bytes, PIL, numpy) through the Mllama processor, as PyTorch tensors (plus num_tiles)."""
    processor = processor or image_processor()
    return processor(open_image(image), return_tensors="pt")


def expected_output(height: int, width: int, processor: MllamaImageProcessorPil | None = None) -> dict:
    """What the processor should return for one image of height × width, worked out from its tile layout."""
    processor = processor or image_processor()
    tile, max_tiles = processor.size["height"], processor.max_image_tiles
    layout = tile_layout(height, width, tile, max_tiles)
    tiles = layout[0] * layout[1]
    return {
        "pixel_values": (1, 1, max_tiles, 3, tile, tile),  # (lote, imágenes, teselas, canales, alto, ancho)
        "aspect_ratio_ids": [[aspect_ratio_id(layout, max_tiles)]],
        "aspect_ratio_mask": [[[1] * tiles + [0] * (max_tiles - tiles)]],
        "num_tiles": [[tiles]],
    }


def processor_summary(output) -> dict:
    """The processor's output in the same form as expected_output."""
    return {
        "pixel_values": tuple(output["pixel_values"].shape),
        "aspect_ratio_ids": output["aspect_ratio_ids"].tolist(),
        "aspect_ratio_mask": output["aspect_ratio_mask"].tolist(),
        "num_tiles": [list(n) for n in output["num_tiles"]],
    }


def layout_table(sizes, processor: MllamaImageProcessorPil | None = None) -> Table:
    """For each (width, height): the layout worked out here and what the processor really returns."""
    processor = processor or image_processor()
    rows = []
    for width, height in sizes:
        expected = expected_output(height, width, processor)
        got = processor_summary(processor(np.zeros((height, width, 3), dtype=np.uint8), return_tensors="pt"))
        tile, max_tiles = processor.size["height"], processor.max_image_tiles
        layout = tile_layout(height, width, tile, max_tiles)
        new_height, new_width = resized_size(height, width, layout, tile)
        rows.append(
            {
                "imagen (ancho×alto)": f"{width}×{height}",
                "teselas (filas×columnas)": f"{layout[0]}×{layout[1]}",
                "redimensionada a": f"{new_width}×{new_height}",
                "aspect_ratio_ids": got["aspect_ratio_ids"][0][0],
                "aspect_ratio_mask": got["aspect_ratio_mask"][0][0],
                "num_tiles": got["num_tiles"][0][0],
                "pixel_values": got["pixel_values"],
                "¿coincide con el procesador?": "sí" if got == expected else "NO",
            }
        )
    return Table(rows)


def tiles_to_canvas(pixel_values: torch.Tensor, layout: tuple[int, int], processor=None) -> np.ndarray:
    """The tiles of one image put back together as a picture (H, W, 3) in [0, 1], normalization undone."""
    processor = processor or image_processor()
    rows, cols = layout
    tiles = pixel_values.reshape(-1, *pixel_values.shape[-3:])[: rows * cols]  # (teselas, 3, t, t)
    tile = tiles.shape[-1]
    grid = tiles.reshape(rows, cols, 3, tile, tile)  # (filas, columnas, 3, t, t)
    canvas = grid.permute(0, 3, 1, 4, 2).reshape(rows * tile, cols * tile, 3)  # (filas·t, columnas·t, 3)
    mean, std = np.array(processor.image_mean), np.array(processor.image_std)
    return np.clip(canvas.float().numpy() * std + mean, 0.0, 1.0)


def plot_tiles(image, processor: MllamaImageProcessorPil | None = None, patch: int = 14):
    """The photo next to what the model receives: its canvas of tiles, the padding and the patches of tile 1."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    processor = processor or image_processor()
    picture = open_image(image)
    tile, max_tiles = processor.size["height"], processor.max_image_tiles
    layout = tile_layout(picture.height, picture.width, tile, max_tiles)
    new_height, new_width = resized_size(picture.height, picture.width, layout, tile)
    canvas = tiles_to_canvas(process(picture, processor)["pixel_values"], layout, processor)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1, 1.4]})
    left.imshow(picture)
    left.set(title=f"La foto: {picture.width}×{picture.height} píxeles", xlabel="x (píxeles)", ylabel="y (píxeles)")
    right.imshow(canvas)
    for k in range(1, layout[1]):
        right.axvline(k * tile - 0.5, color="yellow", linewidth=3)
    for k in range(1, layout[0]):
        right.axhline(k * tile - 0.5, color="yellow", linewidth=3)
    for k in range(1, tile // patch):  # the patch grid, only on the first tile
        right.plot([k * patch - 0.5] * 2, [-0.5, tile - 0.5], color="white", linewidth=0.3, alpha=0.6)
        right.plot([-0.5, tile - 0.5], [k * patch - 0.5] * 2, color="white", linewidth=0.3, alpha=0.6)
    right.add_patch(
        Rectangle((-0.5, -0.5), new_width, new_height, fill=False, edgecolor="cyan", linestyle="--", linewidth=1.5)
    )
    for index in range(layout[0] * layout[1]):
        row, col = divmod(index, layout[1])
        right.text(
            col * tile + tile - 20, row * tile + 45, f"tesela {index + 1}", color="yellow", ha="right", fontsize=11
        )
    right.set(
        title=(
            f"Lo que recibe el modelo: {layout[0]}×{layout[1]} teselas de {tile} px\n"
            f"(la foto a {new_width}×{new_height} en el recuadro; el resto, relleno negro)"
        ),
        xlabel="x (píxeles)",
        ylabel="y (píxeles)",
    )
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_layouts(max_tiles: int = 4, chosen: tuple[int, int] | None = None):
    """The tile layouts the processor can choose, each with its aspect-ratio id; `chosen` highlighted."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    layouts = supported_layouts(max_tiles)
    fig, axes = plt.subplots(1, len(layouts), figsize=(min(1.6 * len(layouts), 10), 2.6))
    for ax, layout in zip(np.atleast_1d(axes), layouts):
        rows, cols = layout
        colour = ALERT if chosen is not None and tuple(chosen) == layout else "#7f8c8d"
        for r in range(rows):
            for c in range(cols):
                ax.add_patch(Rectangle((c, rows - 1 - r), 0.92, 0.92, color=colour, alpha=0.8))
        ax.set(xlim=(-0.1, max_tiles), ylim=(-0.1, max_tiles), aspect="equal", xticks=[], yticks=[])
        ax.set_title(f"{rows}×{cols}\nid {aspect_ratio_id(layout, max_tiles)}", fontsize=10)
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.suptitle(f"Las {len(layouts)} disposiciones (filas×columnas) con {max_tiles} teselas como máximo")
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    plt.close(fig)
    return fig


# --- the vision encoder and the language model -------------------------------------------------------------


def vision_shapes(vision_config, text_hidden_size: int, images: int = 1) -> dict:
    """Sizes along the vision path for one prompt with `images` images, from a vision configuration."""
    per_side = vision_config.image_size // vision_config.patch_size
    patches = per_side * per_side
    tokens = patches + 1  # the class token (CLS) in front, as in a ViT
    padded = tokens + (-tokens) % 8  # the encoder pads each tile to a multiple of 8 tokens
    tiles = vision_config.max_num_tiles  # every tile slot is sent; the unused ones are masked
    output_dim = vision_config.hidden_size * (1 + len(vision_config.intermediate_layers_indices))
    return {
        "patches_per_tile": patches,
        "tokens_per_tile": tokens,
        "padded_tokens_per_tile": padded,
        "vision_output_shape": (1, images, tiles, tokens, output_dim),
        "projected_shape": (1, images, tiles, tokens, text_hidden_size),
        "vision_tokens": images * tiles * tokens,
    }


def build_tiny_model(seed: int = 0, gate: float = GATE) -> MllamaForConditionalGeneration:
    """A tiny MllamaForConditionalGeneration with random weights (seeded) and every gate at `gate`; says it is one."""
    announce_standin(TINY_NOTE)
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(tiny_config()).eval()
    set_gates(model, gate)
    return model


def set_gates(model, value: float) -> None:
    """Every tanh gate of the model (tile embeddings, global encoder, cross-attention layers) at `value`."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.split(".")[-1].startswith("gate") or "_gate" in name:
                parameter.fill_(value)


@contextmanager
def cross_attention_gates(model, value: float):
    """Within the block, the gates of the cross-attention layers are `value` (their own values come back after)."""
    gates = [p for n, p in model.named_parameters() if "cross_attn_attn_gate" in n or "cross_attn_mlp_gate" in n]
    saved = [g.detach().clone() for g in gates]
    try:
        with torch.no_grad():
            for g in gates:
                g.fill_(value)
        yield model
    finally:
        with torch.no_grad():
            for g, old in zip(gates, saved):
                g.copy_(old)


def layer_kinds(model_or_config) -> list[str]:
    """«autoatención» or «atención cruzada» for each layer of the language model."""
    config = getattr(model_or_config, "config", model_or_config)
    text = config.text_config if hasattr(config, "text_config") else config
    cross = set(text.cross_attention_layers)
    return ["atención cruzada" if i in cross else "autoatención" for i in range(text.num_hidden_layers)]


def plot_layer_stacks(configs: dict):
    """The language model's layers, in order, with the cross-attention ones in colour; one row per configuration."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    fig, axes = plt.subplots(len(configs), 1, figsize=(10, 1.3 * len(configs) + 0.6), squeeze=False)
    for ax, (title, config) in zip(axes[:, 0], configs.items()):
        kinds = layer_kinds(config)
        for i, kind in enumerate(kinds):
            cross = kind == "atención cruzada"
            ax.add_patch(Rectangle((i, 0), 0.9, 1, color=ALERT if cross else "#95a5a6"))
            if cross or len(kinds) <= 12:
                ax.text(i + 0.45, 0.5, str(i), ha="center", va="center", color="white", fontsize=8)
        ax.set(xlim=(-0.2, len(kinds)), ylim=(0, 1), yticks=[], xticks=[])
        ax.set_title(f"{title}: {len(kinds)} capas, {kinds.count('atención cruzada')} de atención cruzada", fontsize=11)
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.legend(
        handles=[
            Patch(color="#95a5a6", label="autoatención (texto)"),
            Patch(color=ALERT, label="atención cruzada (imagen)"),
        ],
        loc="lower center",
        ncol=2,
    )
    fig.text(0.5, 0.12, "del token de entrada (izquierda) a los logits (derecha)", ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0.15, 1, 1))
    plt.close(fig)
    return fig


# --- the <|image|> token and a forward pass ------------------------------------------------------------------


def toy_token_ids(tokens: list[str], config) -> list[int]:
    """Ids for the tiny model: `<|image|>` gets the configuration's image token, every other token its own small id.

    A stand-in for the published tokenizer (128 256 tokens), which the course cannot download.
    """
    vocab = {}
    ids = []
    for token in tokens:
        if token == IMAGE_TOKEN:
            ids.append(config.image_token_index)
            continue
        vocab.setdefault(token, 3 + len(vocab))  # 0, 1 and 2 are the tiny model's pad, bos and eos
        ids.append(vocab[token] % config.text_config.vocab_size)
    return ids


def cross_attention_mask(input_ids: list[int], image_token_id: int, num_tiles: int, max_tiles: int = 4) -> torch.Tensor:
    """(1, tokens, 1, max_tiles): which tiles each text token may attend to, as MllamaProcessor builds it."""
    ids = [int(i) for i in input_ids]
    if ids.count(image_token_id) != 1:
        raise CourseError(
            f"El texto tiene {ids.count(image_token_id)} tokens <|image|> y aquí se espera uno "
            "(una imagen por mensaje).",
            "Pon un solo <|image|> en el texto, justo donde va la imagen.",
        )
    sparse = [get_cross_attention_token_mask(ids, image_token_id)]
    dense = convert_sparse_cross_attention_mask_to_dense(sparse, [[num_tiles]], max_tiles, len(ids))
    return torch.from_numpy(dense)


def plot_cross_attention_mask(tokens: list[str], mask: torch.Tensor):
    """Which tile slots each text token may attend to: `mask` as the model takes it, (1, tokens, 1, slots)."""
    import matplotlib.pyplot as plt

    rows = mask[0, :, 0, :].numpy()  # (tokens, huecos de tesela)
    fig, ax = plt.subplots(figsize=(5, 0.3 * len(tokens) + 1.4))
    ax.imshow(rows, cmap="Greens", vmin=0, vmax=1.4, aspect="auto")
    for (i, j), value in np.ndenumerate(rows):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=8)
    ax.set_yticks(range(len(tokens)), [repr(t) for t in tokens], fontsize=8)
    ax.set_xticks(range(rows.shape[1]), [f"hueco {k + 1}" for k in range(rows.shape[1])], fontsize=8)
    if IMAGE_TOKEN in tokens:
        at = tokens.index(IMAGE_TOKEN)
        ax.axhline(at - 0.5, color=ALERT, linewidth=2)
        ax.get_yticklabels()[at].set_color(ALERT)
    ax.set_title("Qué teselas puede mirar cada token del texto\n(1: sí; 0: no)", fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def model_inputs(model, image, tokens: list[str] | None = None, processor=None) -> dict:
    """Everything the model's forward takes for one image and one prompt (toy ids), with the real processor."""
    processor = processor or image_processor()
    pictures = process(image, processor)
    ids = toy_token_ids(tokens or PROMPT_TOKENS, model.config)
    return {
        "input_ids": torch.tensor([ids]),
        "pixel_values": pictures["pixel_values"],
        "aspect_ratio_ids": pictures["aspect_ratio_ids"],
        "aspect_ratio_mask": pictures["aspect_ratio_mask"],
        "cross_attention_mask": cross_attention_mask(
            ids, model.config.image_token_index, pictures["num_tiles"][0][0], processor.max_image_tiles
        ),
    }


def stage_shapes(model, inputs: dict):
    """Run the model once; return its output and a table with the shape at every stage of the way."""
    inner = model.model
    first_cross = inner.language_model.layers[model.config.text_config.cross_attention_layers[0]]
    stages = [
        (inner.vision_model.patch_embedding, "parches de cada tesela: la Conv2d de 14×14 y paso 14", _shape),
        (inner.vision_model, "salida del codificador de visión (última capa + intermedias)", _last_hidden),
        (inner.multi_modal_projector, "proyectada a la dimensión del modelo de lenguaje", _shape),
        (first_cross, "el texto tras la primera capa de atención cruzada", _shape),
        (model.lm_head, "logits: una puntuación por token del vocabulario", _shape),
    ]
    seen = {}

    def recorder(key, read):
        def hook(_module, _inputs, output):  # returns None: the output goes on unchanged
            seen.setdefault(key, read(output))

        return hook

    hooks = [module.register_forward_hook(recorder(i, read)) for i, (module, _what, read) in enumerate(stages)]
    try:
        with torch.no_grad():
            output = model(**inputs)
    finally:
        for hook in hooks:
            hook.remove()
    rows = [{"etapa": "pixel_values (el procesador)", "forma": tuple(inputs["pixel_values"].shape)}]
    rows += [{"etapa": what, "forma": seen[i]} for i, (_m, what, _r) in enumerate(stages)]
    return output, Table(rows, left=("etapa",))


def _shape(output) -> tuple:
    return tuple((output[0] if isinstance(output, tuple) else output).shape)


def _last_hidden(output) -> tuple:
    return tuple(output.last_hidden_state.shape)


def image_effect(model, inputs_a: dict, inputs_b: dict) -> torch.Tensor:
    """For each text token: the largest change in its logits when the image of inputs_a is swapped for inputs_b's."""
    with torch.no_grad():
        logits_a = model(**inputs_a).logits[0]
        logits_b = model(**inputs_b).logits[0]
    return (logits_a - logits_b).abs().amax(dim=-1)  # (tokens,)
