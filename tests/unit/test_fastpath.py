"""training.fastpath: the same probabilities as predict_proba, for every pipeline it accepts,
on any text; None for the pipelines it does not know."""

from __future__ import annotations

import itertools
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from training import bootstrap, candidates, fastpath
from worker import demodata

TICKETS = list(demodata.generate(400, seed=5))
TEXTS = [f"{t.short_description} {t.description}" for t in TICKETS]
CAUSES = [t.cause for t in TICKETS]
WORDS_AND_CHARS = {"ngram_max": 2, "min_df": 1, "chars": True}


def fitted(kind: str) -> Any:
    if kind == "bootstrap":
        pipeline = bootstrap.pipeline()
    elif kind == "vote":
        pipeline = candidates.vote({"ngram_max": 2, "min_df": 1}, {"C": 0.5}, 42)
    elif kind == "biased vote":  # the default model's kind
        vote = candidates.vote({"ngram_max": 2, "min_df": 1}, {"C": 0.5}, 42)
        pipeline = candidates.Biased(vote, 42)
    elif kind == "stack":
        families = {"svc": {"C": 1.0}, "cnb": {"alpha": 0.5}}
        pipeline = candidates.stack(WORDS_AND_CHARS, families, 42)
    else:
        family, params = kind.split(":")
        p = {"alpha": 1e-4} if family in ("sgd", "cnb") else {"C": float(params)}
        pipeline = candidates.single(WORDS_AND_CHARS, family, p, 42)
    return pipeline.fit(TEXTS, CAUSES)


ACCEPTED = {
    k: fitted(k) for k in ("bootstrap", "svc:0.5", "logreg:4", "sgd:_", "vote", "biased vote")
}
# Words of the tickets, unknown words, accents, digits, odd spacing, emoji, other scripts.
TEXT = st.lists(
    st.sampled_from(" ".join(TEXTS[:50]).split()) | st.text(max_size=12), max_size=30
).map(" ".join) | st.text(max_size=300)


@pytest.mark.parametrize("kind", ACCEPTED)
def test_a_compiled_pipeline_gives_its_own_probabilities(kind: str) -> None:
    pipeline = ACCEPTED[kind]
    proba = fastpath.compile(pipeline)
    assert proba is not None, f"{kind} is one of the pipelines the fast path knows"
    texts = [*TEXTS[:200], "", "   ", "vpn", "ñandú ÑANDÚ", "a b c", "x" * 5000]
    got, expected = proba(texts), pipeline.predict_proba(texts)
    np.testing.assert_allclose(got, expected, rtol=0, atol=fastpath.TOLERANCE)
    assert proba(texts[:1]).shape == (1, len(pipeline.classes_))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(TEXT, min_size=1, max_size=8))
def test_any_text_gets_the_probabilities_of_the_pipeline(texts: list[str]) -> None:
    for pipeline in ACCEPTED.values():
        proba = fastpath.compile(pipeline)
        assert proba is not None
        got, expected = proba(texts), pipeline.predict_proba(texts)
        np.testing.assert_allclose(got, expected, rtol=0, atol=fastpath.TOLERANCE)


def test_pipelines_it_does_not_know_keep_predict_proba() -> None:
    assert fastpath.compile(fitted("stack")) is None
    assert fastpath.compile(fitted("cnb:_")) is None  # ComplementNB inside the calibration
    assert fastpath.compile(object()) is None


def test_a_function_that_disagrees_on_the_probes_is_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline = ACCEPTED["bootstrap"]
    real = fastpath._build

    def off_by_a_little(p: Any) -> Any:
        proba = real(p)
        assert proba is not None
        return lambda texts: proba(texts) + 1e-3

    monkeypatch.setattr(fastpath, "_build", off_by_a_little)
    assert fastpath.compile(pipeline) is None


@pytest.mark.parametrize("kind", ACCEPTED)
def test_explanations_name_terms_of_the_text_that_favour_the_predicted_cause(kind: str) -> None:
    from shared.text import normalize

    compiled = fastpath.compile(ACCEPTED[kind])
    assert compiled is not None
    texts = TEXTS[:40]
    proba, explained = compiled.explain(texts)
    np.testing.assert_allclose(proba, compiled(texts))  # the same probabilities
    lowered = 0
    for text, p, terms in zip(texts, proba, explained, strict=True):
        assert 1 <= len(terms) <= fastpath.EXPLAINED, text
        weights = [w for _, w in terms]
        assert all(w > 0 for w in weights) and weights == sorted(weights, reverse=True)
        plain = normalize(text)
        tokens = re.findall(r"(?u)\b\w\w+\b", plain)  # the word features' tokens
        pairs = {" ".join(pair) for pair in itertools.pairwise(tokens)}
        for term, _ in terms:  # a token or two side by side, or a word (character n-grams)
            assert term in tokens or term in pairs or term in plain.split(), (term, plain)
        # without its strongest term, the text is mostly less of the cause predicted (not
        # always: the other terms' weights grow as the text's features are normalised again)
        top, cause = terms[0][0], int(np.argmax(p))
        less = plain
        for part in top.split():
            less = re.sub(rf"(?<!\S){re.escape(part)}(?!\S)|\b{re.escape(part)}\b", " ", less)
        lowered += compiled([less])[0][cause] < p[cause]
    assert lowered >= 0.8 * len(texts)


def same_explanation(compiled: fastpath.Compiled, text: str, batched: list[Any]) -> None:
    proba, (alone,) = compiled.explain([text])
    np.testing.assert_allclose(proba, compiled([text]))
    assert [t for t, _ in alone] == [t for t, _ in batched], text
    np.testing.assert_allclose([w for _, w in alone], [w for _, w in batched], atol=2e-4)


@pytest.mark.parametrize("kind", ACCEPTED)
def test_a_text_is_explained_alike_alone_and_in_a_batch(kind: str) -> None:
    """A single text is explained by its own path (dicts), a batch by numpy, and terms are
    numbered per batch: a text's explanation must not depend on either."""
    compiled = fastpath.compile(ACCEPTED[kind])
    assert compiled is not None
    texts = TEXTS[:100]
    _, together = compiled.explain(texts)
    for text, batched in zip(texts, together, strict=True):
        same_explanation(compiled, text, batched)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT, kind=st.sampled_from(sorted(ACCEPTED)))
def test_any_text_is_explained_alike_alone_and_in_a_batch(text: str, kind: str) -> None:
    compiled = fastpath.compile(ACCEPTED[kind])
    assert compiled is not None
    _, (batched, *_) = compiled.explain([text, *TEXTS[: fastpath.BLOCK_FROM]])
    same_explanation(compiled, text, batched)
