"""Images per second of the ViT classifier, four ways, on the same images; prints a Markdown table.

    python benchmarks/bench_vision.py                      # CPU, a vit-base-sized model with random weights
    python benchmarks/bench_vision.py --device cuda --images 64 --batch-size 32
    python benchmarks/bench_vision.py --model google/vit-base-patch16-224   # the real model (needs it cached)

Random weights cost exactly the compute of trained ones, so the default model (ViTConfig's defaults:
vit-base, 12 layers, 768 dimensions, 224×224, 16×16 patches) measures the real speed offline.
The old script's pattern reloads the model and processor for every image, in fp32, as it did.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from course_utils import config
from course_utils.samples import sample_path

ROOT = Path(__file__).resolve().parent.parent  # for the ImageNet labels of tests/assets
RANDOM_BASE = config.cache_dir() / "bench" / "vit-base-random"


def build_random_vit_base(folder: Path) -> Path:
    """A google/vit-base-patch16-224-sized ViT with random weights and the ImageNet labels, saved once."""
    if (folder / "STANDIN.txt").exists():
        return folder
    import torch
    import transformers
    from transformers import ViTConfig, ViTForImageClassification
    from transformers.utils import is_torchvision_available

    # Without torchvision, transformers 5 wants the PIL flavour named explicitly (else it warns).
    processor_class = transformers.ViTImageProcessor
    if not is_torchvision_available():
        processor_class = getattr(transformers, "ViTImageProcessorPil", processor_class)
    labels = json.loads((ROOT / "tests" / "assets" / "imagenet_labels.json").read_text(encoding="utf-8"))
    vit_config = ViTConfig(id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
    torch.manual_seed(0)
    ViTForImageClassification(vit_config).save_pretrained(folder)
    processor_class(size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                      resample=2).save_pretrained(folder)
    (folder / "STANDIN.txt").write_text(
        "Modelo de prueba: ViT del tamaño de vit-base (12 capas, 768 dimensiones) con pesos aleatorios, "
        "para medir velocidad. Sus resultados no significan nada.\n", encoding="utf-8")
    return folder


def old_script(paths, model_name, device):
    """The old desktop script's pattern: load everything again for every image."""
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    for path in paths:
        processor = AutoImageProcessor.from_pretrained(model_name)
        model = AutoModelForImageClassification.from_pretrained(model_name).to(device)
        inputs = processor(images=Image.open(path).convert("RGB"), return_tensors="pt").to(device)
        probs = model(**inputs).logits.softmax(dim=-1)[0]
        values, indices = probs.topk(7)
        [(model.config.id2label[i], p) for i, p in zip(indices.tolist(), values.tolist())]


def images_per_second(run, n_images: int) -> float:
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    start = time.perf_counter()
    run()
    sync()
    return n_images / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model",
                        help="model id or folder (default: a vit-base-sized random model in config.cache_dir())")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--images", type=int, default=8, help="how many images (the samples, repeated)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--skip-old", action="store_true", help="skip the slow old-script pattern")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per method, the best counts (3)")
    args = parser.parse_args(argv)

    os.environ["COURSE_DEVICE"] = args.device
    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from course_utils import vision

    hf_logging.disable_progress_bar()
    device = config.settings().device
    model_name = args.model or str(build_random_vit_base(RANDOM_BASE))
    photos = sorted(sample_path().glob("*.jpg"))
    folder = Path(tempfile.mkdtemp(prefix="bench_vision_"))
    try:
        paths = [folder / f"img_{i:03d}.jpg" for i in range(args.images)]
        for i, path in enumerate(paths):
            shutil.copy(photos[i % len(photos)], path)
        clf = vision.load_classifier(model_name)
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        pipe = pipeline("image-classification", model=model_name, device=device, dtype=dtype)
        precision = "fp16" if dtype == torch.float16 else "fp32"
        n = len(paths)

        runs = {
            "pipeline de transformers, una a una": lambda: [pipe(str(p), top_k=7) for p in paths],
            "vision.top_k, una a una": lambda: [vision.top_k(p, classifier=clf) for p in paths],
            f"vision.classify_folder, lotes de {args.batch_size}":
                lambda: vision.classify_folder(folder, args.batch_size, classifier=clf, progress=False),
        }
        rates = dict.fromkeys(runs, 0.0)
        for run in runs.values():  # warm-up: first calls pay for lazy initialisation
            run()
        # Rounds interleave the methods and the best round counts: others' load only ever slows one down.
        for _ in range(args.rounds):
            for name, run in runs.items():
                rates[name] = max(rates[name], images_per_second(run, n))
        rows = [(name, precision, rate) for name, rate in rates.items()]
        if not args.skip_old:
            rows.insert(0, ("script antiguo (recarga modelo por imagen)", "fp32",
                            images_per_second(lambda: old_script(paths, model_name, device), n)))
        one = [vision.top_k(p, classifier=clf)[0][0] for p in paths]
        many = [r.label for r in vision.classify_folder(folder, args.batch_size, classifier=clf, progress=False)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    gpu = f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else ""
    print(f"\nModelo: {model_name}\nDispositivo: {device}{gpu} | hilos de PyTorch: {torch.get_num_threads()} | "
          f"imágenes: {n} | mejor de {args.rounds} rondas | torch {torch.__version__}")
    print(f"Top-1 de top_k y de classify_folder {'coinciden' if one == many else 'NO coinciden'}.\n")
    old = rows[0][2] if not args.skip_old else None
    pipe_rate = next(rate for name, _, rate in rows if name.startswith("pipeline"))
    print("| método | precisión | imágenes/s | × script antiguo | × pipeline |")
    print("|---|---|---:|---:|---:|")
    for name, prec, rate in rows:
        vs_old = f"{rate / old:.1f}" if old else "—"
        print(f"| {name} | {prec} | {rate:.2f} | {vs_old} | {rate / pipe_rate:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
