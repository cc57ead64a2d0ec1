"""One training: search, fit the challenger, score it and the champion on the same holdout,
decide, promote or keep, and record everything (log, MLflow, the returned report)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from threadpoolctl import threadpool_limits

from shared.settings import Settings
from training import candidates, drift, fastpath, registry, search, tracking
from training.compare import Decision, decide
from training.dataset import (
    Example,
    NotEnoughData,
    Snapshot,
    drop_rare,
    from_snapshot,
    snapshot,
    split,
)
from training.evaluate import predict, score, thresholds_for_precision

log = structlog.get_logger("causa.training")
MIN_TRAIN = 50  # fewer training tickets than this cannot make a model worth serving


@dataclass
class TrainingReport:
    decision: Decision
    version: str | None  # the promoted version, None when the champion was kept
    left_out: dict[str, int]
    n_train: int
    n_holdout: int
    seconds: float
    model: str  # what the challenger is, in words
    tickets_per_s: float
    mlflow_run: str | None

    def summary(self) -> dict[str, Any]:
        return {
            **self.decision.summary(),
            "version": self.version,
            "left_out": self.left_out,
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
            "seconds": round(self.seconds, 1),
            "model": self.model,
            "tickets_per_s": round(self.tickets_per_s),
            "mlflow_run": self.mlflow_run,
        }


def vote_recipe(seed: int) -> dict[str, Any]:
    """The soft vote of three views (candidates.vote), with its measured word model and class
    factors learned for macro-F1 (candidates.Biased)."""
    return {
        "kind": "vote",
        "features": candidates.VOTE_WORDS,
        "members": {"svc": candidates.VOTE_SVC},
        "bias": True,
        "seed": seed,
    }


def recipe(result: search.SearchResult, seed: int, stack_members: int) -> dict[str, Any]:
    """What to fit, from the search: the best single model, or a stack of the best
    `stack_members` families on the best trial's features (XGBoost takes integer labels, so
    it always serves inside a stack). Recorded with the training (as the vote's is): a
    snapshot's retraining fits the same recipe again (a search bounded by time would not
    find the same)."""
    ranked = sorted(result.best_per_family.items(), key=lambda kv: kv[1]["f1"], reverse=True)
    members = {family: v["params"] for family, v in ranked[:stack_members]}
    if len(members) < 2:
        members = {result.best["family"]: result.best["params"]}
    kind = "stack" if len(members) >= 2 or "xgb" in members else "single"
    return {"kind": kind, "features": result.best["features"], "members": members, "seed": seed}


def build(recipe: dict[str, Any]) -> tuple[Any, str]:
    """The unfitted pipeline a recipe stands for, and what it is in words."""
    feats, members, seed = recipe["features"], recipe["members"], int(recipe["seed"])
    if recipe["kind"] == "vote":
        described = (
            f"soft vote of svc {members['svc']} on {feats}, character 2-5-grams svc, and"
            " logreg on the same words"
        )
        if recipe.get("bias"):  # a recipe recorded before class factors has none
            return (
                candidates.Biased(candidates.vote(feats, members["svc"], seed), seed),
                f"{described}, class factors for macro-F1",
            )
        return candidates.vote(feats, members["svc"], seed), described
    if recipe["kind"] == "stack":
        return candidates.stack(feats, members, seed), f"stack of {', '.join(members)} on {feats}"
    [(family, params)] = members.items()
    return candidates.single(feats, family, params, seed), f"{family} {params} on {feats}"


def tickets_per_s(model: Any, texts: list[str]) -> float:
    """Predictions per second on one core, the way a worker predicts (fastpath or not)."""
    proba = fastpath.compile(model) or model.predict_proba
    with threadpool_limits(1):
        started = time.perf_counter()
        proba(texts)
        return len(texts) / (time.perf_counter() - started)


def retrain(
    examples: list[Example],
    settings: Settings,
    models: registry.ModelRegistry,
    *,
    trigger: str,
    replay: dict[str, Any] | None = None,
) -> TrainingReport:
    """Train a challenger on `examples`, score it and the model in service on the same
    holdout, promote it into `models` if it wins. `replay`: fit this recipe (a snapshot's
    retraining) instead of searching for one."""
    started = time.monotonic()
    kept, left_out = drop_rare(examples, settings.min_class_count)
    # The training learns from its snapshot's examples (masked, in canonical order), so that
    # a retraining from the snapshot fits exactly the same model.
    data = snapshot(kept, mask_personal=settings.mask_pii)
    kept = from_snapshot(data.data, data.digest)
    if left_out:
        log.warning(
            "classes left out: too few labelled tickets",
            left_out=left_out,
            min_class_count=settings.min_class_count,
        )
    train, holdout = split(kept)
    if len(train) < MIN_TRAIN or len({e.label for e in train}) < 2 or not holdout:
        raise NotEnoughData(
            f"{len(train)} training and {len(holdout)} holdout tickets in"
            f" {len({e.label for e in train})} classes: a model needs at least {MIN_TRAIN}"
            " training tickets in 2 classes and a holdout. Label more tickets (set the cause"
            " column), or train from a CSV with --data"
        )
    texts, labels = [e.text for e in train], [e.label for e in train]
    result, chosen = None, replay
    if chosen is None and settings.vote:
        chosen = vote_recipe(settings.seed)
    if chosen is None:
        result = search.run(
            texts,
            labels,
            seed=settings.seed,
            n_trials=settings.n_trials,
            timeout_s=settings.search_timeout,
            min_tickets_per_s=settings.min_tickets_per_s,
            families=settings.search_families.split(","),
        )
        chosen = recipe(result, settings.seed, settings.stack_members)
    model, description = build(chosen)
    candidates.fit(model, texts, labels, settings.training_jobs)

    truth = [e.label for e in holdout]
    holdout_texts = [e.text for e in holdout]
    predicted, confidence = predict(model, holdout_texts)
    champion_scores, champion_version = None, None
    current = models.current()
    champion_predicted: tuple[list[str], np.ndarray] | None = None
    if current is not None:
        try:
            # Its twin: the champion itself may have learned from these tickets.
            champion = models.load_twin(current)
            champion_predicted = predict(champion.pipeline, holdout_texts)
            champion_version = champion.version
        except registry.ModelError as exc:
            log.warning("champion cannot be scored; judging the challenger alone", error=str(exc))
    labels_union = set(truth) | {str(c) for c in model.classes_}
    if current is not None and champion_predicted is not None:
        labels_union |= set(current.classes)
    challenger_scores = score(truth, predicted, confidence, sorted(labels_union))
    if champion_predicted is not None:
        champion_scores = score(truth, *champion_predicted, sorted(labels_union))
    decision = decide(
        challenger_scores,
        champion_scores,
        min_improvement=settings.min_improvement,
        min_f1=settings.min_f1,
    )
    thresholds = thresholds_for_precision(
        truth, predicted, confidence, settings.target_precision, settings.precision_targets
    )
    speed = tickets_per_s(model, holdout_texts[:5000])
    metrics = {
        "macro_f1": challenger_scores["macro_f1"],
        "accuracy": challenger_scores["accuracy"],
        "ece": challenger_scores["ece"],
        "n_holdout": len(holdout),
        "tickets_per_s": round(speed),
        "per_class_f1": {k: v["f1"] for k, v in challenger_scores["per_class"].items()},
    }
    promoted = None
    if decision.promote:
        serving, twin = model, None
        if settings.refit_all:
            # It won on the holdout; what serves learns from every label, the holdout too,
            # and `model` stays as its twin for the next comparison.
            serving, twin = build(chosen)[0], model
            candidates.fit(
                serving, [e.text for e in kept], [e.label for e in kept], settings.training_jobs
            )
        promoted = models.promote(
            serving,
            twin=twin,
            classes=[str(c) for c in serving.classes_],
            n_train=len(kept) if twin is not None else len(train),
            metrics=metrics,
            thresholds=thresholds,
            decision=f"{trigger}: {decision.reason}",
            reference=drift.reference(
                model,
                [str(c) for c in model.classes_],
                thresholds,
                holdout_texts,
                settings.confidence_threshold,
            ),
        )
    report = TrainingReport(
        decision,
        promoted.version if promoted else None,
        left_out,
        len(train),
        len(holdout),
        time.monotonic() - started,
        description,
        speed,
        None,
    )
    report.mlflow_run = _track(
        settings,
        report,
        result,
        chosen,
        data,
        challenger_scores,
        champion_version,
        trigger,
        models.file_of(promoted) if promoted else None,
    )
    log.info("training decided", **report.summary())
    return report


def _track(
    settings: Settings,
    report: TrainingReport,
    result: search.SearchResult | None,
    chosen: dict[str, Any],
    data: Snapshot,
    scores: dict[str, Any],
    champion_version: str | None,
    trigger: str,
    model_file: Path | None,
) -> str | None:
    s = report.decision.summary()
    metrics = {
        "challenger_macro_f1": scores["macro_f1"],
        "challenger_accuracy": scores["accuracy"],
        "challenger_ece": scores["ece"],
        "tickets_per_s": report.tickets_per_s,
        "seconds": report.seconds,
        **{f"f1_{k}": v["f1"] for k, v in scores["per_class"].items()},
    }
    if result is not None:
        metrics |= {
            "search_trials": result.trials,
            "search_pruned": result.pruned,
            "search_too_slow": result.too_slow,
        }
    if report.decision.champion is not None:
        metrics["champion_macro_f1"] = report.decision.champion["macro_f1"]
        metrics["difference"] = s["difference"]
    return tracking.log_training(
        tracking.tracking_uri(settings.home, settings.mlflow_tracking_uri),
        settings.home,
        params={
            "seed": settings.seed,
            "n_trials": settings.n_trials,
            "model": report.model,
            "recipe": chosen,
            "n_train": report.n_train,
            "n_holdout": report.n_holdout,
            "left_out": report.left_out,
            "min_improvement": settings.min_improvement,
            "dataset_digest": data.digest,
        },
        metrics={k: float(v) for k, v in metrics.items() if v is not None},
        report=report.summary(),
        confusion={"labels": scores["labels"], "matrix": scores["confusion"]},
        model_file=model_file,
        snapshot=data,
        recipe=chosen,
        tags={
            "decision": report.decision.verdict,
            "trigger": trigger,
            "version": report.version or "kept",
            "champion": champion_version or "none",
        },
    )
