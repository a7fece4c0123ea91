"""What each family of vision models on Ollama does with images, and which Ollama versions run it.

The kit reads a model's family and capabilities once from Ollama's `/api/show` (`llm.model_profile`);
this module holds what that answer does not say: how many images a message may carry, how large an image
is worth sending, and the Ollama releases that load the family. Sources: docs/laboratorio.md, «Qué Ollama
y qué modelo» (Ollama's source at each release tag, and the models' own processors).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Ollama 0.30 moved onto llama.cpp's own server, which has no `mllama`: llama3.2-vision loads up to 0.24.0
# (model/models/mllama exists at v0.24.0 and is gone at v0.30.0).
MLLAMA_LAST_OLLAMA = "0.24.0"
MLLAMA_FIRST_REFUSING = (0, 30)
OLLAMA_INSTALL = "curl -fsSL https://ollama.com/install.sh | OLLAMA_VERSION={version} sh"
# A current vision model that runs on today's Ollama, suggested as the way out of mllama.
SUGGESTED_MODEL = "qwen2.5vl:7b"
LLAMA_POLICY_URL = "https://www.llama.com/llama3_2/use-policy/"


@dataclass(frozen=True)
class Family:
    """How Ollama treats one model family's images."""

    name: str  # general.architecture in /api/show
    title: str
    images_per_message: int | None  # None: as many as the context holds
    images_per_conversation: int | None  # None: every image of the conversation is sent
    max_side: int  # longest side worth sending (the processor shrinks anything larger)
    max_pixels: int
    first_refusing: tuple[int, int] | None = None  # first Ollama version that no longer loads it
    licence: str = ""


FAMILIES = {
    # 4 tiles of 560 px (1×4, 2×2, 4×1…): notebook 06. Ollama's server/prompt.go refuses a second image in a
    # message, and the model sees one image per conversation, so only the most recent one is sent.
    "mllama": Family(
        name="mllama",
        title="Llama 3.2 Vision",
        images_per_message=1,
        images_per_conversation=1,
        max_side=4 * 560,
        max_pixels=4 * 560 * 560,
        first_refusing=MLLAMA_FIRST_REFUSING,
        licence="Llama 3.2 Community License y su política de uso (sin derechos sobre los modelos multimodales "
        "para personas o empresas con sede en la UE)",
    ),
    # One token per 28×28 block (14 px patches merged 2×2); today's Ollama keeps every image between 1024 and
    # 4096 tokens, so more than 4096·28² pixels is shrunk on the server anyway.
    "qwen25vl": Family(
        name="qwen25vl",
        title="Qwen2.5-VL",
        images_per_message=None,
        images_per_conversation=None,
        max_side=8192,
        max_pixels=4096 * 28 * 28,
        licence="Apache-2.0 (la versión 7B)",
    ),
    # Every image becomes 896×896 (256 tokens), whatever its shape.
    "gemma3": Family(
        name="gemma3",
        title="Gemma 3",
        images_per_message=None,
        images_per_conversation=None,
        max_side=2 * 896,
        max_pixels=4 * 896 * 896,
        licence="Gemma Terms of Use",
    ),
}
# A vision model of a family the kit does not know: images as large as mllama's, one per message.
UNKNOWN = Family(
    name="", title="", images_per_message=1, images_per_conversation=None, max_side=4 * 560, max_pixels=4 * 560 * 560
)


@dataclass(frozen=True)
class ModelProfile:
    """One model as the server describes it (/api/show) plus its family's image rules."""

    name: str
    family: str = ""
    capabilities: tuple[str, ...] = ()
    known: bool = True  # False: the server could not be asked; the limits are the cautious defaults

    @property
    def rules(self) -> Family:
        return FAMILIES.get(self.family, UNKNOWN)

    @property
    def vision(self) -> bool:
        return "vision" in self.capabilities or not self.known

    @property
    def images_per_message(self) -> int | None:
        return self.rules.images_per_message

    @property
    def images_per_conversation(self) -> int | None:
        return self.rules.images_per_conversation

    @property
    def title(self) -> str:
        return self.rules.title or self.family or self.name


def default_profile(name: str) -> ModelProfile:
    """The profile used when the server cannot be asked: mllama's cautious limits, vision assumed."""
    return ModelProfile(name, "", ("completion", "vision"), known=False)


def profile_from_show(name: str, show: dict) -> ModelProfile:
    """A model's profile from Ollama's /api/show answer (a dict; older servers have no `capabilities`)."""
    info = show.get("model_info") or show.get("modelinfo") or {}
    details = show.get("details") or {}
    family = info.get("general.architecture") or details.get("family") or ""
    capabilities = show.get("capabilities")
    if capabilities is None:  # servers before `capabilities` existed: a projector or vision keys mean vision
        vision_keys = any(".vision." in key or key.startswith("vision.") for key in info)
        has_vision = bool(show.get("projector_info")) or vision_keys
        capabilities = ["completion", "vision"] if has_vision or family in FAMILIES else ["completion"]
    return ModelProfile(name, family, tuple(capabilities))


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """«0.12.3», «0.30.0-rc1», «v0.24.0» → (major, minor, patch); None when it is not a version."""
    match = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", (text or "").strip())
    return (int(match[1]), int(match[2]), int(match[3] or 0)) if match else None


def runs_on(profile: ModelProfile, version: str | None) -> bool:
    """Does this Ollama version load the model's family? (An unreadable version gets the benefit of doubt.)"""
    first_refusing = profile.rules.first_refusing
    parsed = parse_version(version)
    return first_refusing is None or parsed is None or parsed[:2] < first_refusing


def ways_out(model: str, version: str | None = None) -> str:
    """The two fixes for a model the server no longer loads, as one Spanish hint."""
    on = f" (este servidor tiene la {version})" if version else ""
    return (
        f"Dos salidas: 1) instala en el servidor Ollama {MLLAMA_LAST_OLLAMA}, la última versión que carga «{model}»"
        f"{on}: `{OLLAMA_INSTALL.format(version=MLLAMA_LAST_OLLAMA)}`; o 2) usa un modelo de visión actual: "
        f"`ollama pull {SUGGESTED_MODEL}` y COURSE_LLM_MODEL={SUGGESTED_MODEL}."
    )


def licence_note(profile: ModelProfile) -> str:
    """One line on the model's licence where it matters for a class (Llama 3.2's EU clause)."""
    if profile.family != "mllama":
        return ""
    return (
        "La política de uso de Llama 3.2 no concede derechos sobre sus modelos multimodales a personas ni "
        f"empresas con sede en la UE: consúltalo con tu institución ({LLAMA_POLICY_URL})."
    )


def pinned_ollama(model: str) -> str | None:
    """The Ollama version a server needs for this model, from its name alone (before anything is pulled):
    llama3.2-vision needs the last release that loads mllama; None means today's release is fine."""
    return MLLAMA_LAST_OLLAMA if model.split("/")[-1].startswith("llama3.2-vision") else None


if __name__ == "__main__":  # deploy/install_ollama.sh: `python -m course_utils.vision_models MODEL`
    import sys

    print(pinned_ollama(sys.argv[1] if len(sys.argv) > 1 else "llama3.2-vision") or "")
