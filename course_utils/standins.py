"""Stand-ins («modelos de sustitución»): a tiny model with random weights, saved in the real format.

With no network and a model that is not here, COURSE_STANDINS=1 lets a lesson run to the end: the
real loading code reads the stand-in, and every result it gives carries its notice («Aviso: Modelo
de sustitución…»). Its predictions mean nothing; the shapes, the code paths and the exercises work.
The tests build the same models (tests/standins.py) with their own notice.
"""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path

from course_utils import config

VERSION = "v1"  # bump when a builder changes, so copies in the cache are rebuilt
VIT_NOTE = (
    "Modelo de sustitución: ViT diminuto (2 capas, 48 dimensiones) con pesos aleatorios y las 1000 clases "
    "de ImageNet, porque el modelo configurado no está descargado y no hay conexión (COURSE_STANDINS=1). "
    "Sus resultados no significan nada."
)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names, in order (as google/vit-base-patch16-224's id2label)."""
    path = resources.files("course_utils") / "data" / "imagenet_labels.json"
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


def vit_standin() -> Path:
    """The ViT stand-in for a missing model, built once in COURSE_CACHE_DIR/sustitutos."""
    folder = config.cache_dir() / "sustitutos" / VERSION / "vit"
    if not (folder / config.STANDIN_MARKER).is_file():
        tmp = folder.with_name(f"vit.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        build_vit(tmp, VIT_NOTE)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            tmp.rename(folder)
        except OSError:  # another kernel finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
