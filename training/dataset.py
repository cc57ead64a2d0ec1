"""Training data: labelled tickets from the store or a CSV, and the stable holdout.

A ticket belongs to the holdout by a hash of its number (a CSV row: of its text), so no
model ever trains on a holdout ticket and comparisons stay fair as labels accumulate.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from shared.store import Labelled

HOLDOUT_PERCENT = 20


class NotEnoughData(ValueError):
    """Too few labelled tickets to train; the message says how many and what to do."""


def in_holdout(key: str) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100 < HOLDOUT_PERCENT


@dataclass(frozen=True)
class Example:
    key: str  # ticket number, or the text itself for a CSV row
    text: str
    label: str


def from_store(rows: Iterable[Labelled]) -> list[Example]:
    return [Example(r.number, r.text, r.cause) for r in rows if r.text.strip()]


def from_csv(path: Path, text_column: str, label_column: str) -> list[Example]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as raw:
        reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        fields = reader.fieldnames or []
        for column in (text_column, label_column):
            if column not in fields:
                raise ValueError(f"{path} has no column {column!r}; its columns: {fields}")
        return [
            Example(row[text_column], row[text_column], row[label_column])
            for row in reader
            if (row[text_column] or "").strip() and (row[label_column] or "").strip()
        ]


def split(examples: list[Example]) -> tuple[list[Example], list[Example]]:
    train = [e for e in examples if not in_holdout(e.key)]
    holdout = [e for e in examples if in_holdout(e.key)]
    return train, holdout


def drop_rare(examples: list[Example], min_count: int) -> tuple[list[Example], dict[str, int]]:
    """Leave out classes with fewer than `min_count` examples; return what was left out."""
    counts = Counter(e.label for e in examples)
    rare = {label: n for label, n in counts.items() if n < min_count}
    return [e for e in examples if e.label not in rare], rare


@dataclass(frozen=True)
class Csv:
    """A labelled CSV (may be .gz) and the names of its text and label columns."""

    path: Path
    text_column: str = "text"
    label_column: str = "label"


def assemble(rows: Iterable[Labelled] | None, csv: Csv | None = None) -> list[Example]:
    """The labelled tickets (if `rows`) plus the CSV's rows (if `csv`)."""
    examples = from_store(rows) if rows is not None else []
    if csv is not None:
        examples += from_csv(csv.path, csv.text_column, csv.label_column)
    return examples
