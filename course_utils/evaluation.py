"""Train and evaluate an image classifier: the reference code of lesson 05.

The data are scikit-learn's handwritten digits (`load_digits`: 1797 images of 8×8 pixels, shipped with the
package, so nothing is downloaded). The notebook writes the key lines itself (the training step, the ECE,
the temperature fit) and checks them against these functions.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .errors import CourseError

N_CLASSES = 10


# --- data -------------------------------------------------------------------------------------------------------


def digit_splits(seed: int = 0, validation: float = 0.2, test: float = 0.2) -> dict[str, tuple[torch.Tensor, ...]]:
    """The digits split three ways, stratified by class: {"train"|"validation"|"test": (images, labels)}.

    images: float32 tensor (N, 1, 8, 8) from 0 to 1; labels: int64 tensor (N,).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not (0 < validation < 1 and 0 < test < 1 and validation + test < 1):
        raise CourseError(
            f"Las fracciones de validación ({validation}) y prueba ({test}) no valen.",
            "Usa dos números entre 0 y 1 que sumen menos de 1, como 0.2 y 0.2.",
        )
    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # píxeles de 0 a 16
    labels = torch.tensor(digits.target, dtype=torch.int64)
    index = np.arange(len(labels))
    rest, test_index = train_test_split(index, test_size=test, stratify=digits.target, random_state=seed)
    train_index, val_index = train_test_split(
        rest, test_size=validation / (1 - test), stratify=digits.target[rest], random_state=seed
    )
    return {
        name: (images[i], labels[i])
        for name, i in [("train", train_index), ("validation", val_index), ("test", test_index)]
    }


def with_label_noise(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """A copy of `labels` where `fraction` of them are changed to another class, at random."""
    if not 0 <= fraction <= 1:
        raise CourseError(f"La fracción de etiquetas cambiadas ({fraction}) debe estar entre 0 y 1.", "Prueba 0.2.")
    generator = torch.Generator().manual_seed(seed)
    noisy = labels.clone()
    picked = torch.randperm(len(labels), generator=generator)[: round(fraction * len(labels))]
    shift = torch.randint(1, N_CLASSES, (len(picked),), generator=generator)
    noisy[picked] = (labels[picked] + shift) % N_CLASSES  # always another class
    return noisy


# --- models -------------------------------------------------------------------------------------------------------


def small_cnn(seed: int = 0) -> nn.Module:
    """A small convolutional network for 8×8 digits, trained from scratch (about 2 000 weights)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, kernel_size=3, padding=1),  # (N, 8, 8, 8)
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 8, 4, 4)
        nn.Conv2d(8, 16, kernel_size=3, padding=1),  # (N, 16, 4, 4)
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 16, 2, 2)
        nn.Flatten(),  # (N, 64)
        nn.Linear(64, N_CLASSES),
    )


def linear_probe(n_features: int, seed: int = 0) -> nn.Module:
    """One linear layer on top of frozen features: a linear probe."""
    torch.manual_seed(seed)
    return nn.Linear(n_features, N_CLASSES)


@torch.no_grad()
def vit_features(images: torch.Tensor, classifier, batch_size: int = 64) -> torch.Tensor:
    """The [CLS] vector of the last layer of the course's ViT for each digit: (N, hidden size), float32 on the CPU.

    Each 8×8 digit is upscaled to the model's input size, repeated on the three channels and normalised
    with the processor's mean and standard deviation. The ViT is frozen: nothing here trains it.
    """
    processor, model = classifier.processor, classifier.model
    size = (processor.size["height"], processor.size["width"])
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    dtype = next(model.parameters()).dtype
    features = []
    for start in range(0, len(images), batch_size):
        batch = F.interpolate(images[start : start + batch_size], size=size, mode="bilinear", align_corners=False)
        pixels = ((batch.repeat(1, 3, 1, 1) - mean) / std).to(classifier.device, dtype)  # (n, 3, alto, ancho)
        hidden = model.base_model(pixel_values=pixels).last_hidden_state  # (n, tokens, dim)
        features.append(hidden[:, 0].float().cpu())
    return torch.cat(features)


def features_note(classifier) -> str:
    """What the ViT features are worth here, in Spanish, with the stand-in notice when one is loaded."""
    if classifier.standin:
        return (
            "Estos vectores salen del modelo de prueba (el aviso de arriba): con pesos aleatorios no saben nada "
            "de imágenes y el sondeo lineal sobre ellos no puede ganar a una red entrenada desde cero. Con el "
            "ViT real (en el servidor del laboratorio) la comparación cambia."
        )
    return f"Vectores del ViT preentrenado «{classifier.name}» (congelado)."


# --- training -----------------------------------------------------------------------------------------------------


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, labels: torch.Tensor) -> float:
    """One optimisation step on one batch; returns the batch's cross-entropy before the step, as a float."""
    model.train()
    optimizer.zero_grad()
    loss = F.cross_entropy(model(inputs), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.no_grad()
def evaluate(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on a whole set, in evaluation mode."""
    model.eval()
    logits = model(inputs)
    return F.cross_entropy(logits, labels).item(), (logits.argmax(-1) == labels).float().mean().item()


@torch.no_grad()
def predict_logits(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model(inputs)


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor],
    *,
    epochs: int = 40,
    batch_size: int = 64,
    lr: float = 1e-2,
    patience: int = 5,
    seed: int = 0,
) -> dict[str, list | int]:
    """Train with Adam in shuffled mini-batches; stop when the validation loss has not improved for `patience`
    epochs and put back the weights of the best epoch (early stopping).

    Returns the history: {"train_loss", "val_loss", "val_accuracy": one value per epoch, "best_epoch"}.
    """
    if patience < 1 or epochs < 1 or batch_size < 1:
        raise CourseError("epochs, batch_size y patience deben ser enteros positivos.", "Prueba patience=5.")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    history = {"train_loss": [], "val_loss": [], "val_accuracy": [], "best_epoch": 0}
    best, best_state, waited = math.inf, copy.deepcopy(model.state_dict()), 0
    inputs, labels = train
    for epoch in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        losses = [train_step(model, optimizer, inputs[i], labels[i]) * len(i) for i in order.split(batch_size)]
        val_loss, val_accuracy = evaluate(model, *validation)
        history["train_loss"].append(sum(losses) / len(labels))
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_accuracy)
        if val_loss < best:
            best, best_state, waited, history["best_epoch"] = val_loss, copy.deepcopy(model.state_dict()), 0, epoch
        else:
            waited += 1
            if waited >= patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return history


# --- evaluation ---------------------------------------------------------------------------------------------------


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for an accuracy of correct/total (scipy's binomtest)."""
    from scipy.stats import binomtest

    if total < 1 or not 0 <= correct <= total:
        raise CourseError(f"No hay proporción con {correct} aciertos de {total}.", "Cuenta aciertos y total de nuevo.")
    interval = binomtest(int(correct), int(total)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def calibration_bins(confidences, correct, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-width bins over [0, 1] (edges linspace(0, 1, n_bins + 1)); bin m holds the confidences c with
    edge[m] < c <= edge[m + 1], and the first bin also holds c = 0 (Guo et al., 2017).

    Returns {"count", "confidence" (mean per bin), "accuracy" (per bin)}; empty bins have nan.
    """
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidences, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, confidences, minlength=n_bins) / count
        accuracy = np.bincount(index, correct, minlength=n_bins) / count
    return {"count": count, "confidence": mean_confidence, "accuracy": accuracy, "edges": edges}


def expected_calibration_error(probabilities, labels, n_bins: int = 10) -> float:
    """ECE: sum over bins of (bin size / N) · |accuracy − mean confidence|, with the bins of calibration_bins.

    `probabilities`: (N, classes), rows that sum to 1; the confidence is the largest probability of each row.
    """
    probabilities = torch.as_tensor(probabilities)
    confidence, predicted = probabilities.max(dim=-1)
    bins = calibration_bins(confidence.numpy(), (predicted == torch.as_tensor(labels)).numpy(), n_bins)
    used = bins["count"] > 0
    weights = bins["count"][used] / bins["count"].sum()
    return float(np.sum(weights * np.abs(bins["accuracy"][used] - bins["confidence"][used])))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The temperature T > 0 that minimises the cross-entropy of softmax(logits / T) on (validation) labels.

    T = exp(log_t), so it stays positive; L-BFGS on log_t from 0 (T = 1).
    """
    logits = logits.detach().float()
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


# --- figures ------------------------------------------------------------------------------------------------------


def plot_history(history: dict, title: str = ""):
    """Training and validation loss per epoch, with the epoch early stopping kept."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    epochs = range(1, len(history["train_loss"]) + 1)
    ax.plot(epochs, history["train_loss"], label="entrenamiento")
    ax.plot(epochs, history["val_loss"], label="validación")
    ax.axvline(history["best_epoch"] + 1, color="gray", linestyle="--", label="mejor época (se queda)")
    ax.set(xlabel="época", ylabel="entropía cruzada", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_confusion(labels, predicted, title: str = "Matriz de confusión (prueba)"):
    """The confusion matrix with scikit-learn's display: rows are the true digit, columns the prediction."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(6, 5.4))
    ConfusionMatrixDisplay.from_predictions(np.asarray(labels), np.asarray(predicted), ax=ax, colorbar=False)
    ax.set(xlabel="dígito predicho", ylabel="dígito verdadero", title=title)
    fig.tight_layout()
    return fig


def plot_reliability(curves: dict[str, tuple], n_bins: int = 10):
    """Reliability diagrams side by side: {title: (probabilities, labels)}; bars are each bin's accuracy."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 4.2), squeeze=False)
    for ax, (title, (probabilities, labels)) in zip(axes[0], curves.items()):
        probabilities = torch.as_tensor(probabilities)
        confidence, predicted = probabilities.max(dim=-1)
        bins = calibration_bins(confidence.numpy(), (predicted == torch.as_tensor(labels)).numpy(), n_bins)
        centers = (bins["edges"][:-1] + bins["edges"][1:]) / 2
        ax.bar(
            centers, np.nan_to_num(bins["accuracy"]), width=1 / n_bins, edgecolor="black", label="acierto del intervalo"
        )
        ax.plot([0, 1], [0, 1], "k--", label="calibración perfecta")
        for x, count in zip(centers, bins["count"]):
            if count:
                ax.text(x, 0.02, str(count), ha="center", fontsize=9, color="white", fontweight="bold")
        ece = expected_calibration_error(probabilities, labels, n_bins)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confianza (en cada barra, cuántas predicciones)", ylabel="acierto")
        ax.set_title(f"{title} · ECE = {ece:.3f}")
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=2)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def plot_errors(images, labels, predicted, limit: int = 24, columns: int = 8):
    """The misclassified digits as images, each with its true and predicted digit."""
    import matplotlib.pyplot as plt

    wrong = np.flatnonzero(np.asarray(labels) != np.asarray(predicted))[:limit]
    if len(wrong) == 0:
        print("No hay errores que mostrar.")
        return None
    rows = math.ceil(len(wrong) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 2.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(np.asarray(images[i]).reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"real {int(labels[i])}\npred. {int(predicted[i])}", fontsize=10)
    fig.tight_layout()
    return fig


__all__ = [
    "calibration_bins",
    "digit_splits",
    "evaluate",
    "expected_calibration_error",
    "features_note",
    "fit",
    "fit_temperature",
    "linear_probe",
    "plot_confusion",
    "plot_errors",
    "plot_history",
    "plot_reliability",
    "predict_logits",
    "small_cnn",
    "train_step",
    "vit_features",
    "wilson_interval",
    "with_label_noise",
]
