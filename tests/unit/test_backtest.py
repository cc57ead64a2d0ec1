"""flows.backtest.tally against a count by hand."""

from __future__ import annotations

from flows.backtest import SWEEP, tally

# predicted Red with confidences .9 .8 .5 (right, wrong, right); Correo .95 (right) .4 (wrong)
TRUTH = ["Red", "Correo", "Red", "Correo", "Red"]
PREDICTED = ["Red", "Red", "Red", "Correo", "Correo"]
CONFIDENCE = [0.9, 0.8, 0.5, 0.95, 0.4]


def test_counts_with_the_rules_in_force_equal_a_hand_count() -> None:
    # Red's own threshold 0.85; Correo under the global 0.6
    out = tally(TRUTH, PREDICTED, CONFIDENCE, {"Red": 0.85}, 0.6)
    red, correo = out["causes"]["Red"], out["causes"]["Correo"]
    assert red["tickets"] == 3 and red["threshold_in_force"] == 0.85
    assert red["in_force"] == {
        "applied": 1,
        "wrong": 0,
        "review": 2,
        "precision": 1.0,
        "coverage": 0.3333,
    }
    assert correo["in_force"] == {
        "applied": 1,
        "wrong": 0,
        "review": 1,
        "precision": 1.0,
        "coverage": 0.5,
    }
    assert out["overall"]["in_force"]["applied"] == 2 and out["overall"]["tickets"] == 5


def test_the_sweep_counts_every_threshold_and_never_auto_applies_nothing() -> None:
    out = tally(TRUTH, PREDICTED, CONFIDENCE, {}, 0.6, never={"Red"})
    red = out["causes"]["Red"]
    assert red["threshold_in_force"] is None and red["in_force"]["applied"] == 0
    at = {p["threshold"]: p for p in out["overall"]["sweep"]}
    assert [p["threshold"] for p in out["overall"]["sweep"]] == list(SWEEP)
    # at 0.75: .9 (right), .8 (wrong), .95 (right) applied; .5 and .4 wait
    assert (at[0.75]["applied"], at[0.75]["wrong"], at[0.75]["review"]) == (3, 1, 2)
    assert at[0.75]["precision"] == round(2 / 3, 4)
    # at 0: all five, two of them wrong
    assert (at[0.0]["applied"], at[0.0]["wrong"]) == (5, 2)
    assert out["overall"]["in_force"]["applied"] == 1  # only Correo .95 (Red never)
