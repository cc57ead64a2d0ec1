"""`causa thresholds --suggest` and `--apply` on a real database and model: the suggestion from
reviewed decisions, a signed manifest revision that a running holder picks up without a
restart, and a rollback that restores the thresholds before it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from tests.helpers import KEY, insert, wait_for
from training import registry
from training.registry import LoadedModel, ModelError
from worker.cli import app

runner = CliRunner()


def reviewed(conn: psycopg.Connection[Any], version: str, cause: str, other: str) -> None:
    """30 needs_review decisions of `cause` at confidences 0.40 to 0.98, then labelled: right
    from 0.50 up, wrong below. At a target of 0.9 the lowest threshold that meets it is 0.46
    (25 right of 27 at or above it; 0.44 gives 25 of 28, 0.893)."""
    numbers = [f"R{i:02d}" for i in range(30)]
    insert(conn, [(n, "texto", None) for n in numbers])
    claimed = conn.execute("SELECT causa_claim('test', 30, 60, 3, %s)", [Jsonb(numbers)])
    tokens = {r["number"]: r["claim_token"] for r in claimed.fetchone()[0]}  # type: ignore[index]
    results = [
        {
            "number": n,
            "claim_token": tokens[n],
            "status": "needs_review",
            "predicted": cause,
            "confidence": round(0.40 + 0.02 * i, 2),
            "model_version": version,
        }
        for i, n in enumerate(numbers)
    ]
    conn.execute("SELECT causa_apply(%s::jsonb)", [json.dumps(results)])
    for i, n in enumerate(numbers):
        label = cause if i >= 5 else other
        conn.execute("UPDATE tickets SET causa = %s WHERE number = %s", [label, n])


def serving(models: Any, condition: Callable[[LoadedModel], bool]) -> Callable[[], Any]:
    """What to wait for: the model the holder serves once `condition` holds for it."""

    def check() -> LoadedModel | None:
        m = models.get()
        return m if m is not None and condition(m) else None

    return check


def run(*args: str) -> dict[str, Any]:
    out = runner.invoke(app, ["thresholds", *args, "--json"])
    assert out.exit_code == 0, out.output
    return dict(json.loads(out.output.strip().splitlines()[-1]))


def test_suggest_apply_pick_up_and_roll_back(
    conn: psycopg.Connection[Any], rt: Any, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    # given the model in service, and a running holder serving it
    info = rt.registry.current()
    cause, other = info.classes[0], info.classes[1]
    before = dict(info.thresholds)
    served = rt.models.get()
    assert served is not None and served.info.revision == 0
    reviewed(conn, info.version, cause, other)

    # when thresholds are suggested: the lowest that meets 0.9, nothing published
    suggested = run("--suggest")
    assert suggested["causes"][cause]["suggested"] == 0.46
    assert suggested["causes"][cause]["reviewed_at_suggested"] == 27
    assert suggested["changed"] == [cause] and suggested["revision"] == 0
    assert rt.registry.current().thresholds == before
    table = runner.invoke(app, ["thresholds"])
    assert table.exit_code == 0 and "publish with --apply" in table.output, table.output

    # when they are applied
    applied = run("--apply")
    # then a new revision of the same model is in service, signed, with the new threshold
    assert applied["applied"] and applied["new_revision"] == 1
    revised = registry.read_manifest(model, KEY)  # verifies the signature
    assert revised is not None and revised.revision == 1 and revised.version == info.version
    assert revised.thresholds == before | {cause: 0.46}
    assert revised.sha256 == info.sha256
    # and the running holder swaps the thresholds in without loading the model again
    swapped = wait_for(
        serving(rt.models, lambda m: m.thresholds.get(cause) == 0.46), 10, "revision 1"
    )
    assert swapped.info.revision == 1 and swapped.pipeline is served.pipeline
    # and it is recorded
    row = conn.execute(
        "SELECT payload FROM causa.events WHERE kind = 'thresholds_applied'"
    ).fetchone()
    assert row is not None and row[0]["revision"] == 1
    assert row[0]["changed"] == {cause: {"from": before.get(cause), "to": 0.46}}
    # and applying again changes nothing
    again = run("--apply")
    assert not again["applied"] and again["new_revision"] == 1

    # when the revision is rolled back
    rolled = runner.invoke(app, ["rollback"])
    assert rolled.exit_code == 0, rolled.output
    # then revision 0's thresholds are in force again, in the holder too
    restored = rt.registry.current()
    assert (restored.revision, restored.thresholds) == (0, before) and restored.rolled_back
    wait_for(
        lambda: (
            (m := rt.models.get()) is not None and (m.info.revision, m.thresholds) == (0, before)
        ),
        10,
        "the holder to pick up the rollback",
    )
    assert rt.models.get().pipeline is served.pipeline
    # and a further apply makes revision 2 (revision 1 is kept as a backup)
    assert run("--apply")["new_revision"] == 2
    assert [i.label for _, i in rt.registry.models()][:3] == [
        f"{info.version}.r2",
        f"{info.version}.r1",
        info.version,
    ]


def test_a_revision_is_part_of_the_signature(model: Path, tmp_path: Path) -> None:
    # given a models directory with a revision applied
    copy = Path(shutil.copytree(model, tmp_path / "copy"))
    revised = registry.revise(copy, KEY, {"Red": 0.7}, "test")
    assert registry.read_manifest(copy, KEY) == revised
    # when someone changes the revision or the thresholds without the key
    for change in ({"revision": 7}, {"revision": 0}, {"thresholds": {"Red": 0.1}}):
        data = json.loads((copy / registry.MANIFEST).read_text())
        (copy / registry.MANIFEST).write_text(json.dumps(data | change))
        # then the manifest is refused
        with pytest.raises(ModelError, match="not signed with this installation's key"):
            registry.read_manifest(copy, KEY)
        (copy / registry.MANIFEST).write_text(json.dumps(data))
    # and a revision that is no whole number is refused as a manifest causa did not write
    data = json.loads((copy / registry.MANIFEST).read_text())
    (copy / registry.MANIFEST).write_text(json.dumps(data | {"revision": "1"}))
    with pytest.raises(ModelError, match="not a revision causa wrote"):
        registry.read_manifest(copy, KEY)


def test_a_new_revision_reaches_a_worker_through_the_shared_store(
    model: Path, tmp_path: Path
) -> None:
    # given a shared store with the model, and a worker's local copy of it
    store = Path(shutil.copytree(model, tmp_path / "store"))
    shared = registry.ModelRegistry(store, tmp_path / "local", KEY)
    from worker.model_holder import ModelHolder

    holder = ModelHolder(shared)
    first = holder.get()
    assert first is not None and first.info.revision == 0
    # when a revision is published to the store
    shared.revise({first.classes[0]: 0.99}, "test")
    # then the worker copies it and serves the new threshold on the same pipeline
    model_now = wait_for(serving(holder, lambda m: m.info.revision == 1), 10, "revision 1")
    assert model_now.thresholds[first.classes[0]] == 0.99
    assert model_now.pipeline is first.pipeline
    assert registry.read_manifest(tmp_path / "local", KEY).revision == 1  # type: ignore[union-attr]
    # and a rollback in the store reaches it too
    shared.rollback()
    wait_for(serving(holder, lambda m: m.info.revision == 0), 10, "the rollback")
