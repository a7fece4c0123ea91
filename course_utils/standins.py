"""Stand-ins («modelos de sustitución»): a tiny model with random weights, saved in the real format.

With no network and a model that is not here, COURSE_STANDINS=1 lets a lesson run to the end: the
real loading code reads the stand-in, and every result it gives carries its notice («Aviso: Modelo
de sustitución…»). Its predictions mean nothing; the shapes, the code paths and the exercises work.
The tests build the same models (tests/standins.py) with their own notice.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path

from course_utils import config, files

VERSION = "v1"  # bump when a builder changes, so copies in the cache are rebuilt
VIT_NOTE = (
    "Modelo de sustitución: ViT diminuto (2 capas, 48 dimensiones) con pesos aleatorios y las 1000 clases "
    "de ImageNet, porque el modelo configurado no está descargado y no hay conexión (COURSE_STANDINS=1). "
    "Sus resultados no significan nada."
)
WHISPER_NOTE = (
    "Modelo de sustitución: Whisper diminuto (2+2 capas, 64 dimensiones) con pesos aleatorios, porque el "
    "modelo configurado no está descargado y no hay conexión (COURSE_STANDINS=1). Transcribe ruido."
)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names, in order (as google/vit-base-patch16-224's id2label)."""
    path = resources.files("course_utils") / "labels" / "imagenet_labels.json"
    return json.loads(path.read_text(encoding="utf-8"))


def build_vit(folder: Path, note: str) -> Path:
    """A 2-layer ViT for 224x224 images and 16x16 patches with the ImageNet labels, saved with
    `save_pretrained` in `folder`, with `note` in its STANDIN.txt (what config.standin_note reads)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    labels = imagenet_labels()
    vit_config = ViTConfig(
        image_size=224,
        patch_size=16,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=3,
        intermediate_size=96,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(0)
    model = ViTForImageClassification(vit_config).eval()
    # Same preprocessing as google/vit-base-patch16-224.
    processor = ViTImageProcessor(
        size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=2
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / config.STANDIN_MARKER).write_text(note + "\n", encoding="utf-8")
    return folder


def build_whisper(folder: Path, note: str) -> Path:
    """A 2+2-layer multilingual Whisper in the checkpoint format `whisper.load_model(path)` reads, saved
    as `folder`/whisper-tiny-random.pt, with `note` in the folder's STANDIN.txt."""
    import torch
    from whisper.model import ModelDimensions, Whisper
    from whisper.tokenizer import get_tokenizer

    dims = ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=64,
        n_audio_head=2,
        n_audio_layer=2,
        n_vocab=51865,
        n_text_ctx=448,
        n_text_state=64,
        n_text_head=2,
        n_text_layer=2,
    )
    torch.manual_seed(0)
    model = Whisper(dims)
    # openai-whisper leaves the decoder's positional embedding uninitialised (torch.empty: a real
    # checkpoint overwrites it); fill it so the stand-in is the same on every machine.
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)
    # With random weights one special token tends to win every step and the text comes out empty;
    # zeroing the special tokens' rows makes the stand-in write (meaningless) text on every machine.
    first_special = get_tokenizer(multilingual=True).eot
    with torch.no_grad():
        model.decoder.token_embedding.weight[first_special:] = 0
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "whisper-tiny-random.pt"
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": model.state_dict()}, path)
    (folder / config.STANDIN_MARKER).write_text(note + "\n", encoding="utf-8")
    return path


def vit_standin() -> Path:
    """The ViT stand-in for a missing model (a save_pretrained folder), built once in COURSE_CACHE_DIR."""
    return _built("vit", lambda folder: build_vit(folder, VIT_NOTE))


def whisper_standin() -> Path:
    """The Whisper stand-in for a missing model (a .pt checkpoint), built once in COURSE_CACHE_DIR."""
    return _built("whisper", lambda folder: build_whisper(folder, WHISPER_NOTE)) / "whisper-tiny-random.pt"


def _built(name: str, build) -> Path:
    """COURSE_CACHE_DIR/sustitutos/<version>/<name>, built by `build(folder)` the first time."""
    folder = config.cache_dir() / "sustitutos" / VERSION / name
    if not (folder / config.STANDIN_MARKER).is_file():
        files.build_folder(folder, build)
    return folder
