"""Training data: labelled tickets from the store or a CSV, the stable holdout, and the
snapshot of what a training learned from.

A ticket belongs to the holdout by a hash of its number (a CSV row: of its text), so no
model ever trains on a holdout ticket and comparisons stay fair as labels accumulate.

A snapshot is the training's examples in their canonical order (by key), one JSON object a
line (key, label, text; the text masked unless CAUSA_MASK_PII=false), gzip-compressed with
no timestamp: the same examples give the same bytes, and its digest (SHA-256 of the lines)
names the data set. Training from a snapshot gives the same features as from the tickets it
was made of (the features see masked text in both).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from shared.store import Labelled
from shared.text import masked

HOLDOUT_PERCENT = 20


class NotEnoughData(ValueError):
    """Too few labelled tickets to train; the message says how many and what to do."""


def in_holdout(key: str) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100 < HOLDOUT_PERCENT


@dataclass(frozen=True)
class Example:
    key: str  # ticket number, or a digest of the text for a CSV row
    text: str
    label: str


def canonical(examples: Iterable[Example]) -> list[Example]:
    """The order a training takes its examples in (an estimator's result depends on it)."""
    return sorted(examples, key=lambda e: (e.key, e.label, e.text))


@dataclass(frozen=True)
class Snapshot:
    digest: str  # 16 hex digits of the SHA-256 of the uncompressed lines
    data: bytes  # the lines, gzip-compressed
    rows: int

    @property
    def name(self) -> str:
        return f"{self.digest}.jsonl.gz"


def snapshot(examples: Iterable[Example], *, mask_personal: bool) -> Snapshot:
    """The examples as a snapshot (see the module's docstring)."""
    rows = canonical(examples)
    body = "".join(
        json.dumps(
            {"key": e.key, "label": e.label, "text": masked(e.text) if mask_personal else e.text},
            ensure_ascii=False,
            sort_keys=True,
        )
        + "\n"
        for e in rows
    ).encode()
    digest = hashlib.sha256(body).hexdigest()[:16]
    return Snapshot(digest, gzip.compress(body, mtime=0), len(rows))


def from_snapshot(data: bytes, digest: str) -> list[Example]:
    """The examples of a snapshot; ValueError when its content is not the digest's."""
    body = gzip.decompress(data)
    found = hashlib.sha256(body).hexdigest()[:16]
    if found != digest:
        raise ValueError(
            f"the snapshot of data set {digest} holds data set {found}: the file was changed"
            " or belongs to another training"
        )
    return [Example(**json.loads(line)) for line in body.splitlines()]


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
            Example(_text_key(row[text_column]), row[text_column], row[label_column])
            for row in reader
            if (row[text_column] or "").strip() and (row[label_column] or "").strip()
        ]


def _text_key(text: str) -> str:
    """A CSV row's key: a digest of its text (the text itself would carry personal data into
    the snapshot)."""
    return "csv:" + hashlib.sha256(text.encode()).hexdigest()[:20]


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
