"""The model commands as a user types them: train from a CSV, models, predict, evaluate,
rollback; and training on the tickets people labelled in the real database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from tests.helpers import demo_rows, insert, insert_labelled, write_csv
from worker import demodata
from worker.cli import app

runner = CliRunner()


@pytest.fixture
def env(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CAUSA_MODELS_DIR", str(settings.models_dir))
    monkeypatch.setenv("CAUSA_HOME", str(settings.home))
    monkeypatch.setenv("CAUSA_N_TRIALS", "4")
    monkeypatch.setenv("COLUMNS", "250")  # rich tables unwrapped
    monkeypatch.setenv("CAUSA_SEARCH_FAMILIES", "svc,cnb")
    monkeypatch.setenv("CAUSA_MIN_TICKETS_PER_S", "1000")
    return settings


def last_json(output: str) -> dict[str, Any]:
    return dict(json.loads(output.strip().splitlines()[-1]))


def test_train_from_a_csv_then_models_predict_evaluate_rollback(
    env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # on a machine without the database or the broker: the offline training
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.delenv("REDIS_URL")
    data = write_csv(tmp_path / "tickets.csv", 1200, seed=3)
    first = runner.invoke(app, ["train", "--no-tickets", "--data", str(data), "--json"])
    assert first.exit_code == 0, first.output
    assert first.output.count("training offline: no training lock") == 1, first.output
    decision = last_json(first.output)
    assert decision["decision"] == "promote" and decision["champion"] is None
    assert "challenger vs champion" in first.output

    listed = runner.invoke(app, ["models"])
    assert decision["version"] in listed.output and "current" in listed.output

    predicted = runner.invoke(app, ["predict", "la impresora de la planta 2 no imprime"])
    assert predicted.exit_code == 0 and predicted.output.startswith("Impresoras")
    as_json = runner.invoke(app, ["predict", "la impresora no imprime", "--json"])
    one = json.loads(as_json.output)
    keys = {"cause", "confidence", "verdict", "alternatives", "explanation", "model_version"}
    assert set(one) == keys and one["model_version"] == decision["version"]
    assert one["alternatives"][0]["cause"] == one["cause"] == "Impresoras"
    assert len(one["alternatives"]) == 3
    explained = one["explanation"]  # None only for a model causa does not explain
    assert explained is None or "impresora" in [t["term"] for t in explained]

    test = write_csv(tmp_path / "test.csv", 300, seed=9)
    scored = runner.invoke(app, ["evaluate", "--data", str(test), "--json"])
    assert scored.exit_code == 0, scored.output
    metrics = last_json(scored.output)
    assert metrics["macro_f1"] > 0.8 and set(metrics["per_class"]) == set(demodata.CAUSES)

    # a second training on the same data cannot beat the champion by 0.01: kept
    kept = last_json(
        runner.invoke(app, ["train", "--no-tickets", "--data", str(data), "--json"]).output
    )
    assert kept["decision"] == "keep" and kept["champion"] is not None

    nothing = runner.invoke(app, ["rollback"])
    assert nothing.exit_code == 2 and "no backups" in nothing.output


def test_training_reads_only_human_labels_from_the_database(
    conn: psycopg.Connection[Any], env: Any
) -> None:
    # given 600 labelled tickets and 200 the model classified (its guesses must not count)
    insert_labelled(conn, [f"H{i}" for i in range(600)], demodata.generate(600, seed=1))
    insert(conn, demo_rows(200))
    claimed = conn.execute("SELECT causa_claim('t', 1000, 60)").fetchone()[0]  # type: ignore[index]
    results = [
        {
            "number": r["number"],
            "claim_token": r["claim_token"],
            "status": "classified",
            "predicted": "Red",
            "confidence": 0.9,
            "model_version": "v0",
        }
        for r in claimed
    ]
    conn.execute("SELECT causa_apply(%s::jsonb)", [json.dumps(results)])  # the model's writes
    result = runner.invoke(app, ["train", "--json"])
    assert result.exit_code == 0, result.output
    decision = last_json(result.output)
    assert decision["n_train"] + decision["n_holdout"] == 600
    # the backtest replays the holdout of those labels only: tickets no model trained on
    replayed = runner.invoke(app, ["backtest", "--json"])
    assert replayed.exit_code == 0, replayed.output
    backtest = last_json(replayed.output)
    assert backtest["labelled"] == 600 and backtest["tickets"] == decision["n_holdout"]
    overall = backtest["overall"]["in_force"]
    assert overall["applied"] + overall["review"] == decision["n_holdout"]


def test_backtest_of_a_csv_the_model_never_saw_with_plots(
    env: Any, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAUSA_NEVER_AUTO", "Impresoras")
    data = write_csv(tmp_path / "new.csv", 200, seed=11)
    page = tmp_path / "backtest.html"
    args = ["backtest", "--data", str(data), "--every-row", "--json", "--html", str(page)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    backtest = last_json(result.output)
    assert backtest["tickets"] == 200 and backtest["never_auto"] == ["Impresoras"]
    printers = backtest["causes"]["Impresoras"]
    assert printers["in_force"]["applied"] == 0 and printers["in_force"]["review"] > 0
    assert printers["sweep"][0]["applied"] == printers["tickets"]  # at 0, every one
    html = page.read_text()
    assert html.count("<svg") == len(backtest["causes"]) + 1 and "<script" not in html
    table = runner.invoke(app, ["backtest", "--data", str(data)])  # the holdout rows only
    assert table.exit_code == 0 and "never trained on" in table.output, table.output


def test_no_tickets_without_data_is_refused(env: Any) -> None:
    result = runner.invoke(app, ["train", "--no-tickets"])
    assert result.exit_code == 2 and "--no-tickets needs --data" in result.output


def test_causa_train_is_the_retrain_flow_locked_notified_and_recorded(
    env: Any, rt: Any, tmp_path: Path
) -> None:
    from flows.training import TRAINING_LOCK

    data = write_csv(tmp_path / "tickets.csv", 1200, seed=3)
    # while another training runs, `causa train` waits for nothing and trains nothing
    lock = rt.redis.lock(TRAINING_LOCK, timeout=60)
    assert lock.acquire(blocking=False)
    try:
        skipped = runner.invoke(app, ["train", "--no-tickets", "--data", str(data), "--json"])
    finally:
        lock.release()
    assert skipped.exit_code == 0 and last_json(skipped.output)["decision"] == "skipped"
    assert "training" not in rt.store.latest_events()
    # then it trains, and its decision is recorded for `causa status` like any other training
    trained = runner.invoke(app, ["train", "--no-tickets", "--data", str(data), "--json"])
    assert trained.exit_code == 0, trained.output
    assert "training offline" not in trained.output
    recorded = rt.store.latest_events()["training"]["payload"]
    assert recorded["trigger"] == "cli" and recorded["decision"] == "promote"
    status = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    assert status["last_training"]["decision"] == "promote"
