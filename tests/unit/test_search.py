"""The search reports the trials that ran, not the baselines still queued when it stopped."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from structlog.testing import capture_logs

from training import search
from worker import demodata

RAN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def test_the_trial_count_is_the_trials_that_ran_not_the_queued_baselines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tickets = demodata.generate(600, seed=7)
    studies: list[optuna.Study] = []
    create_study = optuna.create_study

    def keep(**kwargs: Any) -> optuna.Study:
        study = create_study(**kwargs)
        studies.append(study)
        return study

    monkeypatch.setattr(optuna, "create_study", keep)

    # when the trial budget (2) is smaller than the queue of baselines (one per family: 4)
    with capture_logs() as logs:
        result = search.run(
            [f"{t.short_description} {t.description}" for t in tickets],
            [t.cause for t in tickets],
            seed=42,
            n_trials=2,
            timeout_s=60,
            min_tickets_per_s=0,
            families=("svc", "logreg", "sgd", "cnb"),
        )

    # then the count is the two that ran; the baselines still waiting are not counted
    (study,) = studies
    ran = [t for t in study.trials if t.state in RAN]
    assert len(ran) == 2
    assert any(t.state == TrialState.WAITING for t in study.trials), "baselines left queued"
    assert result.trials == len(ran)
    # and the log line (and so MLflow's search_trials) says the same
    (finished,) = [e for e in logs if e["event"] == "search finished"]
    assert finished["trials"] == len(ran)
