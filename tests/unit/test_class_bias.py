"""training.candidates.Biased: class factors learned for macro-F1 on out-of-fold predictions."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from training import candidates, train
from worker import demodata


def macro_f1(truth: np.ndarray, proba: np.ndarray, bias: np.ndarray) -> float:
    predicted = (np.log(proba) + bias).argmax(axis=1)
    return float(f1_score(truth, predicted, average="macro"))


def test_a_cause_the_model_under_predicts_gets_the_factor_that_recovers_it() -> None:
    # given tickets of cause 1 that the model always gives to cause 0, by a small margin
    rows = {0: [0.6, 0.3, 0.1], 1: [0.5, 0.4, 0.1], 2: [0.1, 0.1, 0.8]}
    truth = np.repeat([0, 1, 2], 100)
    proba = np.asarray([rows[t] for t in truth])
    assert macro_f1(truth, proba, np.zeros(3)) < 0.6
    # when factors are learned on them
    bias = candidates.class_bias(proba, truth)
    # then cause 1 is raised past cause 0 there (log 0.5/0.4) but not where 0 is right (log 2)
    assert np.log(0.5 / 0.4) < bias[1] - bias[0] < np.log(0.6 / 0.3)
    assert macro_f1(truth, proba, bias) == 1.0


def test_a_model_that_is_right_everywhere_keeps_every_factor_at_one() -> None:
    truth = np.repeat([0, 1, 2], 50)
    proba = np.full((150, 3), 0.1)
    proba[np.arange(150), truth] = 0.8
    assert np.array_equal(candidates.class_bias(proba, truth), np.zeros(3))


def test_probabilities_are_the_classifiers_times_the_factors_summed_to_one() -> None:
    tickets = list(demodata.generate(400, seed=5))
    texts = [f"{t.short_description} {t.description}" for t in tickets]
    causes = [t.cause for t in tickets]
    words = {"ngram_max": 1, "min_df": 1}
    biased = candidates.Biased(candidates.single(words, "logreg", {"C": 4.0}, 42), 42)
    candidates.fit(biased, texts, causes)
    assert np.any(biased.bias_ != 0), "demo tickets leave something to shift"
    inner = biased.estimator_.predict_proba(texts)
    expected = inner * np.exp(biased.bias_)
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(biased.predict_proba(texts), expected)
    assert list(biased.predict(texts)) == list(biased.classes_[expected.argmax(axis=1)])
    # and too few labels of a cause to learn from out of fold: no factor but 1
    few = candidates.Biased(candidates.single(words, "logreg", {"C": 4.0}, 42), 42)
    kept = [i for i, c in enumerate(causes) if c != causes[0] or i < 5]  # at most 5 of it
    candidates.fit(few, [texts[i] for i in kept], [causes[i] for i in kept])
    assert np.array_equal(few.bias_, np.zeros(len(few.classes_)))


def test_a_fit_in_two_processes_is_the_fit_in_one() -> None:
    # the default model's kind (a vote with class factors), fitted one fit at a time and
    # two side by side (CAUSA_TRAINING_JOBS): the same factors and the same probabilities
    tickets = list(demodata.generate(600, seed=7))
    texts = [f"{t.short_description} {t.description}" for t in tickets]
    causes = [t.cause for t in tickets]
    recipe = train.vote_recipe(42)
    alone, side_by_side = train.build(recipe)[0], train.build(recipe)[0]
    candidates.fit(alone, texts, causes, jobs=1)
    candidates.fit(side_by_side, texts, causes, jobs=2)
    assert np.any(alone.bias_ != 0)
    np.testing.assert_array_equal(alone.bias_, side_by_side.bias_)
    np.testing.assert_array_equal(alone.predict_proba(texts), side_by_side.predict_proba(texts))
