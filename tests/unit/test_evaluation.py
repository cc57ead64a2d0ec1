"""Scores, calibration error, per-class thresholds and the promotion decision."""

from __future__ import annotations

import numpy as np
import pytest

from training.compare import decide
from training.evaluate import expected_calibration_error, score, thresholds_for_precision


def test_a_class_the_model_cannot_predict_counts_as_missed() -> None:
    truth = ["Red", "Red", "Correo", "Correo"]
    predicted = ["Red", "Red", "Red", "Red"]
    s = score(truth, predicted, np.ones(4), labels=["Red", "Correo", "Hardware"])
    assert s["per_class"]["Correo"]["f1"] == 0.0
    assert s["per_class"]["Hardware"]["f1"] == 0.0  # in the union, never seen: still counted
    assert s["macro_f1"] == pytest.approx((2 / 3) / 3)
    assert s["confusion"] == [[0, 0, 0], [0, 0, 0], [2, 0, 2]] or s["labels"] == sorted(s["labels"])


def test_calibration_error_is_zero_when_confidence_matches_accuracy() -> None:
    correct = np.array([1, 1, 1, 0] * 25, dtype=bool)
    assert expected_calibration_error(correct, np.full(100, 0.75)) == pytest.approx(0.0)
    assert expected_calibration_error(correct, np.full(100, 0.95)) == pytest.approx(0.2)


def test_thresholds_reach_the_target_precision() -> None:
    # 30 predictions of Red: the 20 most confident are right, the 10 least are wrong
    confidence = np.concatenate([np.linspace(0.99, 0.80, 20), np.linspace(0.79, 0.50, 10)])
    truth = ["Red"] * 20 + ["Correo"] * 10
    t = thresholds_for_precision(truth, ["Red"] * 30, confidence, target=0.9)
    # precision >= 0.9 holds down to 22 predictions (20/22); the threshold is that 22nd one
    assert t["Red"] == pytest.approx(confidence[21])


def test_a_class_of_its_own_target_gets_its_own_threshold() -> None:
    confidence = np.concatenate([np.linspace(0.99, 0.80, 20), np.linspace(0.79, 0.50, 10)])
    truth = ["Red"] * 20 + ["Correo"] * 10
    # a target of 1.0 for Red: only the 20 right ones, from the 20th's confidence
    t = thresholds_for_precision(truth, ["Red"] * 30, confidence, 0.9, {"Red": 1.0})
    assert t["Red"] == pytest.approx(confidence[19])
    # a lower one (2/3): all 30 (20 of 30 right)
    t = thresholds_for_precision(truth, ["Red"] * 30, confidence, 0.9, {"Red": 0.66})
    assert t["Red"] == pytest.approx(confidence[29])


def test_precision_targets_by_cause_are_read_and_refused_with_the_part_at_fault() -> None:
    from shared.settings import Settings

    s = Settings(target_precision_by_cause="Accesos=0.97, Red de datos=0.8")
    assert s.precision_targets == {"Accesos": 0.97, "Red de datos": 0.8}
    for bad in ("Accesos", "Accesos=1.5", "=0.9", "Accesos=high"):
        with pytest.raises(ValueError, match=r"is not CAUSE=PRECISION"):
            Settings(target_precision_by_cause=bad)


def test_too_few_predictions_keep_the_global_threshold() -> None:
    t = thresholds_for_precision(["Red"] * 5, ["Red"] * 5, np.ones(5), target=0.9)
    assert t == {}


def score_of(f1: float) -> dict[str, object]:
    return {"macro_f1": f1, "accuracy": f1, "ece": 0.0, "n": 100, "per_class": {}}


def test_the_first_model_needs_the_floor() -> None:
    assert decide(score_of(0.6), None, min_improvement=0.01, min_f1=0.5).promote
    refused = decide(score_of(0.4), None, min_improvement=0.01, min_f1=0.5)
    assert not refused.promote and "below the floor" in refused.reason


@pytest.mark.parametrize("challenger,promote", [(0.81, True), (0.8099, False), (0.79, False)])
def test_a_challenger_must_win_by_the_minimum(challenger: float, promote: bool) -> None:
    d = decide(score_of(challenger), score_of(0.80), min_improvement=0.01, min_f1=0.5)
    assert d.promote is promote
    assert d.summary()["decision"] == ("promote" if promote else "keep")
    assert d.summary()["difference"] == round(challenger - 0.80, 4)
