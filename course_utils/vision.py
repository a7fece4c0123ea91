"""Image classification with a Vision Transformer: the old top-7 desktop script, done right."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from course_utils import config
from course_utils.errors import ModelLoadError


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
    """Load the configured ViT classifier once per kernel (later calls return the same object)."""
    cfg = config.settings()
    return _load(model or cfg.vit_model, cfg.device)


@lru_cache(maxsize=4)
def _load(name: str, device: str) -> Classifier:
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    try:
        # Eager attention so that `output_attentions=True` works (attention maps in notebook 03).
        model = AutoModelForImageClassification.from_pretrained(
            name, attn_implementation="eager",
            dtype=torch.float16 if device.startswith("cuda") else torch.float32,
        )
        processor = AutoImageProcessor.from_pretrained(name)
    except OSError as exc:
        raise ModelLoadError(
            f"No pude cargar el modelo de visión «{name}».",
            "Revisa COURSE_VIT_MODEL; si es un identificador de Hugging Face, la primera vez hace "
            "falta internet para descargarlo.",
        ) from exc
    standin = config.standin_note(name)
    if standin:
        print(f"Aviso: {standin}")
    return Classifier(name, model.to(device).eval(), processor, device, standin)
