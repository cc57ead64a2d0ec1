"""Live accuracy and the threshold suggestion against hand counts; the order in which a
verdict's threshold is chosen. Plain rows, no database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from flows.accuracy import figures
from flows.classify import decide, threshold_in_force, verdict
from flows.thresholds import cut, lowest_meeting, suggest
from shared.contract import Status
from shared.store import Claimed


def row(predicted: str, status: str, label: str | None, confidence: float = 0.5) -> dict[str, Any]:
    return {"predicted": predicted, "status": status, "label": label, "confidence": confidence}


C, R = "classified", "needs_review"
# Eight decisions of the window, counted by hand below.
ROWS = [
    row("Red", C, "Red", 0.95),  # confirmed
    row("Red", C, "Red", 0.90),  # confirmed
    row("Red", R, "Hardware", 0.50),  # corrected
    row("Red", C, None, 0.80),  # nobody reviewed it
    row("Hardware", R, "Hardware", 0.55),  # confirmed
    row("Hardware", C, "Software", 0.70),  # corrected
    row("Hardware", C, "Red", 0.65),  # corrected
    row("Software", C, None, 0.99),  # nobody reviewed it
]


def test_live_accuracy_figures_match_a_hand_count() -> None:
    # when the figures of the eight decisions are computed, Hardware with a target of 0.3
    out = figures(
        ROWS,
        targets={"Hardware": 0.3},
        default_target=0.9,
        margin=0.05,
        min_reviewed=3,
        causes=["Accesos", "Red"],
    )
    # then the totals: 8 decided, 6 reviewed, 3 confirmed; unreviewed never count as correct
    assert (out["decided"], out["reviewed"], out["correct"], out["overridden"]) == (8, 6, 3, 3)
    assert (out["precision"], out["override_rate"]) == (0.5, 0.5)
    red, hardware, software = (out["causes"][c] for c in ("Red", "Hardware", "Software"))
    # Red: 4 decided, 3 reviewed, 2 right: 0.667 is below 0.9 by more than 0.05, 3 reviewed
    assert (red["decided"], red["reviewed"], red["correct"]) == (4, 3, 2)
    assert (red["precision"], red["override_rate"], red["target"]) == (0.6667, 0.3333, 0.9)
    assert red["below_target"] and red["corrected_to"] == {"Hardware": 1}
    # Hardware: 1 of 3 right (0.333) is not below its own target 0.3 by more than the margin
    assert (hardware["decided"], hardware["reviewed"], hardware["correct"]) == (3, 3, 1)
    assert hardware["target"] == 0.3 and not hardware["below_target"]
    assert hardware["corrected_to"] == {"Software": 1, "Red": 1}
    # Software: decided once, reviewed never: no precision, not below anything
    assert (software["decided"], software["reviewed"], software["precision"]) == (1, 0, None)
    assert software["override_rate"] is None and not software["below_target"]
    # a cause of the model without decisions is listed with zeros
    assert out["causes"]["Accesos"]["decided"] == 0
    assert out["below_target"] == ["Red"]
    # by verdict: 6 classified (4 reviewed, 2 right), 2 needs_review (2 reviewed, 1 right)
    assert out["by_verdict"][C] == {
        "decided": 6,
        "reviewed": 4,
        "correct": 2,
        "overridden": 2,
        "precision": 0.5,
        "override_rate": 0.5,
    }
    assert (out["by_verdict"][R]["reviewed"], out["by_verdict"][R]["correct"]) == (2, 1)
    assert red["by_verdict"][C]["precision"] == 1.0
    assert red["by_verdict"][R]["precision"] == 0.0


def test_too_few_reviewed_is_never_below_target() -> None:
    # given Red at precision 0.667 over 3 reviewed, and at least 4 reviewed asked for
    out = figures(ROWS, targets={}, default_target=0.9, margin=0.05, min_reviewed=4)
    # then it is not reported, and says why
    assert not out["causes"]["Red"]["below_target"]
    assert not out["causes"]["Red"]["enough_reviewed"] and out["below_target"] == []


def test_nothing_decided_gives_no_precision() -> None:
    out = figures([], targets={}, default_target=0.9, margin=0.05, min_reviewed=1)
    assert (out["decided"], out["reviewed"], out["precision"], out["causes"]) == (0, 0, None, {})


def test_the_suggestion_is_the_lowest_threshold_that_meets_the_target() -> None:
    # given reviewed Red decisions, high to low: 5 of the top 5 reach 0.8, no lower set does
    red = [(0.95, True), (0.90, True), (0.85, False), (0.80, True), (0.70, True)]
    red += [(0.60, False), (0.55, True)]
    rows = [row("Red", C, "Red" if ok else "Otro", conf) for conf, ok in red]
    rows += [row("Red", C, None, 0.30)]  # not reviewed: no say
    rows += [row("Hardware", C, "Hardware", 0.9), row("Hardware", C, "Hardware", 0.8)]
    rows += [row("Software", C, "Red", 0.9 - i / 100) for i in range(4)]
    rows += [row("Correo", C, "Correo", 0.5) for _ in range(5)]
    # when thresholds are suggested (target 0.8, at least 3 reviewed)
    out = suggest(
        rows,
        classes=["Accesos", "Correo", "Hardware", "Red", "Software"],
        thresholds={"Red": 0.6, "Hardware": 0.75},
        default_threshold=0.6,
        targets={},
        default_target=0.8,
        min_reviewed=3,
        never={"Correo"},
    )
    # then Red: 0.70, where 4 of the 5 at or above it were right
    assert out["Red"]["suggested"] == 0.7 and out["Red"]["changed"]
    assert (out["Red"]["reviewed_at_suggested"], out["Red"]["precision_at_suggested"]) == (5, 0.8)
    assert (out["Red"]["reviewed"], out["Red"]["correct"], out["Red"]["manifest"]) == (7, 5, 0.6)
    # Hardware: 2 reviewed, fewer than 3: the manifest's 0.75 stays
    assert out["Hardware"]["suggested"] == 0.75 and not out["Hardware"]["changed"]
    assert "fewer than 3" in out["Hardware"]["reason"]
    # Software: always wrong, no threshold helps: the global one stays (no manifest threshold)
    assert out["Software"]["suggested"] is None and not out["Software"]["changed"]
    assert "no threshold reaches" in out["Software"]["reason"]
    # Correo: never automatic, whatever people confirmed; Accesos: nothing reviewed
    assert out["Correo"]["in_force"] is None and not out["Correo"]["changed"]
    assert out["Accesos"]["reviewed"] == 0 and not out["Accesos"]["changed"]


def test_decisions_of_one_confidence_share_a_threshold() -> None:
    # given three decisions at 0.9, one of them wrong, then one right at 0.8
    decisions = [(0.9, True), (0.9, False), (0.9, True), (0.8, True)]
    # then a threshold of 0.9 takes all three (2/3 misses 0.7), 0.8 all four (3/4 meets it)
    assert lowest_meeting(decisions, 0.7, 1) == (0.8, 4, 0.75)
    assert lowest_meeting(decisions, 0.76, 1) is None
    assert lowest_meeting(decisions, 0.6, 5) is None  # 4 reviewed, 5 asked


def test_thresholds_are_cut_down_never_rounded_up() -> None:
    assert cut(0.57) == 0.57 and cut(0.71239) == 0.7123 and cut(1.0) == 1.0
    assert all(cut(x / 997) <= x / 997 + 1e-12 for x in range(998))


@dataclass
class Model:
    version: str = "v1"
    classes: tuple[str, ...] = ("Hardware", "Red", "Software")
    thresholds: dict[str, float] = field(default_factory=dict)
    row: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])

    def predict_proba(self, texts: list[str]) -> Any:
        import numpy as np

        return np.array([self.row for _ in texts])


@pytest.mark.parametrize(
    ("cause", "confidence", "expected", "in_force"),
    [
        # never-auto wins over a manifest threshold of 0.3 and a global one of 0.6
        ("Hardware", 0.99, Status.NEEDS_REVIEW, None),
        # the manifest's 0.9 wins over the global 0.6
        ("Red", 0.80, Status.NEEDS_REVIEW, 0.9),
        ("Red", 0.90, Status.CLASSIFIED, 0.9),
        # no manifest threshold: the global one
        ("Software", 0.65, Status.CLASSIFIED, 0.6),
        ("Software", 0.55, Status.NEEDS_REVIEW, 0.6),
    ],
)
def test_precedence_never_auto_then_manifest_then_global(
    cause: str, confidence: float, expected: Status, in_force: float | None
) -> None:
    # given a manifest with thresholds for Hardware and Red, a global 0.6, Hardware never auto
    model = Model(thresholds={"Hardware": 0.3, "Red": 0.9})
    never = {"Hardware"}
    # then the threshold in force and the verdict follow that order
    assert threshold_in_force(model.thresholds, cause, 0.6, never) == in_force
    assert verdict(model, cause, confidence, 0.6, never) == expected
    # and a batch decided by the worker ends the same way
    model.row = [confidence if c == cause else (1 - confidence) / 2 for c in model.classes]
    [result] = decide([Claimed("T1", "some text", 1, "tok")], model, 0.6, never).results
    assert (result.predicted, result.status) == (cause, expected)
