"""Champion against challenger on the same held-out tickets: promote or keep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    challenger: dict[str, Any]  # scores on the holdout
    champion: dict[str, Any] | None
    min_improvement: float
    min_f1: float

    @property
    def difference(self) -> float | None:
        if self.champion is None:
            return None
        return float(self.challenger["macro_f1"] - self.champion["macro_f1"])

    @property
    def relative(self) -> float | None:
        if self.champion is None or not self.champion["macro_f1"]:
            return None
        return float(self.challenger["macro_f1"] / self.champion["macro_f1"] - 1)

    @property
    def verdict(self) -> str:
        return "promote" if self.promote else "keep"

    def summary(self) -> dict[str, Any]:
        """The decision as one JSON-safe object (for --json, logs, MLflow, notifications)."""

        def brief(scores: dict[str, Any] | None) -> dict[str, Any] | None:
            if scores is None:
                return None
            return {
                "macro_f1": round(scores["macro_f1"], 4),
                "accuracy": round(scores["accuracy"], 4),
                "ece": round(scores["ece"], 4),
                "per_class_f1": {k: round(v["f1"], 4) for k, v in scores["per_class"].items()},
            }

        return {
            "decision": self.verdict,
            "reason": self.reason,
            "challenger": brief(self.challenger),
            "champion": brief(self.champion),
            "difference": None if self.difference is None else round(self.difference, 4),
            "relative": None if self.relative is None else round(self.relative, 4),
            "min_improvement": self.min_improvement,
            "holdout": self.challenger["n"],
        }


def decide(
    challenger: dict[str, Any],
    champion: dict[str, Any] | None,
    *,
    min_improvement: float,
    min_f1: float,
) -> Decision:
    c = challenger["macro_f1"]
    if champion is None:
        ok = c >= min_f1
        reason = (
            f"first model: macro-F1 {c:.4f} {'reaches' if ok else 'is below'} the floor"
            f" {min_f1:.2f}"
        )
        return Decision(ok, reason, challenger, None, min_improvement, min_f1)
    gain = c - champion["macro_f1"]
    ok = gain >= min_improvement
    reason = (
        f"challenger macro-F1 {c:.4f} vs champion {champion['macro_f1']:.4f}:"
        f" {gain:+.4f}, {'at least' if ok else 'less than'} the {min_improvement:.4f}"
        " required"
    )
    return Decision(ok, reason, challenger, champion, min_improvement, min_f1)


def comparison_rows(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """A training's summary as (metric, challenger, champion) rows, formatted: the one
    comparison table that the command line and the notifications both show."""
    challenger, champion = summary["challenger"] or {}, summary["champion"] or {}

    def number(value: Any) -> str:
        return "—" if value is None else f"{value:.4f}"

    rows = [
        (label, number(challenger.get(key)), number(champion.get(key)))
        for label, key in (
            ("macro-F1", "macro_f1"),
            ("accuracy", "accuracy"),
            ("calibration error", "ece"),
        )
    ]
    old = champion.get("per_class_f1", {})
    for cls, f1 in challenger.get("per_class_f1", {}).items():
        rows.append((f"F1 {cls}", number(f1), number(old.get(cls))))
    return rows


def comparison_text(summary: dict[str, Any]) -> str:
    """The comparison table as plain text, for a notification."""
    lines = [f"{'metric':<22}{'challenger':>12}{'champion':>12}"]
    lines += [f"{a:<22}{b:>12}{c:>12}" for a, b, c in comparison_rows(summary)]
    return "\n".join(lines)
