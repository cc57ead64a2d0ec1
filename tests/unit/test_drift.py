"""Drift: PSI on known distributions, the verdicts, unknown words with a real model, the
reference in the manifest, the report's notification and its place in the beat schedule."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from flows.drift import check
from shared.settings import Settings
from tests.helpers import KEY
from training import candidates, dataset, drift, registry
from training.registry import LoadedModel, ModelRegistry
from worker import demodata

REFERENCE = {
    "classes": {"a": 0.5, "b": 0.3, "c": 0.2},
    "mean_confidence": 0.85,
    "needs_review": 0.1,
    "unknown_words": 0.02,
    "tickets": 500,
    "threshold": 0.6,
}


def decisions(counts: dict[str, int], confidence: float = 0.9) -> list[dict[str, Any]]:
    status = "classified" if confidence >= 0.6 else "needs_review"
    return [
        {"predicted": cls, "confidence": confidence, "status": status}
        for cls, n in counts.items()
        for _ in range(n)
    ]


def texts(n: int, seed: int = 99, cause: str | None = None) -> list[str]:
    return [
        f"{t.short_description} {t.description}"
        for t in demodata.generate(n * (8 if cause else 1), seed=seed, start=10_000)
        if cause is None or t.cause == cause
    ][:n]


# --- PSI --------------------------------------------------------------------------------------


def test_psi_of_the_same_distribution_is_zero() -> None:
    assert drift.psi({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0.0


def test_psi_of_a_known_shift() -> None:
    # (0.9 - 0.5) ln(0.9/0.5) + (0.1 - 0.5) ln(0.1/0.5) = 0.235 + 0.644
    assert drift.psi({"a": 0.5, "b": 0.5}, {"a": 0.9, "b": 0.1}) == pytest.approx(0.8789, abs=1e-4)
    # a slight shift stays below the usual 0.1 "slight change" mark
    assert drift.psi({"a": 0.5, "b": 0.5}, {"a": 0.55, "b": 0.45}) == pytest.approx(0.0100, 1e-2)


def test_an_empty_bin_counts_as_epsilon_not_infinity() -> None:
    # class b vanished from the recent predictions, class c is new
    value = drift.psi({"a": 0.5, "b": 0.5}, {"a": 0.5, "c": 0.5})
    e = drift.EPSILON
    expected = 2 * (0.5 - e) * math.log(0.5 / e)  # b: e vs 0.5, c: 0.5 vs e
    assert math.isfinite(value) and value == pytest.approx(expected)
    assert value == pytest.approx(8.516, abs=1e-3)


# --- the verdicts ------------------------------------------------------------------------------


def test_recent_decisions_like_the_reference_are_ok() -> None:
    report = drift.compare(REFERENCE, decisions({"a": 250, "b": 150, "c": 100}), 0.03)
    assert report.verdict == "ok" and report.psi == pytest.approx(0.0)
    assert report.tickets == 500
    assert report.mean_confidence.change == pytest.approx(0.05)
    assert report.needs_review.recent == 0.0 and report.unknown_words.change == pytest.approx(0.01)


def test_a_shifted_class_distribution_is_drift() -> None:
    report = drift.compare(REFERENCE, decisions({"a": 50, "b": 50, "c": 400}), 0.02)
    assert report.verdict == "drift" and report.psi is not None and report.psi > 0.2
    assert report.reason.startswith("PSI ")
    assert report.classes["c"] == {"reference": 0.2, "recent": 0.8}


def test_many_new_words_are_drift_even_when_the_classes_hold() -> None:
    report = drift.compare(REFERENCE, decisions({"a": 250, "b": 150, "c": 100}), 0.02 + 0.15)
    assert report.verdict == "drift" and report.psi == pytest.approx(0.0)
    assert "unknown words" in report.reason
    # a rise at the jump itself is not
    at_limit = drift.compare(REFERENCE, decisions({"a": 250, "b": 150, "c": 100}), 0.02 + 0.09)
    assert at_limit.verdict == "ok"


def test_too_few_decisions_give_no_verdict() -> None:
    report = drift.compare(REFERENCE, decisions({"c": 199}), 0.5, min_tickets=200)
    assert report.verdict == "not enough data" and "199" in report.reason
    assert drift.compare(REFERENCE, decisions({"c": 200}), 0.5).verdict == "drift"


def test_a_model_without_reference_says_to_retrain() -> None:
    report = drift.compare({}, decisions({"a": 500}), 0.1)
    assert report.verdict == "no reference" and "causa train" in report.reason
    assert report.psi is None and report.mean_confidence.recent == pytest.approx(0.9)


def test_empty_texts_are_counted_but_not_compared() -> None:
    empty = [{"predicted": None, "confidence": 0.0, "status": "needs_review"}] * 30
    report = drift.compare(REFERENCE, decisions({"a": 250, "b": 150, "c": 100}) + empty, 0.02)
    assert report.tickets == 500 and report.empty == 30 and report.verdict == "ok"


def test_the_report_is_json_safe() -> None:
    import json

    report = drift.compare(REFERENCE, decisions({"a": 300, "b": 200}), 0.02).as_dict()
    assert json.loads(json.dumps(report)) == report
    assert set(report["unknown_words"]) == {"reference", "recent", "change"}


# --- unknown words, with a real model ---------------------------------------------------------


def test_unknown_words_of_the_installed_model(model: Path) -> None:
    loaded = registry.load_current(model, KEY)
    vectorizer = drift.word_vectorizer(loaded.pipeline)
    assert vectorizer is not None and vectorizer.analyzer == "word"
    known = sorted(w for w in vectorizer.vocabulary_ if " " not in w and w.isalpha())[:4]
    made_up = ["zorblat", "quenixo", "flurbex", "wexelq"]
    assert not set(made_up) & set(vectorizer.vocabulary_)
    # words are normalised the way the features see them: case and accents folded
    text = " ".join(w.upper() for w in known) + " " + " ".join(made_up)
    assert drift.unknown_share(loaded.pipeline, [text]) == pytest.approx(0.5)
    assert drift.unknown_share(loaded.pipeline, [" ".join(made_up)]) == 1.0
    # per ticket, then the mean: one long ticket weighs as one
    assert drift.unknown_share(
        loaded.pipeline, [" ".join(known), " ".join(made_up * 50)]
    ) == pytest.approx(0.5)
    ordinary = drift.unknown_share(loaded.pipeline, texts(200))
    assert ordinary is not None and ordinary < 0.05
    assert drift.unknown_share(loaded.pipeline, ["!!", ""]) is None


def test_the_word_vectorizer_is_found_in_candidate_pipelines() -> None:
    train = texts(150, seed=1)
    labels = [t.cause for t in demodata.generate(150, seed=1, start=10_000)]
    words_only = {"ngram_max": 2, "min_df": 1}
    for pipeline in (
        candidates.single({**words_only, "chars": True}, "logreg", {"C": 1.0}, 42),
        candidates.stack(words_only, {"cnb": {"alpha": 0.5}, "sgd": {"alpha": 1e-4}}, 42),
    ):
        assert drift.word_vectorizer(pipeline) is None  # not fitted: no vocabulary yet
        pipeline.fit(train, labels)
        found = drift.word_vectorizer(pipeline)
        assert found is not None and found.analyzer == "word"
        assert drift.unknown_share(pipeline, train) == 0.0  # min_df=1: every word is known


# --- the reference at promotion ---------------------------------------------------------------


def test_a_bootstrapped_model_carries_its_reference(model: Path) -> None:
    info = registry.read_manifest(model, KEY)
    assert info is not None
    ref = info.reference
    assert ref["tickets"] == info.metrics["n_holdout"] > 100
    assert set(ref["classes"]) == set(info.classes)
    assert sum(ref["classes"].values()) == pytest.approx(1.0, abs=1e-3)
    assert 0.5 < ref["mean_confidence"] <= 1.0
    assert 0.0 <= ref["needs_review"] < 0.5 and 0.0 <= ref["unknown_words"] < 0.1
    assert ref["threshold"] == Settings.model_fields["confidence_threshold"].default


def test_a_manifest_without_reference_still_loads() -> None:
    info = registry.ModelInfo.from_json(
        {
            "version": "20260101T000000Z-0123abcd",
            "file": "current/20260101T000000Z-0123abcd.skops",
            "sha256": "0" * 64,
            "created_at": "2026-01-01T00:00:00+00:00",
            "classes": ["a", "b"],
            "n_train": 10,
        }
    )
    assert info.reference == {}


def test_a_promoted_challenger_carries_its_reference(tmp_path: Path) -> None:
    from training.train import retrain

    data = [
        dataset.Example(f"H{i:05d}", f"{t.short_description} {t.description}", t.cause)
        for i, t in enumerate(demodata.generate(600, seed=42))
    ]
    settings = Settings(
        models_dir=tmp_path / "models",
        home=tmp_path / "home",
        n_trials=1,  # one quick trial: this is about the manifest, not the search
        search_families="cnb",
        min_tickets_per_s=100,
        min_class_count=10,
    )
    report = retrain(data, settings, ModelRegistry.from_settings(settings), trigger="test")
    info = registry.read_manifest(settings.models_dir, KEY)
    assert report.version is not None and info is not None and info.version == report.version
    assert info.reference["tickets"] == report.n_holdout
    assert set(info.reference["classes"]) == set(info.classes)
    assert info.reference["unknown_words"] is not None


# --- the check: stored, notified ----------------------------------------------------------------


class FakeStore:
    def __init__(self, recent: list[dict[str, Any]]) -> None:
        self._recent = recent
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.since: str | None = None

    def recent(self, since: str, limit: int = 10_000) -> list[dict[str, Any]]:
        self.since = since
        return self._recent

    def record_event(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append((kind, payload))


class FakeNotifier:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, event: str, title: str, body: str, **kw: Any) -> bool:
        self.sent.append({"event": event, "title": title, "body": body, **kw})
        return True


def stream(
    loaded: LoadedModel, items: list[str], version: str | None = None
) -> list[dict[str, Any]]:
    proba = loaded.predict_proba(items)
    best = proba.argmax(axis=1)
    return [
        {
            "text": text,
            "predicted": loaded.classes[b],
            "confidence": float(p[b]),
            "status": "classified" if p[b] >= 0.6 else "needs_review",
            "model_version": version or loaded.version,
        }
        for text, p, b in zip(items, proba, best, strict=True)
    ]


def test_check_stores_every_report_and_notifies_only_drift(model: Path) -> None:
    loaded = registry.load_current(model, KEY)
    settings = Settings(models_dir=model, drift_min_tickets=100)
    # given the model's decisions on ordinary tickets, and a few of an older model
    store = FakeStore(stream(loaded, texts(150)) + stream(loaded, texts(20), version="old"))
    notifier = FakeNotifier()
    result = check(store, loaded, settings, notifier)
    assert result["verdict"] == "ok" and result["tickets"] == 150
    assert result["other_versions"] == 20 and result["model_version"] == loaded.version
    assert store.events == [("drift", result)] and notifier.sent == []
    # when every ticket is about printers
    store = FakeStore(stream(loaded, texts(150, cause="Impresoras")))
    result = check(store, loaded, settings, notifier)
    assert result["verdict"] == "drift" and result["psi"] > 1.0
    (sent,) = notifier.sent
    assert sent["event"] == "drift detected" and sent["level"] == "warning"
    assert sent["key"] == "drift" and sent["every"] == settings.drift_window_hours * 3600
    assert "Impresoras" in sent["body"] and "causa train" in sent["body"]


def test_check_without_a_model_stores_that(model: Path) -> None:
    store, notifier = FakeStore([]), FakeNotifier()
    result = check(store, None, Settings(models_dir=model), notifier)
    assert result["verdict"] == "no model" and store.events == [("drift", result)]


def test_the_drift_report_runs_on_beat() -> None:
    from tasks import monitoring
    from worker.app import app, cron

    entry = app.conf.beat_schedule["drift-report"]
    assert entry["task"] == monitoring.drift_report.name == "tasks.monitoring.drift_report"
    assert entry["schedule"] == cron(Settings().drift_cron)
    assert "tasks.monitoring" in app.conf.include
