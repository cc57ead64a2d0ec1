"""Commands about models: train one, list them, roll back, score one, ask one, set its
thresholds from live corrections."""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.settings import Settings
from shared.store import make_store
from training import dataset
from training.registry import ModelError, ModelInfo, ModelRegistry
from worker.cli import render
from worker.cli.common import console, fail, ready_to_run, runtime, settings


def train(
    data: Annotated[Path | None, typer.Option(help="Also train on this CSV (may be .gz).")] = None,
    text_column: Annotated[str, typer.Option(help="The CSV's text column.")] = "text",
    label_column: Annotated[str, typer.Option(help="The CSV's label column.")] = "label",
    tickets: Annotated[
        bool, typer.Option(help="Use the tickets people labelled (--no-tickets: CSV only).")
    ] = True,
    bootstrap: Annotated[
        bool, typer.Option(help="A quick first model without search or comparison.")
    ] = False,
    force: Annotated[bool, typer.Option(help="--bootstrap: replace an existing model.")] = False,
    snapshot: Annotated[
        str | None,
        typer.Option(
            metavar="DIGEST",
            help="Retrain from the data set of this digest (a training run's dataset_digest in"
            " MLflow) with the recipe recorded with it: the same model again.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
) -> None:
    """Train a challenger, compare it with the model in service on the same holdout, and
    promote it if it wins (--bootstrap: a first model, no search). The same flow as the
    scheduled retraining: one training at a time, notified, its decision recorded."""
    s = settings()
    csv = dataset.Csv(data, text_column, label_column) if data is not None else None
    if not tickets and csv is None:
        raise fail("--no-tickets needs --data FILE: there would be nothing to train on")
    if snapshot is not None and (csv is not None or bootstrap):
        raise fail("--snapshot DIGEST is the whole data set: leave out --data and --bootstrap")
    try:
        if bootstrap:
            _bootstrap(s, csv, tickets=tickets, force=force)
            return
        summary = _retrain(s, csv, tickets=tickets, snapshot=snapshot)
    except (ValueError, FileNotFoundError, LookupError, ModelError) as exc:
        raise fail(str(exc)) from None
    if summary["decision"] == "skipped":
        console.print(f"training skipped: {summary['reason']}")
    else:
        render.decision(summary)
    if as_json:
        print(json.dumps(summary))


def _retrain(
    s: Settings, csv: dataset.Csv | None, *, tickets: bool, snapshot: str | None
) -> dict[str, Any]:
    """The retrain flow with this command's runtime; from a CSV alone on a machine without the
    database or the broker, the offline training."""
    # lazy: the model libraries cost seconds of start-up that the commands which never
    # train or score (`causa health`, `status`) should not pay
    from flows import training

    offline = s.redis_url is None or (s.database_url is None and not s.supabase_url)
    if offline and (snapshot is not None or (not tickets and csv is not None)):
        return training.retrain_offline(s, csv, "cli", snapshot)
    rt = runtime(s)
    try:
        return training.retrain(rt, "cli", csv, tickets=tickets, snapshot=snapshot)
    finally:
        rt.close()


def _bootstrap(s: Settings, csv: dataset.Csv | None, *, tickets: bool, force: bool) -> None:
    from training import bootstrap as first_model  # lazy: see _retrain

    models = ModelRegistry.from_settings(s)
    if models.current() is not None and not force:
        console.print(f"a model exists in {models.home}: nothing to do (--force replaces it)")
        return
    store = make_store(s) if tickets else None
    try:
        examples = dataset.assemble(store.labelled() if store else None, csv)
    finally:
        if store:
            store.close()
    info, rare = first_model.train(examples, models, seed=s.seed)
    console.print(
        f"model {info.version} in service: trained on {info.n_train}"
        f" tickets, holdout {info.metrics}; left out: {rare or 'none'}"
    )


def models() -> None:
    """The model in service and the backups."""
    registry = ModelRegistry.from_settings(settings())
    try:
        listed = registry.models()
    except ModelError as exc:
        raise fail(str(exc)) from None
    render.table(
        f"models in {registry.home}",
        ("", "version", "created", "trained on", "macro-F1", "decision"),
        (
            (kind, info.label, info.created_at, str(info.n_train), _f1(info), info.decision)
            for kind, info in listed
        ),
    )


def _f1(info: ModelInfo) -> str:
    f1 = info.metrics.get("macro_f1")
    return f"{f1:.4f}" if isinstance(f1, float) else "—"


def rollback(
    version: Annotated[str | None, typer.Argument(help="Default: the newest backup.")] = None,
) -> None:
    """Put a backup model back in service; workers pick it up before their next batch."""
    try:
        info = ModelRegistry.from_settings(settings()).rollback(version)
    except ModelError as exc:
        raise fail(str(exc)) from None
    console.print(f"model {info.label} is in service again")


def sign_models() -> None:
    """Sign the manifests of the models in the registry that carry no signature, each after
    its file passed every check of a load: once, after upgrading from a causa that did not
    sign (its models are refused until then). Run it where CAUSA_MODEL_SIGNING_KEY is set as
    on the workers."""
    registry = ModelRegistry.from_settings(settings())
    try:
        versions = registry.sign_unsigned()
    except ModelError as exc:
        raise fail(f"{exc}: nothing after it was signed") from None
    console.print(
        f"signed {len(versions)} model(s) in {registry.home}: {', '.join(versions) or 'none'}"
    )


def evaluate(
    data: Annotated[Path, typer.Option(help="A labelled CSV (may be .gz).")],
    text_column: Annotated[str, typer.Option()] = "text",
    label_column: Annotated[str, typer.Option()] = "label",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Score the model in service on a labelled CSV."""
    from training.evaluate import predict as predict_all  # lazy: see _retrain
    from training.evaluate import score

    try:
        model = ModelRegistry.from_settings(settings()).load_current()
        examples = dataset.from_csv(data, text_column, label_column)
    except (ModelError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    truth = [e.label for e in examples]
    result = score(truth, *predict_all(model.pipeline, [e.text for e in examples]))
    render.scores(
        f"model {model.version} on {len(truth)} tickets of {data.name}:"
        f" accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}",
        result,
    )
    if as_json:
        keys = ("accuracy", "macro_f1", "per_class")
        print(json.dumps({k: result[k] for k in keys}))


def predict(
    text: Annotated[str, typer.Argument(help="A ticket's text.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The cause the model in service gives one text, its confidence, the top 3 and why."""
    from flows import predict as flow  # lazy: start-up time of the other commands

    s = settings()
    try:
        model = ModelRegistry.from_settings(s).load_current()
    except ModelError as exc:
        raise fail(str(exc)) from None
    p = flow.predict(model, [text], s.confidence_threshold, True, s.never_auto_causes)[0]
    top = list(p["probabilities"].items())[:3]
    if as_json:
        keys = ("cause", "confidence", "verdict", "explanation")
        shown = {k: p[k] for k in keys} | {"model_version": model.version}
        print(json.dumps(shown | {"alternatives": [{"cause": c, "p": q} for c, q in top]}))
        return
    print(f"{p['cause']}\t{p['confidence']:.3f}\t{p['verdict']} (model {model.version})")
    for c, q in top:
        print(f"  {c}: {q:.3f}")
    if p["explanation"]:
        print(
            "  because of: "
            + ", ".join(f"{t['term']} ({t['weight']:+.2f})" for t in p["explanation"])
        )


def backtest(
    data: Annotated[
        Path | None, typer.Option(help="A labelled CSV instead of the labelled tickets.")
    ] = None,
    text_column: Annotated[str, typer.Option()] = "text",
    label_column: Annotated[str, typer.Option()] = "label",
    every_row: Annotated[
        bool, typer.Option(help="Every row of --data is new to the model (else its holdout).")
    ] = False,
    models_dir: Annotated[
        Path | None, typer.Option("--models", help="A candidate's models directory.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    html: Annotated[Path | None, typer.Option(help="Also write a page with plots here.")] = None,
) -> None:
    """What the model in service (or a candidate) would do with labelled tickets it never
    trained on: per cause, for a sweep of thresholds and for the settings in force, how many
    would be applied automatically, how many wrongly, how many would wait for review."""
    from flows import backtest as flow  # lazy: start-up time of the other commands
    from worker.cli import report

    s = settings()
    where = s if models_dir is None else s.model_copy(update={"models_dir": models_dir})
    try:
        models = ModelRegistry.from_settings(where)
        model = models.load_current()
        if not every_row:  # the holdout: scored by the twin, which never learned from it
            model = models.load_twin(model.info)
        if data is not None:
            examples = dataset.from_csv(data, text_column, label_column)
        else:
            store = make_store(s)
            try:
                examples = dataset.from_store(store.labelled())
            finally:
                store.close()
    except (ModelError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    result = flow.replay(model, examples, s.confidence_threshold, s.never_auto_causes, every_row)
    if html is not None:
        html.write_text(report.page(result), encoding="utf-8")
    if as_json:
        print(json.dumps(result))
        return
    blocks = [("all causes", result["overall"]), *result["causes"].items()]
    render.table(
        f"model {model.version}: {result['tickets']} labelled tickets it never trained on,"
        f" with the settings in force",
        ("cause", "threshold", "tickets", "applied", "wrong", "precision", "review"),
        (
            (
                name,
                "never" if name in result["never_auto"] else str(b.get("threshold_in_force", "")),
                str(b["tickets"]),
                *(str(b["in_force"][k]) for k in ("applied", "wrong", "precision", "review")),
            )
            for name, b in blocks
        ),
    )
    marked = result["threshold"]
    render.table(
        "all causes, one threshold for every cause",
        ("threshold", "applied", "wrong", "precision", "review"),
        (
            (
                f"{p['threshold']:.2f}"
                + (" (CAUSA_CONFIDENCE_THRESHOLD)" if p["threshold"] == marked else ""),
                *(str(p[k]) for k in ("applied", "wrong", "precision", "review")),
            )
            for p in result["overall"]["sweep"]
        ),
    )
    if html is not None:
        console.print(f"plots written to {html}")


def thresholds(
    suggest: Annotated[
        bool, typer.Option("--suggest", help="Show the suggestion (the default).")
    ] = False,
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Publish the suggestion as a new signed revision of the model's manifest"
            " (an admin action: workers use it from their next batch; `causa rollback`"
            " undoes it).",
        ),
    ] = False,
    days: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=3650,
            help="Reviewed decisions of the last DAYS (default: CAUSA_ACCURACY_WINDOW_DAYS).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Per-class thresholds from live corrections: for each cause, the lowest confidence at
    which the model's decisions that people reviewed meet the cause's precision target (with
    CAUSA_ACCURACY_MIN_REVIEWED of them at least); else the manifest's threshold stays."""
    from flows import thresholds as flow  # lazy: start-up time of the other commands

    del suggest  # the default: --apply is the only other thing this command does
    rt = runtime(ready_to_run())
    try:
        if apply:
            result = flow.apply(
                rt, days, f"causa thresholds, {getpass.getuser()}@{socket.gethostname()}"
            )
        else:
            result = flow.suggestion(rt, days)
    except (ValueError, ModelError) as exc:
        raise fail(str(exc)) from None
    finally:
        rt.close()
    if as_json:
        print(json.dumps(result))
        return
    render.table(
        f"model {result['model_version']} (revision {result['revision']}): thresholds from"
        f" {result['reviewed']} reviewed decisions of the last {result['window_days']} days",
        ("cause", "reviewed", "correct", "target", "in force", "suggested", "precision", "why"),
        (
            (
                cause,
                str(v["reviewed"]),
                str(v["correct"]),
                f"{v['target']:.2f}",
                "never" if v["in_force"] is None else f"{v['in_force']:.4f}",
                ("→ " if v["changed"] else "")
                + ("global" if v["suggested"] is None else f"{v['suggested']:.4f}"),
                "—"
                if v["precision_at_suggested"] is None
                else f"{v['precision_at_suggested']:.3f}",
                v["reason"],
            )
            for cause, v in result["causes"].items()
        ),
    )
    if apply and result["applied"]:
        console.print(
            f"applied: revision {result['new_revision']} of model {result['model_version']}"
            f" in service (changed: {', '.join(result['changed'])}); `causa rollback` restores"
            f" revision {result['revision']}"
        )
    elif apply:
        console.print("nothing to apply: no threshold changes")
    elif result["changed"]:
        console.print(f"would change: {', '.join(result['changed'])}; publish with --apply")
    else:
        console.print("no threshold would change")


COMMANDS: list[Callable[..., object]] = [
    train,
    models,
    rollback,
    sign_models,
    evaluate,
    predict,
    backtest,
    thresholds,
]
