"""course_utils.evaluation (lesson 05) and the lesson's three graded exercises.

The exercises' tests (visible and hidden) are run here as the autograder runs them, on the solution and on
plausible wrong answers, each of which must fail.
"""

from pathlib import Path

import nbformat
import pytest
import torch
from torch.nn import functional as F

from course_utils import evaluation as ev
from course_utils.errors import CourseError

SOURCE = Path(__file__).resolve().parent.parent / "instructor" / "source" / "05_entrenar_y_evaluar"
SOURCE = SOURCE / "05_entrenar_y_evaluar.ipynb"


@pytest.fixture(scope="module")
def splits():
    return ev.digit_splits(seed=0)


# --- the reference code ---------------------------------------------------------------------------------------------


def test_digit_splits_are_disjoint_stratified_and_scaled(splits):
    sizes = {name: len(labels) for name, (_, labels) in splits.items()}
    assert sizes == {"train": 1077, "validation": 360, "test": 360}
    images = torch.cat([x for x, _ in splits.values()]).flatten(1)
    assert len(torch.unique(images, dim=0)) >= 1790  # load_digits has a few identical images, no more
    for x, _ in splits.values():
        assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    everything = torch.cat([y for _, y in splits.values()])
    for _, y in splits.values():
        expected = torch.bincount(everything, minlength=10) * len(y) / len(everything)
        assert (torch.bincount(y, minlength=10) - expected).abs().max() <= 1.5  # every digit in its proportion


def test_bad_fractions_are_a_spanish_error():
    with pytest.raises(CourseError, match="fracciones"):
        ev.digit_splits(validation=0.5, test=0.5)


def test_label_noise_changes_exactly_that_fraction_to_other_classes(splits):
    labels = splits["train"][1]
    noisy = ev.with_label_noise(labels, 0.2, seed=1)
    changed = noisy != labels
    assert changed.sum() == round(0.2 * len(labels))
    assert ((noisy >= 0) & (noisy < 10)).all()
    assert torch.equal(ev.with_label_noise(labels, 0.0), labels)


def test_the_training_step_reduces_the_loss_on_its_batch(splits):
    x, y = splits["train"][0][:64], splits["train"][1][:64]
    model = ev.small_cnn(seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.eval()
    first = ev.train_step(model, optimizer, x, y)
    assert isinstance(first, float) and model.training
    assert first == pytest.approx(F.cross_entropy(ev.small_cnn(seed=0)(x), y).item(), abs=1e-6)
    later = [ev.train_step(model, optimizer, x, y) for _ in range(20)]
    assert later[-1] < 0.5 * first


def test_fit_stops_early_and_keeps_the_best_epoch(splits):
    model = ev.small_cnn(seed=0)
    history = ev.fit(model, splits["train"], splits["validation"], epochs=40, patience=3)
    epochs = len(history["train_loss"])
    best = history["best_epoch"]
    assert history["val_loss"][best] == min(history["val_loss"])
    assert epochs == 40 or epochs == best + 1 + 3
    assert ev.evaluate(model, *splits["validation"])[0] == pytest.approx(history["val_loss"][best], abs=1e-6)
    assert not model.training
    assert ev.evaluate(model, *splits["test"])[1] > 0.9


def test_wilson_interval_against_published_values():
    # Wilson score interval, 95 %: 8/10 → (0.4902, 0.9433); 0/10 → (0, 0.2775); 81/263 → (0.2553, 0.3662)
    assert ev.wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert ev.wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert ev.wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    low, high = ev.wilson_interval(350, 360, confidence=0.99)
    assert low < ev.wilson_interval(350, 360)[0] and high > ev.wilson_interval(350, 360)[1]
    with pytest.raises(CourseError):
        ev.wilson_interval(11, 10)


def _rows(confidences, n_classes=4):
    c = torch.tensor(confidences, dtype=torch.float64).unsqueeze(1)
    return torch.cat([c, ((1 - c) / (n_classes - 1)).expand(-1, n_classes - 1)], dim=1)


def test_ece_against_a_hand_computed_example():
    # 4 bins: 0.3 (wrong) and 0.4 (right) in (0.25, 0.5]; 0.9 (right) in (0.75, 1]
    ece = ev.expected_calibration_error(_rows([0.3, 0.4, 0.9]), torch.tensor([1, 0, 0]), n_bins=4)
    assert ece == pytest.approx(2 / 3 * 0.15 + 1 / 3 * 0.1, abs=1e-12)


def test_confidences_on_an_edge_go_to_the_bin_on_their_left():
    bins = ev.calibration_bins([0.25, 0.5, 0.5000001, 0.75, 1.0, 0.0], [1, 1, 1, 1, 1, 1], n_bins=4)
    assert bins["count"].tolist() == [2, 1, 2, 1]
    ece = ev.expected_calibration_error(_rows([0.5, 0.5, 0.75, 1.0, 1.0, 0.25]), torch.tensor([0, 1, 0, 0, 2, 3]), 4)
    assert ece == pytest.approx(0.25 / 6 + 1 / 6 + 0.25 / 6, abs=1e-12)


def test_a_perfectly_calibrated_set_has_zero_ece():
    probabilities = _rows([0.75] * 4, n_classes=2)
    assert ev.expected_calibration_error(probabilities, torch.tensor([0, 0, 0, 1]), n_bins=10) == pytest.approx(0)


def test_temperature_fit_lowers_the_nll_and_finds_the_scale():
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(4000, 10, generator=generator) * 2
    labels = torch.multinomial(torch.softmax(base, dim=-1), 1, generator=generator).squeeze(1)
    overconfident = base * 3
    t = ev.fit_temperature(overconfident, labels)
    assert t == pytest.approx(3, rel=0.1)
    nll = lambda temperature: F.cross_entropy(overconfident / temperature, labels).item()  # noqa: E731
    assert nll(t) < nll(1.0)
    assert nll(t) <= min(nll(0.98 * t), nll(1.02 * t))


def test_vit_features_from_the_standin(standins, splits):
    from course_utils import vision

    classifier = vision.load_classifier()
    features = ev.vit_features(splits["test"][0][:5], classifier, batch_size=2)
    assert features.shape == (5, classifier.model.config.hidden_size) and features.dtype == torch.float32
    assert "modelo de prueba" in ev.features_note(classifier)


def test_figures_are_figures(splits):
    import matplotlib.figure

    x, y = splits["test"]
    predicted = (y + (torch.arange(len(y)) % 7 == 0).long()) % 10
    probabilities = F.one_hot(predicted, 10).double() * 0.8 + 0.02
    for figure in (
        ev.plot_history({"train_loss": [2, 1], "val_loss": [2.1, 1.2], "best_epoch": 1}),
        ev.plot_confusion(y, predicted),
        ev.plot_reliability({"a": (probabilities, y)}),
        ev.plot_errors(x, y, predicted),
    ):
        assert isinstance(figure, matplotlib.figure.Figure)
    assert ev.plot_errors(x, y, y) is None


# --- the lesson's graded exercises: their tests pass the solution and fail plausible wrong answers --------------


@pytest.fixture(scope="module")
def lesson(splits):
    nb = nbformat.read(SOURCE, as_version=4)
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in nb.cells}
    namespace: dict = {}
    exec(nb.cells[2].source, namespace)  # the setup cell's imports
    model = ev.small_cnn(seed=0)
    ev.fit(model, splits["train"], splits["validation"], epochs=8)
    namespace.update(
        x_train=splits["train"][0],
        y_train=splits["train"][1],
        x_val=splits["validation"][0],
        y_val=splits["validation"][1],
        x_test=splits["test"][0],
        y_test=splits["test"][1],
        logits_val=ev.predict_logits(model, splits["validation"][0]),
        logits_test=ev.predict_logits(model, splits["test"][0]),
    )
    return by_id, namespace


def _grade(lesson, exercise: str, solution: str) -> None:
    by_id, namespace = lesson
    namespace = dict(namespace)
    exec(solution, namespace)
    exec(by_id[f"{exercise}-tests"], namespace)


EXERCISES = ["05-ex1-train-step", "05-ex2-ece", "05-ex3-temperature"]
MUTANTS = {
    "05-ex1-train-step": {
        "forgets zero_grad": ("optimizer.zero_grad()", "pass"),
        "forgets the step": ("optimizer.step()", "pass"),
        "forgets train mode": ("model.train()", "pass"),
        "softmax before the cross-entropy": (
            "F.cross_entropy(logits, labels)",
            "F.cross_entropy(logits.softmax(-1), labels)",
        ),
        "nll_loss on logits": ("F.cross_entropy(logits, labels)", "F.nll_loss(logits, labels)"),
        "returns the tensor": ("return loss.item()", "return loss"),
    },
    "05-ex2-ece": {
        "bins closed on the left": (
            "in_bin = (confidence > low) & (confidence <= high)",
            "in_bin = (confidence >= low) & (confidence < high) if m < n_bins - 1 else confidence >= low",
        ),
        "every bin weighs the same": ("weight = in_bin.sum().item() / len(confidence)", "weight = 1 / n_bins"),
        "signed gap": (
            "weight * abs(correct[in_bin].mean().item() - confidence[in_bin].mean().item())",
            "weight * (correct[in_bin].mean().item() - confidence[in_bin].mean().item())",
        ),
        "squared gap": (
            "weight * abs(correct[in_bin].mean().item() - confidence[in_bin].mean().item())",
            "weight * (correct[in_bin].mean().item() - confidence[in_bin].mean().item()) ** 2",
        ),
    },
    "05-ex3-temperature": {
        "multiplies by T": (
            "F.cross_entropy(logits / log_t.exp(), labels)",
            "F.cross_entropy(logits * log_t.exp(), labels)",
        ),
        "scales probabilities": (
            "F.cross_entropy(logits / log_t.exp(), labels)",
            "F.cross_entropy(logits.softmax(-1) / log_t.exp(), labels)",
        ),
        "returns log T": ("return float(log_t.detach().exp())", "return float(log_t.detach())"),
    },
}


def _solution(lesson, exercise):
    return lesson[0][exercise]


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_exercise_tests_pass_the_solution(lesson, exercise):
    _grade(lesson, exercise, _solution(lesson, exercise))


@pytest.mark.parametrize(
    ("exercise", "mutant"), [(e, m) for e in EXERCISES for m in sorted(MUTANTS[e])], ids=lambda v: str(v)
)
def test_the_exercise_tests_fail_a_plausible_wrong_answer(lesson, exercise, mutant):
    old, new = MUTANTS[exercise][mutant]
    solution = _solution(lesson, exercise)
    assert solution.count(old) == 1, mutant
    with pytest.raises(AssertionError):
        _grade(lesson, exercise, solution.replace(old, new))


SHORTCUTS = {
    "05-ex1-train-step": "from course_utils.evaluation import train_step as step\n\n\n"
    "def train_step_by_hand(model, optimizer, inputs, labels):\n    return step(model, optimizer, inputs, labels)\n",
    "05-ex2-ece": "from course_utils.evaluation import expected_calibration_error as f\n\n\n"
    "def ece_by_hand(probabilities, labels, n_bins=10):\n    return f(probabilities, labels, n_bins)\n",
    "05-ex3-temperature": "from course_utils.evaluation import fit_temperature as f\n\n\n"
    "def fit_temperature_by_hand(logits, labels):\n    return f(logits, labels)\n",
}


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_reference_under_another_name_gets_no_marks(lesson, exercise):
    with pytest.raises(AssertionError):
        _grade(lesson, exercise, SHORTCUTS[exercise])


@pytest.mark.parametrize(
    "body",
    [
        # a grid of temperatures
        "ts = torch.linspace(0.05, 5, 100)\n"
        "    return float(min(ts, key=lambda t: F.cross_entropy(logits / t, labels).item()))",
        # scipy's scalar minimiser: right T, but not the optimiser the exercise asks for
        "from scipy.optimize import minimize_scalar\n"
        "    r = minimize_scalar(lambda t: F.cross_entropy(logits / t, labels).item(), bounds=(0.01, 20), "
        "method='bounded')\n    return float(r.x)",
    ],
    ids=["grid", "scipy"],
)
def test_the_temperature_must_be_fitted_with_the_given_optimiser(lesson, body):
    with pytest.raises(AssertionError):
        _grade(lesson, "05-ex3-temperature", f"def fit_temperature_by_hand(logits, labels):\n    {body}\n")
