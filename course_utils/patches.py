"""A Vision Transformer seen from the inside: patches, patch embedding, positions and attention.

Notebook 03 uses these helpers with the configured ViT (`course_utils.vision.load_classifier`);
they work for any ViT of the `transformers` family, whatever its size or weights.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from course_utils.errors import CourseError, ImageError
from course_utils.images import open_image


def square_image(source, size: int = 224):
    """Open any image and resize it to size×size (as the ViT processor does: no crop, bilinear)."""
    from PIL import Image

    return open_image(source).resize((size, size), Image.Resampling.BILINEAR)


def to_patches(image: np.ndarray, patch: int = 16) -> np.ndarray:
    """(H, W, C) array → (rows·cols, patch, patch, C), patches read left to right, top to bottom."""
    image = np.asarray(image)
    h, w = image.shape[:2]
    if h % patch or w % patch:
        raise ImageError(
            f"Una imagen de {w}×{h} no se divide en parches de {patch}×{patch}.",
            f"Redimensiónala a un múltiplo de {patch} (por ejemplo con square_image).",
        )
    rows, cols = h // patch, w // patch
    grid = image.reshape(rows, patch, cols, patch, -1).swapaxes(1, 2)
    return grid.reshape(rows * cols, patch, patch, -1)


def from_patches(patches: np.ndarray, cols: int) -> np.ndarray:
    """Inverse of `to_patches`: put the sequence back as an image `cols` patches wide."""
    n, p, _, c = patches.shape
    rows = n // cols
    return patches.reshape(rows, cols, p, p, c).swapaxes(1, 2).reshape(rows * p, cols * p, c)


def flatten_patches(pixel_values: torch.Tensor, patch: int = 16) -> torch.Tensor:
    """(B, C, H, W) → (B, patches, C·patch·patch), each patch flattened channel first.

    That is the order of a Conv2d weight (out, C, patch, patch), so a Linear layer with the conv's
    weight reshaped to (out, C·patch·patch) computes the same patch embedding.
    """
    b, c, h, w = pixel_values.shape
    x = pixel_values.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


def conv_as_linear(conv: nn.Conv2d) -> nn.Linear:
    """A Linear layer with the same weights as a patch-embedding Conv2d (kernel = stride)."""
    out, c, kh, kw = conv.weight.shape
    if conv.stride != (kh, kw) or kh != kw:
        raise CourseError(
            "Esta convolución no corta la imagen en parches (su paso no es igual al tamaño de su núcleo).",
            "Usa model.vit.embeddings.patch_embeddings.projection de un ViT.",
        )
    linear = nn.Linear(c * kh * kw, out, bias=conv.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.reshape(out, -1))
        if conv.bias is not None:
            linear.bias.copy_(conv.bias)
    return linear.to(conv.weight.device, conv.weight.dtype)


@torch.no_grad()
def patch_embedding_both_ways(model, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ViT's patch embedding computed as its Conv2d and as a Linear on flattened patches.

    Both in float64 on the CPU (so rounding cannot hide a difference), shape (B, patches, hidden).
    """
    conv = _vit(model).embeddings.patch_embeddings.projection
    conv = _double_copy(conv)  # the model may be float16 on a GPU
    x = pixel_values.double().cpu()
    as_conv = conv(x).flatten(2).transpose(1, 2)
    as_linear = conv_as_linear(conv)(flatten_patches(x, conv.kernel_size[0]))
    return as_conv, as_linear


def _double_copy(conv: nn.Conv2d) -> nn.Conv2d:
    copy = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, dtype=torch.float64)
    copy.load_state_dict({k: v.double().cpu() for k, v in conv.state_dict().items()})
    return copy


def _vit(model):
    """The ViT body of a classifier (or the body itself)."""
    return getattr(model, "vit", model)


def pixel_values(classifier, image) -> torch.Tensor:
    """The model's input for `image`: (1, 3, 224, 224), normalized, on the model's device and dtype."""
    inputs = classifier.processor(images=open_image(image), return_tensors="pt")["pixel_values"]
    return inputs.to(classifier.device, classifier.model.dtype)


def position_similarity(position_embeddings: torch.Tensor) -> torch.Tensor:
    """Cosine similarity between the position embeddings of every pair of patches.

    position_embeddings: (1 or nothing, 1 + side², D), CLS first. Returns (side, side, side, side):
    [i, j] is the map of how similar position (i, j) is to every other position.
    """
    pos = position_embeddings.detach().float().cpu().reshape(-1, position_embeddings.shape[-1])[1:]
    side = int(round(len(pos) ** 0.5))
    if side * side != len(pos):
        raise CourseError(
            f"{len(pos)} posiciones no forman una cuadrícula cuadrada.", "Usa un ViT de imágenes cuadradas."
        )
    unit = nn.functional.normalize(pos, dim=-1)
    return (unit @ unit.T).reshape(side, side, side, side)


def attentions(classifier, image) -> tuple[torch.Tensor, ...]:
    """Attention weights of every layer for one image: a tuple of (heads, tokens, tokens), float32."""
    if classifier.standin:
        print(f"Aviso: {classifier.standin}")
    return model_attentions(classifier.model, pixel_values(classifier, image))


@torch.no_grad()
def model_attentions(model, pixels: torch.Tensor, index: int = 0) -> tuple[torch.Tensor, ...]:
    """Attention weights of every layer of a ViT for image `index` of the batch `pixels`.

    A model with fused attention (SDPA, never forms the weights) runs this call with eager attention
    and then goes back to SDPA (vision.attention_on_demand, which vision.load_classifier applies too).
    """
    from course_utils.vision import attention_on_demand  # same layer: models and services

    out = attention_on_demand(model)(pixel_values=pixels, output_attentions=True)
    if not out.attentions or out.attentions[0] is None:
        raise CourseError(
            "El modelo no devolvió sus pesos de atención.",
            "Usa un ViT de transformers, por ejemplo el de vision.load_classifier().",
        )
    return tuple(a[index].float().cpu() for a in out.attentions)


def cls_attention(layer_attention: torch.Tensor) -> torch.Tensor:
    """How much the CLS token looks at each patch, per head: (heads, tokens, tokens) → (heads, side, side)."""
    row = layer_attention[:, 0, 1:]
    side = int(round(row.shape[-1] ** 0.5))
    return row.reshape(-1, side, side)


def attention_rollout(layers: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each output token draws on each input token.

    Per layer the heads are averaged and the residual connection is added as 0.5·A + 0.5·I (rows
    renormalized); then the layers are multiplied, last layer on the left: R = Â_L ··· Â_2 · Â_1.
    Each input is (heads, tokens, tokens); the result is (tokens, tokens) and every row sums to 1.
    """
    if not layers:
        raise CourseError("No hay capas de atención que combinar.", "Pasa la salida de attentions(...).")
    rollout = None
    for layer in layers:
        a = layer.float().mean(dim=0)
        a = 0.5 * a + 0.5 * torch.eye(a.shape[-1])
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    return rollout


# --- A micro-ViT trained in seconds, so that offline attention means something -------------------

QUADRANTS = ["arriba a la izquierda", "arriba a la derecha", "abajo a la izquierda", "abajo a la derecha"]


def synthetic_squares(n: int, size: int = 32, square: int = 8, seed: int = 0):
    """Dim noise with one bright square; the label is the quadrant of its centre (see QUADRANTS).

    Returns images (n, 3, size, size) in [-1, 1], as a ViT processor would give, and labels (n,).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=g) * 0.3
    corner = torch.randint(0, size - square + 1, (n, 2), generator=g)
    for i, (r, c) in enumerate(corner.tolist()):
        x[i, :, r : r + square, c : c + square] = 1.0
    centre = corner + square / 2
    labels = (centre[:, 0] >= size / 2).long() * 2 + (centre[:, 1] >= size / 2).long()
    return x.expand(-1, 3, -1, -1) * 2 - 1, labels


def warmup_cosine(step: int, steps: int) -> float:
    """Learning-rate factor: a linear warm-up over the first tenth, then half a cosine down to 0."""
    warmup = steps // 10
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))


def train_micro_vit(steps: int = 250, seed: int = 0):
    """Train a 2-layer ViT (32×32 images, 8×8 patches) to find the square. Returns (model, test accuracy).

    It converges from any seed and on any CPU (whose vector kernels round differently) because its
    initial weights are sized for its width and its learning rate warms up and then decays to zero.
    """
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    # ViT-base's 0.02 suits 768-wide layers; at 32 wide it leaves attention near zero and training
    # stuck on a plateau for a number of steps that changes with the seed and the CPU.
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=0.1,
        id2label=dict(enumerate(QUADRANTS)),
        label2id={q: i for i, q in enumerate(QUADRANTS)},
    )
    config._attn_implementation = "eager"  # so that output_attentions works
    model = ViTForImageClassification(config).train()
    images, labels = synthetic_squares(3000, seed=seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, steps))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # such tiny matrices run several times faster on one thread
    try:
        for _ in range(steps):
            batch = torch.randint(0, len(images), (64,))
            loss = nn.functional.cross_entropy(model(pixel_values=images[batch]).logits, labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    finally:
        torch.set_num_threads(threads)
    test_images, test_labels = synthetic_squares(500, seed=seed + 1)
    with torch.no_grad():
        accuracy = (model.eval()(pixel_values=test_images).logits.argmax(-1) == test_labels).float().mean().item()
    return model, accuracy


def to_picture(pixels: torch.Tensor) -> np.ndarray:
    """A normalized (3, H, W) tensor in [-1, 1] back to an (H, W, 3) uint8 picture."""
    return ((pixels.detach().float().cpu().permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).round().byte().numpy()


# --- Figures (each returns its Figure; Spanish titles and labels) ---------------------------------


def _tiles(tiles: np.ndarray, cols: int, gap: int, fill=1.0) -> np.ndarray:
    """Lay (n, h, w[, c]) tiles on a canvas `cols` wide, separated by `gap` pixels of `fill`."""
    n, h, w = tiles.shape[:3]
    rows = -(-n // cols)
    canvas = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, *tiles.shape[3:]), fill, dtype=float)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        canvas[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    return canvas


def plot_patch_grid(image, patch: int = 16):
    """The image next to the same image cut into its grid of patches."""
    import matplotlib.pyplot as plt

    array = np.asarray(image) / 255.0
    tiles = to_patches(array, patch)
    cols = array.shape[1] // patch
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5.5))
    left.imshow(array)
    left.set(title=f"Imagen de {array.shape[1]}×{array.shape[0]} píxeles", xlabel="x (píxeles)", ylabel="y (píxeles)")
    right.imshow(_tiles(tiles, cols, gap=2))
    right.set(
        title=f"{len(tiles)} parches de {patch}×{patch} ({cols}×{len(tiles) // cols})",
        xlabel="columna de parches",
        ylabel="fila de parches",
    )
    centers = np.arange(cols) * (patch + 2) + patch / 2
    right.set_xticks(centers[::2], range(0, cols, 2))
    right.set_yticks(centers[::2], range(0, len(tiles) // cols, 2))
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_patch_sequence(image, patch: int = 16, per_row: int = 28):
    """The patches as the transformer reads them: one sequence, left to right and top to bottom."""
    import matplotlib.pyplot as plt

    tiles = to_patches(np.asarray(image) / 255.0, patch)
    canvas = _tiles(tiles, per_row, gap=3)
    fig, ax = plt.subplots(figsize=(12, 12 * canvas.shape[0] / canvas.shape[1] + 1))
    ax.imshow(canvas)
    step = patch + 3
    ax.set_xticks(np.arange(0, per_row, 4) * step + patch / 2, np.arange(1, per_row + 1, 4))
    ax.set_yticks(
        np.arange(-(-len(tiles) // per_row)) * step + patch / 2,
        [f"{i * per_row + 1}–{min((i + 1) * per_row, len(tiles))}" for i in range(-(-len(tiles) // per_row))],
    )
    ax.set(
        title=f"La imagen como secuencia de {len(tiles)} parches (en orden de lectura)",
        xlabel="posición dentro de la fila",
        ylabel="parches n.º",
    )
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_position_similarity(similarity: torch.Tensor):
    """The classic panel: for each patch position, its cosine similarity to every other position."""
    import matplotlib.pyplot as plt

    side = similarity.shape[0]
    tiles = similarity.reshape(side * side, side, side).numpy()
    canvas = _tiles(tiles, side, gap=1, fill=np.nan)
    fig, ax = plt.subplots(figsize=(9, 8))
    image = ax.imshow(canvas, cmap="viridis", vmin=-1, vmax=1)
    centers = np.arange(side) * (side + 1) + side / 2 - 0.5
    ax.set_xticks(centers[::2], range(0, side, 2))  # counted from 0, as in plot_patch_grid
    ax.set_yticks(centers[::2], range(0, side, 2))
    ax.set(title="Similitud coseno entre embeddings de posición", xlabel="columna del parche", ylabel="fila del parche")
    fig.colorbar(image, ax=ax, label="Similitud coseno", shrink=0.8)
    plt.close(fig)
    return fig


def _overlay(ax, image, heat: np.ndarray, norm, title: str = "", cmap: str = "inferno"):
    """`heat` (a grid of patches) drawn over `image` with the colour scale `norm`; returns the heat layer."""
    height, width = np.asarray(image).shape[:2]
    ax.imshow(image)
    heat = np.maximum(heat, norm.vmin)  # a weight of 0 would be a hole in a logarithmic scale
    layer = ax.imshow(heat, cmap=cmap, norm=norm, alpha=0.65, extent=(0, width, height, 0), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return layer


def cls_attention_norm(maps: torch.Tensor):
    """One logarithmic colour scale for all `maps`: from a tenth of the uniform share to the largest weight.

    The same colour is the same weight in every panel, so a nearly uniform head looks uniform.
    """
    from matplotlib.colors import LogNorm

    uniform = 1 / maps[0, 0].numel() if maps.dim() == 4 else 1 / maps[0].numel()
    return LogNorm(vmin=uniform / 10, vmax=max(float(maps.max()), uniform * 2))


def plot_cls_attention_layers(image, layers, title: str = "¿Dónde mira el token CLS? Todas las capas y cabezas"):
    """A grid: one row per layer, the mean of the heads and then every head, on one shared colour scale."""
    maps = torch.stack([cls_attention(layer) for layer in layers])  # (layers, heads, side, side)
    grid = torch.cat([maps.mean(dim=1, keepdim=True), maps], dim=1)  # (layers, 1 + heads, side, side)
    heads = maps.shape[1]
    columns = ["media de las cabezas"] + [f"cabeza {h + 1}" for h in range(heads)]
    return _attention_grid(image, grid, [f"capa {i + 1}" for i in range(len(maps))], columns, title)


def plot_cls_attention(image, maps: torch.Tensor, title: str = "Atención del token CLS en una capa"):
    """One panel per head of one layer ((heads, side, side) from cls_attention), on one shared colour scale."""
    return _attention_grid(image, maps[None], [""], [f"Cabeza {h + 1}" for h in range(len(maps))], title)


def _attention_grid(image, grid: torch.Tensor, row_labels: list[str], column_labels: list[str], title: str):
    import matplotlib.pyplot as plt

    rows, cols = grid.shape[:2]
    norm = cls_attention_norm(grid)
    size = 1.45 if cols > 6 else 2.4
    fig, axes = plt.subplots(
        rows, cols, figsize=(size * cols + 1.6, size * rows + 0.9), squeeze=False, layout="constrained"
    )
    for r in range(rows):
        for c in range(cols):
            layer = _overlay(axes[r, c], image, grid[r, c].numpy(), norm, column_labels[c] if r == 0 else "")
        axes[r, 0].set_ylabel(row_labels[r])
    count = grid[0, 0].numel()
    bar = fig.colorbar(
        layer,
        ax=axes.ravel().tolist(),
        extend="min",
        aspect=30,
        shrink=min(1.0, 0.5 + 0.1 * rows),
        label="Peso de atención",
    )
    bar.ax.axhline(1 / count, color="white", linewidth=2)
    fig.supxlabel(
        f"Una sola escala (logarítmica) para todos los paneles; la línea blanca de la barra es el reparto "
        f"uniforme, 1/{count}. Falta el peso que el CLS se da a sí mismo.",
        fontsize=9,
    )
    fig.suptitle(title)
    plt.close(fig)
    return fig


def plot_rollout(image, rollout: torch.Tensor):
    """The image, and the CLS row of the attention rollout over it, with its colour bar."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    row = rollout[0, 1:]
    side = int(round(row.numel() ** 0.5))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.8), layout="constrained")
    left.imshow(image)
    left.set_title("Imagen de entrada")
    left.axis("off")
    heat = row.reshape(side, side).numpy()
    layer = _overlay(right, image, heat, Normalize(0, float(heat.max())), "Atención acumulada (rollout) del token CLS")
    fig.colorbar(layer, ax=right, label="Parte del CLS que viene de cada parche")
    plt.close(fig)
    return fig
