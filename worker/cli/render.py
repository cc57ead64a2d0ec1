"""Tables for the terminal: what the commands print, apart from what they do."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from flows.status import age_seconds
from training.compare import comparison_rows
from worker.cli.common import console


def decision(summary: dict[str, Any]) -> None:
    """A training's challenger and champion side by side on the same holdout, and the verdict."""
    table = Table(title=f"challenger vs champion on {summary['holdout']} held-out tickets")
    table.add_column("metric")
    table.add_column("challenger", justify="right")
    table.add_column("champion", justify="right")
    for row in comparison_rows(summary):
        table.add_row(*row)
    Console().print(table)
    console.print(
        f"difference {summary['difference']} (relative {summary['relative']}), required"
        f" {summary['min_improvement']}: [bold]{summary['decision']}[/bold] — {summary['reason']}"
    )
    if summary.get("left_out"):
        console.print(f"left out for too few labels: {summary['left_out']}")
    console.print(
        f"challenger: {summary['model']}; {summary['tickets_per_s']} tickets/s on one"
        f" core; {summary['seconds']} s; version in service:"
        f" {summary['version'] or 'unchanged'}"
    )


def scores(title: str, result: dict[str, Any]) -> None:
    """Per-class precision, recall and F1, then the confusion matrix."""
    table = Table(title=title)
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column)
    for cls, m in result["per_class"].items():
        table.add_row(
            cls, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"])
        )
    Console().print(table)
    matrix = Table(title="confusion matrix (rows: true, columns: predicted)")
    matrix.add_column("")
    for label in result["labels"]:
        matrix.add_column(label[:10], justify="right")
    for label, row in zip(result["labels"], result["confusion"], strict=True):
        matrix.add_row(label, *(str(v) for v in row))
    Console().print(matrix)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    out = Table(title=title)
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*row)
    Console().print(out)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def listener_row(seen: dict[str, str | None] | None) -> str:
    """When the listener last heard tickets announced and last proved its connection alive."""
    if seen is None:
        return "—"
    if not seen["alive_at"]:
        return "never reported: not running? (beat's poll covers)"
    heard = seen["heard_at"]
    last = f"last event {duration(age_seconds(heard))} ago" if heard else "no event yet"
    return f"{last}, alive {duration(age_seconds(seen['alive_at']))} ago"


def status_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The report as (what, value) rows for the table."""
    model, training, drift = report["model"], report["last_training"], report["drift"]
    workers = report["workers"]

    def count(key: str) -> str:
        n = report[key]
        return f"~{n:,} (estimate)" if key in report["estimated"] else str(n)

    return [
        ("backlog (pending)", count("backlog")),
        ("oldest pending ticket", duration(report["oldest_pending_s"])),
        ("claimed (in flight)", str(report["claimed"])),
        ("needs review", count("needs_review")),
        ("failed (dead letter)", count("failed")),
        ("classified, last 5 min", f"{count('classified_last_5_min')} ({report['rate_per_s']}/s)"),
        ("queued tasks", str(report["queued_tasks"])),
        ("listener", listener_row(report["listener"])),
        (
            "model in service",
            f"{model['version']}, {duration(model['age_s'])} old, macro-F1"
            f" {model['macro_f1'] if model['macro_f1'] is not None else '—'}"
            if model
            else "none: run `causa train --bootstrap`",
        ),
        (
            "last training",
            f"{training['decision']}: {training['reason']} ({training['at']})" if training else "—",
        ),
        ("drift", f"{drift['verdict']}, PSI {drift['psi']} ({drift['at']})" if drift else "—"),
        (
            "workers online",
            ", ".join(workers) or "none" if workers is not None else report.get("broker_error", ""),
        ),
    ]
