"""Images per second of the ViT classifier, side by side in one run, on the same JPEG files; prints a Markdown table.

    python benchmarks/bench_vision.py                      # CPU, a vit-base-sized model with random weights
    python benchmarks/bench_vision.py --device cuda        # GPU: 4096 images, the kit's batch size
    python benchmarks/bench_vision.py --model google/vit-base-patch16-224   # the real model (needs it cached)

Rows: the old desktop script's pattern (reloads the model and processor for every image, in fp32, as it
did; --skip-old leaves it out); transformers' pipeline as people call it (one image at a time) and in its
strongest configuration (batched, half precision on a GPU, the fast torchvision processor where it
imports, with and without DataLoader worker processes); the kit (vision.top_k one by one and
vision.classify_folder on the JPEG files); and the model alone on input tensors already on the device,
the ceiling. Each row gives images/s, its ratio to the pipeline one by one, to the best pipeline and to
the model alone, and the fraction of the roofline: the model's FLOPs per image (35.1 GFLOP for ViT-B/16)
at the dense bf16 matrix rate, ~800 TFLOP/s on an H100 (measured in the same run with --measure-peak).

Random weights cost exactly the compute of trained ones, so the default model (ViTConfig's defaults:
vit-base, 12 layers, 768 dimensions, 224×224, 16×16 patches) measures the real speed offline.
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

ROOT = Path(__file__).resolve().parent.parent  # for the ImageNet labels of course_utils/data
RANDOM_BASE = config.cache_dir() / "bench" / "vit-base-random"
H100_BF16_TFLOPS = 800.0  # dense bf16 matrix products, as measured on this workplace's H100s (~790-798)


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
    labels = json.loads((ROOT / "course_utils" / "labels" / "imagenet_labels.json").read_text(encoding="utf-8"))
    vit_config = ViTConfig(id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
    torch.manual_seed(0)
    ViTForImageClassification(vit_config).save_pretrained(folder)
    processor_class(
        size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3, resample=2
    ).save_pretrained(folder)
    (folder / "STANDIN.txt").write_text(
        "Modelo de prueba: ViT del tamaño de vit-base (12 capas, 768 dimensiones) con pesos aleatorios, "
        "para medir velocidad. Sus resultados no significan nada.\n",
        encoding="utf-8",
    )
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


def vit_flops(cfg) -> float:
    """Multiply-adds ×2 of one image through a ViT classifier: patch embedding, the layers, the head."""
    patches = (cfg.image_size // cfg.patch_size) ** 2
    tokens, d, ff = patches + 1, cfg.hidden_size, cfg.intermediate_size
    embed = patches * (3 * cfg.patch_size**2) * d
    layer = tokens * (4 * d * d + 2 * d * ff) + 2 * tokens * tokens * d
    return 2 * (embed + cfg.num_hidden_layers * layer + d * cfg.num_labels)


def matmul_tflops(device) -> float:
    """The dense bf16 matrix-product rate of this GPU: 8192³ products on random data, mean of 10 after 3."""
    import torch

    a, b = (torch.randn(8192, 8192, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    return 10 * 2 * 8192**3 / (time.perf_counter() - start) / 1e12


def kit_with_threads(vision, folder, batch, clf, threads: int):
    """classify_folder with another number of preparing threads on the GPU path (the default is measured too)."""
    default, vision.GPU_PREPARE_THREADS = vision.GPU_PREPARE_THREADS, threads
    try:
        return vision.classify_folder(folder, batch, classifier=clf, progress=False)
    finally:
        vision.GPU_PREPARE_THREADS = default


def stages(clf, paths, batch: int) -> dict[str, float]:
    """Images/s of each step of the kit's GPU path alone, on the same files (for finding the bottleneck)."""
    import torch

    from course_utils import vision

    rows = [vision.Row(str(p)) for p in paths]
    loader = vision.batch_loader(clf)
    datas = [p.read_bytes() for p in paths]
    out = {}
    out["leer archivos y cabeceras"] = images_per_second(
        lambda: [vision.jpeg_header(p.read_bytes()) for p in paths], len(paths)
    )
    if isinstance(loader, vision.GpuJpegLoader):
        decode_jpeg, mode = vision._torchvision_jpeg()
        encoded = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]

        def decode():
            return [
                decode_jpeg(encoded[i : i + batch], mode=mode.RGB, device=clf.device)
                for i in range(0, len(encoded), batch)
            ]

        decode()
        out["decodificar JPEG en GPU (nvJPEG, por lotes)"] = images_per_second(decode, len(paths))
        decoded = [img for chunk in decode() for img in chunk]
        plan = vision.gpu_plan(clf.processor)

        def resize():
            return [
                vision.resize_normalize(decoded[i : i + batch], plan, clf.device, clf.model.dtype)
                for i in range(0, len(decoded), batch)
            ]

        resize()
        out["redimensionar y normalizar en GPU"] = images_per_second(resize, len(paths))

        def run_loader():
            return [loader(rows[i : i + batch]) for i in range(0, len(rows), batch)]

        run_loader()
        out["preparar lotes (todo lo anterior, un hilo)"] = images_per_second(run_loader, len(paths))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", help="model id or folder (default: a vit-base-sized random model in config.cache_dir())"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--images", type=int, help="images for the batched methods (default 4096 on GPU, 16 on CPU)")
    parser.add_argument("--few", type=int, help="images for the one-by-one methods (default 128 on GPU, 8 on CPU)")
    parser.add_argument("--batch-size", type=int, help="the kit's batch (default: its own choice) and the pipeline's")
    parser.add_argument("--skip-old", action="store_true", help="skip the slow old-script pattern")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per method, the best counts (3)")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers for one pipeline row (8; 0: none)")
    parser.add_argument("--stages", action="store_true", help="also time each step of the kit's GPU path alone")
    args = parser.parse_args(argv)

    os.environ["COURSE_DEVICE"] = args.device
    import torch
    import transformers
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from course_utils import vision

    hf_logging.disable_progress_bar()
    device = config.settings().device
    gpu = device.startswith("cuda")
    n_many = args.images or (4096 if gpu else 16)
    n_few = min(n_many, args.few or (128 if gpu else 8))
    model_name = args.model or str(build_random_vit_base(RANDOM_BASE))
    photos = sorted(sample_path().glob("*.jpg"))
    folder = Path(tempfile.mkdtemp(prefix="bench_vision_"))
    few_folder = folder / "pocas"
    few_folder.mkdir()
    try:
        paths = [folder / f"img_{i:05d}.jpg" for i in range(n_many)]
        for i, path in enumerate(paths):
            shutil.copy(photos[i % len(photos)], path)
        few = [few_folder / p.name for p in paths[:n_few]]
        for src, dst in zip(paths, few):
            shutil.copy(src, dst)
        clf = vision.load_classifier(model_name)
        dtype = clf.model.dtype
        precision = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
        batch = args.batch_size or vision.auto_batch_size(clf)
        pipe_one = pipeline("image-classification", model=model_name, device=device, dtype=dtype)
        try:
            pipe_fast = pipeline("image-classification", model=model_name, device=device, dtype=dtype, use_fast=True)
            fast_kind = type(pipe_fast.image_processor).__name__
        except Exception:  # noqa: BLE001 - no torchvision: the PIL processor is the fast one there is
            pipe_fast, fast_kind = pipe_one, type(pipe_one.image_processor).__name__
        side = clf.model.config.image_size
        ready = torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device, dtype)

        def model_alone(n):
            with torch.inference_mode():
                for _ in range(0, n, batch):
                    clf.model(pixel_values=ready).logits.float().softmax(-1).topk(7)

        kit_name = f"vision.classify_folder, lotes de {batch}"
        if gpu and isinstance(vision.batch_loader(clf), vision.GpuJpegLoader):
            kit_name += f", preparando en {vision.GPU_PREPARE_THREADS} hilos"
        str_paths, str_few = [str(p) for p in paths], [str(p) for p in few]
        runs = {  # name: (precision, images, run)
            "pipeline de transformers, una a una": (precision, n_few, lambda: [pipe_one(p, top_k=7) for p in str_few]),
            f"pipeline de transformers, lotes de {batch}, {fast_kind}": (
                precision,
                n_many,
                lambda: list(pipe_fast(str_paths, batch_size=batch, top_k=7)),
            ),
        }
        if args.workers:
            runs[f"pipeline de transformers, lotes de {batch}, {fast_kind}, {args.workers} procesos"] = (
                precision,
                n_many,
                lambda: list(pipe_fast(str_paths, batch_size=batch, top_k=7, num_workers=args.workers)),
            )
        runs.update(
            {
                "vision.top_k, una a una": (precision, n_few, lambda: [vision.top_k(p, classifier=clf) for p in few]),
                kit_name: (
                    precision,
                    n_many,
                    lambda: vision.classify_folder(folder, batch, classifier=clf, progress=False),
                ),
            }
        )
        if gpu and isinstance(vision.batch_loader(clf), vision.GpuJpegLoader):
            runs[f"vision.classify_folder, lotes de {batch}, preparando en 1 hilo"] = (
                precision,
                n_many,
                lambda: kit_with_threads(vision, folder, batch, clf, 1),
            )
        runs.update(
            {
                f"modelo solo, tensores ya en {'la GPU' if gpu else 'memoria'}, lotes de {batch} (techo)": (
                    precision,
                    n_many,
                    lambda: model_alone(n_many),
                ),
            }
        )
        rates = dict.fromkeys(runs, 0.0)
        for _, _, run in runs.values():  # warm-up: first calls pay for lazy initialisation
            run()
        # Rounds interleave the methods and the best round counts: others' load only ever slows one down.
        for _ in range(args.rounds):
            for name, (_, n, run) in runs.items():
                rates[name] = max(rates[name], images_per_second(run, n))
        rows = [(name, prec, rates[name]) for name, (prec, _, _) in runs.items()]
        if not args.skip_old:
            rows.insert(
                0,
                (
                    "script antiguo (recarga modelo por imagen)",
                    "fp32",
                    images_per_second(lambda: old_script(few[:8], model_name, device), min(8, n_few)),
                ),
            )
        # Same answers: the kit on the samples against the PIL path in float32 on the CPU.
        reference_clf = vision._load(str(model_name), "cpu")
        kit = vision.classify_folder(sample_path(), classifier=clf, progress=False)
        ref = vision.classify_folder(sample_path(), classifier=reference_clf, progress=False)
        agree = sum(a.label == b.label for a, b in zip(kit, ref))
        worst = max(abs(p - q) for a, b in zip(kit, ref) for (_, p), (_, q) in zip(a.top, b.top))
        extra = stages(clf, paths[: min(n_many, 1024)], batch) if args.stages and gpu else {}
        peak = matmul_tflops(device) if gpu else None
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    name = torch.cuda.get_device_name() if gpu else f"CPU, {torch.get_num_threads()} hilos de PyTorch"
    flops = vit_flops(clf.model.config)
    roof_tflops = peak or H100_BF16_TFLOPS
    print(
        f"\nModelo: {model_name} ({flops / 1e9:.1f} GFLOP por imagen)\nDispositivo: {device} ({name}) | "
        f"torch {torch.__version__} | transformers {transformers.__version__} | "
        f"imágenes: {n_many} (una a una: {n_few}) | mejor de {args.rounds} rondas"
    )
    if peak:
        print(
            f"Producto de matrices bf16 8192³ medido ahora: {peak:.0f} TFLOP/s; techo del modelo: "
            f"{peak * 1e12 / flops:,.0f} imágenes/s"
        )
    print(
        f"Top-1 del kit ({precision}) y del camino de PIL en fp32 (CPU) en las {len(kit)} muestras: coinciden "
        f"{agree} de {len(kit)}; diferencia máxima de probabilidad {worst:.2e}.\n"
    )
    pipe_one_rate = rates["pipeline de transformers, una a una"]
    best_pipe = max(rate for name, _, rate in rows if name.startswith("pipeline"))
    alone = rows[-1][2]
    print(
        "| método | precisión | imágenes/s | × pipeline una a una | × mejor pipeline | × modelo solo | "
        "% del techo bf16 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, prec, rate in rows:
        roof = f"{100 * rate * flops / (roof_tflops * 1e12):.1f} %" if gpu else "—"
        print(
            f"| {name} | {prec} | {rate:,.1f} | {rate / pipe_one_rate:.2f} | {rate / best_pipe:.2f} | "
            f"{rate / alone:.2f} | {roof} |"
        )
    for stage, rate in extra.items():
        print(f"| (etapa) {stage} | — | {rate:,.0f} | | | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
