"""classify_batch and decide with hand-written fakes: no database, no Celery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from flows import predict
from flows.classify import classify_batch, decide, tasks_needed
from shared.settings import Settings
from shared.store import Caller, Claimed, Failure, Labelled, Result


@dataclass
class FakeModel:
    version: str = "v1"
    classes: Sequence[str] = ("Hardware", "Red")
    thresholds: dict[str, float] = field(default_factory=dict)
    poison: str = "\u2620"

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if any(self.poison in t for t in texts):
            raise ValueError("cannot featurize")
        return np.array([[0.9, 0.1] if "pantalla" in t else [0.45, 0.55] for t in texts])


@dataclass
class FakeStore:
    pending: list[Claimed]
    applied: list[Result] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    claims: int = 0

    def claim(
        self, caller: Caller, batch: int, numbers: Sequence[str] | None = None
    ) -> list[Claimed]:
        self.claims += 1
        taken, self.pending = self.pending[:batch], self.pending[batch:]
        return taken

    def apply(self, caller: Caller, results: Sequence[Result]) -> dict[str, int]:
        self.applied.extend(results)
        return {"applied": len(results), "stale": 0}

    def fail(self, caller: Caller, failures: Sequence[Failure]) -> dict[str, int]:
        self.failed.extend(failures)
        return {"retrying": len(failures), "failed": 0, "stale": 0}

    def pending_count(self) -> dict[str, int]:
        return {"pending": len(self.pending), "retry": 0, "claimed": 0}

    def status_counts(self) -> dict[str, int]:
        return {}

    def labelled(self) -> list[Labelled]:
        return []


@dataclass
class Models:
    model: FakeModel | None

    def get(self) -> FakeModel | None:
        return self.model


def ticket(number: str, text: str | None, attempts: int = 1) -> Claimed:
    return Claimed(number, text, attempts, f"tok-{number}")  # type: ignore[arg-type]


def test_confident_predictions_are_classified_and_unsure_ones_need_review() -> None:
    outcome = decide(
        [ticket("1", "la pantalla parpadea"), ticket("2", "algo raro")], FakeModel(), 0.6
    )
    by_number = {r.number: r for r in outcome.results}
    assert (by_number["1"].status, by_number["1"].predicted) == ("classified", "Hardware")
    assert (by_number["2"].status, by_number["2"].predicted) == ("needs_review", "Red")


def test_per_class_thresholds_take_precedence_over_the_global_one() -> None:
    model = FakeModel(thresholds={"Hardware": 0.95})
    outcome = decide([ticket("1", "la pantalla parpadea")], model, 0.6)
    assert outcome.results[0].status == "needs_review"


def test_a_never_auto_cause_always_ends_needs_review() -> None:
    # given Hardware among the causes never applied automatically, and a model sure of it
    settings = Settings(never_auto=" Hardware , Correo")
    assert settings.never_auto_causes == {"Hardware", "Correo"}
    store = FakeStore([ticket("1", "la pantalla parpadea"), ticket("2", "algo raro")])
    model = FakeModel(thresholds={"Hardware": 0.0})  # even a per-class threshold of 0
    # when the batch is decided
    classify_batch(store, Models(model), settings, worker="w", limit=10)
    # then the Hardware ticket waits for a person, predicted but not applied
    by_number = {r.number: r for r in store.applied}
    assert (by_number["1"].status, by_number["1"].predicted) == ("needs_review", "Hardware")
    assert (by_number["1"].confidence or 0) >= 0.9
    assert decide([ticket("3", "la pantalla")], model, 0.6).results[0].status == "classified"
    # and a prediction without a ticket says so: no threshold applies it
    (said,) = predict.predict(
        model, ["la pantalla parpadea"], 0.6, never=settings.never_auto_causes
    )
    assert (said["cause"], said["verdict"], said["threshold"]) == ("Hardware", "needs_review", None)
    (other,) = predict.predict(model, ["la pantalla parpadea"], 0.6)
    assert (other["verdict"], other["threshold"]) == ("classified", 0.0)


def test_explanations_are_kept_with_each_result_unless_switched_off() -> None:
    class Explaining(FakeModel):
        def explain(self, texts: list[str]) -> tuple[np.ndarray, list[Any]]:
            return self.predict_proba(texts), [[("pantalla", 1.5)] for _ in texts]

    (result,) = decide([ticket("1", "la pantalla")], Explaining(), 0.6).results
    assert result.explanation == [{"term": "pantalla", "weight": 1.5}]
    (plain,) = decide([ticket("1", "la pantalla")], Explaining(), 0.6, explain=False).results
    assert plain.explanation is None
    (unexplained,) = decide([ticket("1", "la pantalla")], FakeModel(), 0.6).results
    assert unexplained.explanation is None  # a model that cannot explain


def test_empty_text_gets_a_clear_outcome() -> None:
    outcome = decide(
        [ticket("1", None), ticket("2", "   "), ticket("3", "\x00\x00")], FakeModel(), 0.6
    )
    assert {r.status for r in outcome.results} == {"needs_review"}
    assert all(
        r.error == "empty text: nothing to classify" and r.predicted is None
        for r in outcome.results
    )


def test_a_ticket_that_breaks_the_model_fails_alone() -> None:
    claimed = [ticket("1", "la pantalla"), ticket("2", "veneno \u2620"), ticket("3", "red caída")]
    outcome = decide(claimed, FakeModel(), 0.6)
    assert [f.number for f in outcome.failures] == ["2"]
    assert "ValueError" in outcome.failures[0].error
    assert sorted(r.number for r in outcome.results) == ["1", "3"]


def test_without_a_model_nothing_is_claimed() -> None:
    store = FakeStore([ticket("1", "x")])
    summary = classify_batch(store, Models(None), Settings(), worker="w", limit=10)
    assert summary["claimed"] == 0 and store.claims == 0 and len(store.pending) == 1


def test_a_batch_is_claimed_predicted_and_written_in_one_call_each() -> None:
    store = FakeStore([ticket(str(i), "la pantalla") for i in range(5)])
    summary = classify_batch(store, Models(FakeModel()), Settings(), worker="w", limit=3)
    assert summary["claimed"] == 3 and summary["classified"] == 3
    assert store.claims == 1 and len(store.applied) == 3 and len(store.pending) == 2


def test_a_write_refused_for_good_is_recorded_on_each_ticket() -> None:
    class RefusingStore(FakeStore):
        def apply(self, caller: Caller, results: Sequence[Result]) -> dict[str, int]:
            raise PermissionError("permission denied for function causa_apply")

    store = RefusingStore([ticket("1", "la pantalla"), ticket("2", "red caída")])
    try:
        classify_batch(store, Models(FakeModel()), Settings(), worker="w", limit=10)
    except PermissionError:
        pass
    else:
        raise AssertionError("the error was swallowed")
    assert [f.number for f in store.failed] == ["1", "2"]
    assert all("permission denied for function causa_apply" in f.error for f in store.failed)


def test_a_claim_refused_for_its_size_is_split_until_it_fits() -> None:
    from psycopg import errors

    class SizeLimitedStore(FakeStore):
        """Refuses a claim of more than 2 tickets as PostgreSQL refuses a too-large reply."""

        def claim(
            self, caller: Caller, batch: int, numbers: Sequence[str] | None = None
        ) -> list[Claimed]:
            if batch > 2:
                raise errors.ProgramLimitExceeded("total size of jsonb array elements exceeds")
            return super().claim(caller, batch, numbers)

    # given a batch of 10 whose reply would be too large
    store = SizeLimitedStore([ticket(str(i), "la pantalla") for i in range(5)])
    # when it is classified; then it was claimed in a batch that fits, and decided
    summary = classify_batch(store, Models(FakeModel()), Settings(), worker="w", limit=10)
    assert summary["claimed"] == 2 and len(store.applied) == 2 and len(store.pending) == 3


def test_tasks_needed_covers_the_backlog_less_what_is_queued() -> None:
    assert tasks_needed(pending=0, retry=0, batch=1000, queued=0) == 0
    assert tasks_needed(pending=1, retry=0, batch=1000, queued=0) == 1
    assert tasks_needed(pending=2500, retry=0, batch=1000, queued=0) == 3
    assert tasks_needed(pending=2500, retry=4, batch=1000, queued=0) == 7  # retries go alone
    assert tasks_needed(pending=2500, retry=0, batch=1000, queued=2) == 1
    assert tasks_needed(pending=10, retry=0, batch=1000, queued=5) == 0
    assert tasks_needed(pending=10**7, retry=0, batch=1, queued=0) == 500  # bounded per poll


def test_the_soft_time_limit_is_no_tickets_fault() -> None:
    from billiard.exceptions import SoftTimeLimitExceeded

    class SlowModel(FakeModel):
        def predict_proba(self, texts: list[str]) -> np.ndarray:
            raise SoftTimeLimitExceeded()

    class SlowStore(FakeStore):
        def apply(self, caller: Caller, results: Sequence[Result]) -> dict[str, int]:
            raise SoftTimeLimitExceeded()

    tickets = [ticket("1", "la pantalla"), ticket("2", "red caída")]
    # when the time limit strikes while predicting; then it ends the batch, nobody fails
    with pytest.raises(SoftTimeLimitExceeded):
        decide(tickets, SlowModel(), 0.6)
    # when it strikes while writing; then no ticket is sent to the dead letter path
    store = SlowStore(list(tickets))
    with pytest.raises(SoftTimeLimitExceeded):
        classify_batch(store, Models(FakeModel()), Settings(), worker="w", limit=10)
    assert store.failed == []
