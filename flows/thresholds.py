"""Per-class thresholds from live corrections (`causa thresholds --suggest`, `--apply`).

The model in service's decisions that people reviewed (flows/accuracy.py says which) show,
per cause, how precise the model is above each confidence. For each cause the suggestion is
the lowest threshold at which the precision of the reviewed decisions at or above it meets
the cause's target (CAUSA_TARGET_PRECISION, or its CAUSA_TARGET_PRECISION_BY_CAUSE), over at
least CAUSA_ACCURACY_MIN_REVIEWED of them; a cause without that keeps the manifest's
threshold (or the global one). Thresholds are cut down to 4 decimals, so a decision counted
above a threshold stays above it.

`--apply` publishes the suggestion as a new signed revision of the model's manifest (the
same model; the registry's `revise`), which every worker picks up before its next batch and
`causa rollback` undoes; recorded as a `thresholds_applied` event.

Only decisions of the model version in service count: another model's confidences say
nothing of this one's. The decision in force keeps its order: a cause in CAUSA_NEVER_AUTO is
never applied automatically, whatever its threshold; then the manifest's threshold for the
cause; then CAUSA_CONFIDENCE_THRESHOLD.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from flows.accuracy import window_rows
from flows.classify import threshold_in_force
from flows.runtime import Runtime
from shared.contract import Event
from training.registry import ModelError, ModelInfo

log = structlog.get_logger("causa.thresholds")
STEP = 10_000  # thresholds are multiples of 1/STEP (4 decimals), cut down


def cut(confidence: float) -> float:
    """`confidence` cut down to 4 decimals (never above it; 1e-9 absorbs 0.57 * 1e4 =
    5699.999...)."""
    return math.floor(confidence * STEP + 1e-9) / STEP


def suggest(
    rows: Iterable[Mapping[str, Any]],
    *,
    classes: Iterable[str],
    thresholds: Mapping[str, float],
    default_threshold: float,
    targets: Mapping[str, float],
    default_target: float,
    min_reviewed: int,
    never: Collection[str] = (),
) -> dict[str, dict[str, Any]]:
    """Per cause: reviewed, correct, target, the manifest's threshold (None: the global one
    applies), the threshold in force (None: never automatic), the suggestion, the precision
    and the reviewed decisions at or above it, whether it changes anything, and why. Rows are
    decisions {predicted, confidence, label}; those nobody reviewed (label None) are left out."""
    reviewed: dict[str, list[tuple[float, bool]]] = {c: [] for c in classes}
    for row in rows:
        if row.get("label") is None or row.get("confidence") is None:
            continue
        cause = str(row["predicted"])
        reviewed.setdefault(cause, []).append(
            (cut(float(row["confidence"])), row["label"] == cause)
        )
    out = {}
    for cause in sorted(reviewed):
        decisions = sorted(reviewed[cause], reverse=True)
        target = targets.get(cause, default_target)
        manifest = thresholds.get(cause)
        in_force = threshold_in_force(thresholds, cause, default_threshold, never)
        found = lowest_meeting(decisions, target, min_reviewed)
        correct = sum(ok for _, ok in decisions)
        if cause in never:
            suggested, reason = manifest, "never applied automatically (CAUSA_NEVER_AUTO)"
        elif found is not None:
            suggested = found[0]
            reason = (
                f"precision {found[2]:.1%} over the {found[1]} reviewed at or above"
                f" {found[0]:.4f} meets the target {target:.0%}"
            )
        elif len(decisions) < min_reviewed:
            suggested = manifest
            reason = f"{len(decisions)} reviewed, fewer than {min_reviewed}: kept"
        else:
            suggested = manifest
            reason = (
                f"no threshold reaches the target {target:.0%} over {min_reviewed} or more"
                " reviewed: kept (consider CAUSA_NEVER_AUTO, or more labels and a retraining)"
            )
        out[cause] = {
            "reviewed": len(decisions),
            "correct": correct,
            "target": target,
            "manifest": manifest,
            "in_force": in_force,
            "suggested": suggested,
            "precision_at_suggested": found[2] if found else None,
            "reviewed_at_suggested": found[1] if found else None,
            "changed": cause not in never and suggested is not None and suggested != manifest,
            "reason": reason,
        }
    return out


def lowest_meeting(
    decisions: list[tuple[float, bool]], target: float, min_reviewed: int
) -> tuple[float, int, float] | None:
    """(threshold, reviewed at or above it, their precision) for the lowest threshold among
    the decisions' confidences (sorted high to low) where the precision of those at or above
    it meets `target` over at least `min_reviewed`; None when there is none."""
    best = None
    n = correct = 0
    for i, (confidence, ok) in enumerate(decisions):
        n += 1
        correct += ok
        if i + 1 < len(decisions) and decisions[i + 1][0] == confidence:
            continue  # the same threshold takes every decision of this confidence
        precision = correct / n
        if n >= min_reviewed and precision >= target:
            best = (confidence, n, round(precision, 4))
    return best


def _model(rt: Runtime) -> ModelInfo:
    info = rt.registry.current()
    if info is None:
        raise ModelError(f"no model in {rt.registry.home}: train one with `causa train`")
    return info


def suggestion(rt: Runtime, days: int | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The suggestion for the model in service from its decisions people reviewed over the
    last `days` (default CAUSA_ACCURACY_WINDOW_DAYS): {model_version, revision, window_days,
    since, reviewed, threshold (global), never_auto, causes: {cause: see `suggest`},
    thresholds: the manifest's thresholds with the suggestion applied, changed: [cause]}."""
    s = rt.settings
    if days is not None and (type(days) is not int or not 1 <= days <= 3650):
        raise ValueError(f"days must be a whole number of days from 1 to 3650, not {days!r}")
    info = _model(rt)
    days = days or s.accuracy_window_days
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    rows = list(window_rows(rt.store, since, now, info.version))
    causes = suggest(
        rows,
        classes=info.classes,
        thresholds=info.thresholds,
        default_threshold=s.confidence_threshold,
        targets=s.precision_targets,
        default_target=s.target_precision,
        min_reviewed=s.accuracy_min_reviewed,
        never=s.never_auto_causes,
    )
    changed = [c for c, v in causes.items() if v["changed"]]
    proposed = dict(info.thresholds) | {c: causes[c]["suggested"] for c in changed}
    return {
        "model_version": info.version,
        "revision": info.revision,
        "window_days": days,
        "since": since.isoformat(timespec="seconds"),
        "reviewed": sum(v["reviewed"] for v in causes.values()),
        "threshold": s.confidence_threshold,
        "never_auto": sorted(s.never_auto_causes),
        "causes": causes,
        "thresholds": dict(sorted(proposed.items())),
        "changed": changed,
    }


def apply(rt: Runtime, days: int | None = None, triggered_by: str = "cli") -> dict[str, Any]:
    """Publish the suggestion as a new signed revision of the model's manifest (nothing when
    it changes no threshold); recorded as a `thresholds_applied` event and notified."""
    proposal = suggestion(rt, days)
    if not proposal["changed"]:
        return {**proposal, "applied": False, "new_revision": proposal["revision"]}
    before = _model(rt)
    if before.version != proposal["model_version"]:  # a promotion in between
        raise ModelError(
            f"model {before.version} came into service while the suggestion for"
            f" {proposal['model_version']} was computed: run it again"
        )
    revised = rt.registry.revise(
        proposal["thresholds"],
        decision=f"thresholds from live corrections ({', '.join(proposal['changed'])})",
    )
    record = {
        "model_version": revised.version,
        "revision": revised.revision,
        "previous_revision": before.revision,
        "triggered_by": triggered_by,
        "window_days": proposal["window_days"],
        "changed": {
            c: {"from": before.thresholds.get(c), "to": revised.thresholds[c]}
            for c in proposal["changed"]
        },
        "thresholds": revised.thresholds,
    }
    rt.store.record_event(Event.THRESHOLDS, record)
    rt.notifier.send(
        "thresholds applied",
        f"model {revised.label}: new thresholds for {', '.join(proposal['changed'])}",
        "\n".join(
            f"{c}: {v['from'] if v['from'] is not None else 'global'} → {v['to']}"
            for c, v in record["changed"].items()
        )
        + f"\nby {triggered_by}; `causa rollback` restores revision {before.revision}.",
        level="info",
    )
    log.info("thresholds applied", **{k: v for k, v in record.items() if k != "thresholds"})
    return {**proposal, "applied": True, "new_revision": revised.revision}
