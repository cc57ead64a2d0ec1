"""The same probabilities as a fitted pipeline's predict_proba, without scikit-learn's checks
on every call.

scikit-learn validates its input in every step it calls, and a calibrated linear model calls
many: the bootstrap model's predict_proba of one text costs some 12 ms, nearly all of it
checks (3 folds x 7 calibrators, each one validating its column), against some 0.4 ms for the
arithmetic. For single texts at the HTTP API that fixed cost is the latency.

`compile` reads the fitted arrays of the pipelines causa makes out of the linear family
(TF-IDF vectorisers, alone or in a FeatureUnion, then a multinomial LogisticRegression or
CalibratedClassifierCV with sigmoid calibration over a linear model: LinearSVC,
LogisticRegression, SGDClassifier) and returns a function that does the arithmetic: counts,
TF-IDF weights, one sparse product with every fold's coefficients, the sigmoids, each fold's
normalisation, their mean (or the softmax). For any other
pipeline it returns None (the caller keeps predict_proba). A compiled function is only used
once it has given the pipeline's own probabilities, to 1e-6, on probe texts.

Character n-grams inside word boundaries (`char_wb`) never reach across words, so a text's
are the sum of its words'; each word's columns are remembered (WORDS of them), and a ticket's
words are mostly known ones. With both, the bootstrap model predicts 100 texts in some 16 ms
instead of 32, and one in 0.5 ms instead of 12.
"""

from __future__ import annotations

import copy
import functools
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, softmax
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.ensemble import VotingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

Proba = Callable[[sp.csr_matrix], np.ndarray]
# Texts a compiled function must answer as the pipeline does before it is used: empty, one
# word, unknown words, accents and digits, and a long one.
PROBES = (
    "",
    "vpn",
    "zzqx wqk",
    "a  y\tb\u3000o\n\nsí",
    "No puedo iniciar sesión en el portal; error 403 al entrar desde casa.",
    "impresora " * 300,
)
LINEAR = (LinearSVC, LogisticRegression, SGDClassifier)
# How far a compiled function's probabilities may be from the pipeline's: features kept in
# float32 (causa's character n-grams) round differently from this module's float64.
TOLERANCE = 1e-6
EXPLAINED = 5  # terms an explanation names
WIDE = 1 << 40  # (text, term) pairs as one number: text * WIDE + term
# From this many texts on, character n-grams are counted for the batch at once (numpy's
# fixed costs pay off); fewer are counted text by text.
BLOCK_FROM = 16
WORDS = 20_000  # words whose character n-grams a process remembers (some 15 MB)
TEXTS_REMEMBERED = 1_024  # normalised texts remembered: a worker's batch


@dataclass(frozen=True)
class Compiled:
    """A pipeline's probabilities (call it with texts), and what pushed each text's cause up.

    `push[j, c]` is how much one unit of feature j raises class c's score: for a calibrated
    model, the mean over its folds of the coefficient times the calibration's slope (the
    score is then in units of the calibrated log-odds); for a multinomial logistic
    regression, the coefficient less the mean over classes (softmax ignores what all classes
    share). A term's weight in a text is its feature value times that push; character
    n-grams are credited to the words they come from."""

    terms: list[_Terms]
    scores: Proba
    push: np.ndarray  # features x classes
    names: np.ndarray = field(init=False)  # a term's text, by column ("" for n-grams)
    unigrams: dict[str, int] = field(init=False)  # single-word terms: their columns

    def __post_init__(self) -> None:
        names = np.full(self.terms[-1].end, "", dtype=object)
        unigrams: dict[str, int] = {}
        for part in self.terms:
            if part.words is None:
                names[part.start : part.end] = part.names
                unigrams |= {t: part.start + i for t, i in part.vocabulary.items() if " " not in t}
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "unigrams", unigrams)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.scores(_features(self.terms, texts))

    def explain(
        self, texts: Sequence[str], top: int = EXPLAINED
    ) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
        """The probabilities, and per text the `top` terms that raised its most likely cause
        most, with their weights (only terms that raised it)."""
        x, found = _batch(self.terms, texts)
        proba = self.scores(x)
        return proba, self.why(texts, x, found, proba.argmax(axis=1), top)

    def why(
        self,
        texts: Sequence[str],
        x: sp.csr_matrix,
        found: dict[int, _Occurrences],
        cause: np.ndarray,
        top: int,
    ) -> list[list[tuple[str, float]]]:
        """Per text (features `x`, n-grams `found`), the `top` terms that raised `cause`
        most. Done for the whole batch at once: a term is a number (a feature's column, or a
        word numbered in this call), and (text, term) pairs are summed and ranked by numpy,
        not one by one."""
        rows = np.repeat(np.arange(len(texts)), np.diff(x.indptr))
        contribution = x.data * self.push[x.indices, cause[rows]]
        words: dict[str, int] = {}  # words that are not a feature's term: numbered past them
        keys, weights = [], []
        for i, part in enumerate(self.terms):
            if part.words is None:  # its features are terms (words, word pairs)
                mine = (x.indices >= part.start) & (x.indices < part.end)
                keys.append(rows[mine] * WIDE + x.indices[mine])
                weights.append(contribution[mine])
            else:  # its n-grams, credited to the words they came from
                k, w = found[i].credit(self.push, cause, self, words)
                keys.append(k)
                weights.append(w)
        pairs, at = np.unique(np.concatenate(keys), return_inverse=True)
        total = np.bincount(at, weights=np.concatenate(weights), minlength=len(pairs))
        raised = total > 0
        pairs, total = pairs[raised], total[raised]
        order = np.lexsort((-total, pairs // WIDE))  # by text, the largest first
        pairs, total = pairs[order], total[order]
        row = pairs // WIDE
        rank = np.arange(len(row)) - np.searchsorted(row, row)
        kept = rank < top
        extra, columns = list(words), len(self.names)
        explained: list[list[tuple[str, float]]] = [[] for _ in texts]
        for r, term, w in zip(
            row[kept].tolist(), (pairs[kept] % WIDE).tolist(), total[kept].tolist(), strict=True
        ):
            name = self.names[term] if term < columns else extra[term - columns]
            explained[r].append((str(name), round(w, 4)))
        return explained

    def term(self, word: str, words: dict[str, int]) -> int:
        """A word's term number: the word feature's column when it is one, else its number
        among `words` (after every column)."""
        found = self.unigrams.get(word)
        if found is None:
            found = words.setdefault(word, len(self.names) + len(words))
        return found


@dataclass(frozen=True)
class Vote:
    """A soft vote of compiled members: the weighted mean of their probabilities. A term's
    weight in an explanation is the weighted sum of its weights in the members (each in its
    member's units: calibrated log-odds, or logistic regression's), from each member's
    `top` x 2 best terms for the vote's cause."""

    members: list[Compiled]
    weights: np.ndarray  # summing to one

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self._mean([m(texts) for m in self.members])

    def _mean(self, probas: list[np.ndarray]) -> np.ndarray:
        mean: np.ndarray = np.tensordot(self.weights, np.stack(probas), axes=1)
        return mean

    def explain(
        self, texts: Sequence[str], top: int = EXPLAINED
    ) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
        batches = [_batch(m.terms, texts) for m in self.members]
        proba = self._mean([m.scores(x) for m, (x, _) in zip(self.members, batches, strict=True)])
        cause = proba.argmax(axis=1)
        summed: list[Counter[str]] = [Counter() for _ in texts]
        for w, m, (x, found) in zip(self.weights, self.members, batches, strict=True):
            for total, terms in zip(summed, m.why(texts, x, found, cause, 2 * top), strict=True):
                for term, weight in terms:
                    total[term] += w * weight
        return proba, [
            [(t, round(float(v), 4)) for t, v in total.most_common(top) if v > 0]
            for total in summed
        ]


def compile(pipeline: Any) -> Compiled | Vote | None:
    """The pipeline compiled, or None when it is not one this module knows or its
    probabilities do not match the pipeline's own on PROBES."""
    try:
        compiled = _build(pipeline)
        if compiled is None:
            return None
        probes = list(PROBES) * (BLOCK_FROM // len(PROBES) + 1)  # both ways of counting
        expected = pipeline.predict_proba(probes)
        for texts in (probes[: len(PROBES)], probes):
            got = compiled(texts)
            if not np.allclose(got, expected[: len(texts)], rtol=0, atol=TOLERANCE):
                return None
    except Exception:  # an unexpected shape of a known type: predict_proba stays correct
        return None
    return compiled


def _build(pipeline: Any) -> Compiled | Vote | None:
    if isinstance(pipeline, VotingClassifier) and pipeline.voting == "soft":
        members = [_build(m) for m in pipeline.estimators_]
        if not all(isinstance(m, Compiled) for m in members):
            return None
        weights = np.asarray(pipeline.weights or [1] * len(members), dtype=np.float64)
        return Vote(members, weights / weights.sum())  # type: ignore[arg-type]
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    features, model = pipeline.steps[0][1], pipeline.steps[1][1]
    vectorizers = _vectorizers(features)
    if vectorizers is None or len(getattr(model, "classes_", ())) < 3:
        return None
    terms = _terms(vectorizers)
    if isinstance(model, CalibratedClassifierCV):
        built = _calibrated(model)
        return None if built is None else Compiled(terms, *built)
    if isinstance(model, LogisticRegression) and model.coef_.shape[0] == len(model.classes_):
        coef, intercept = model.coef_, model.intercept_
        push = (coef - coef.mean(axis=0)).T
        return Compiled(terms, lambda x: softmax(x @ coef.T + intercept, axis=1), push)
    return None


def _calibrated(model: CalibratedClassifierCV) -> tuple[Proba, np.ndarray] | None:
    """CalibratedClassifierCV(method="sigmoid") over linear models: the mean, over its folds,
    of each fold's calibrated scores normalised to sum to one. The folds' own arrays are
    used, not stacked into a copy (a model of the reference data holds some 130 MB of
    them); the push is one features x classes matrix."""
    classes = model.classes_
    n_classes = len(classes)
    folds = []  # per fold: coefficients, intercepts, slopes, offsets, its classes' places
    for fold in model.calibrated_classifiers_:
        est = fold.estimator
        if fold.method != "sigmoid" or not isinstance(est, LINEAR):
            return None
        if not all(isinstance(c, _SigmoidCalibration) for c in fold.calibrators):
            return None
        a = np.asarray([c.a_ for c in fold.calibrators], dtype=np.float64)
        b = np.asarray([c.b_ for c in fold.calibrators], dtype=np.float64)
        row_of = np.full(n_classes, -1)
        row_of[np.searchsorted(classes, est.classes_)] = np.arange(len(est.classes_))
        folds.append((est.coef_, est.intercept_, a, b, row_of))

    def proba(x: sp.csr_matrix) -> np.ndarray:
        mean = np.zeros((x.shape[0], n_classes))
        for coef, intercept, a, b, row_of in folds:
            calibrated = expit(-(a * (x @ coef.T + intercept) + b))
            p = np.zeros((x.shape[0], n_classes))
            present = row_of >= 0
            p[:, present] = calibrated[:, row_of[present]]
            total = p.sum(axis=1, keepdims=True)
            p = np.divide(p, total, out=np.full_like(p, 1 / n_classes), where=total != 0)
            p[(p > 1.0) & (p <= 1.0 + 1e-5)] = 1.0
            mean += p
        result: np.ndarray = mean / len(folds)
        return result

    push = np.zeros((model.calibrated_classifiers_[0].estimator.coef_.shape[1], n_classes))
    for coef, _, a, _, row_of in folds:  # one fold's temporary at a time
        present = row_of >= 0
        push[:, present] -= (a[row_of[present], None] * coef[row_of[present]]).T
    push /= len(folds)
    return proba, push


def _vectorizers(features: Any) -> list[TfidfVectorizer] | None:
    parts = (
        [t for _, t in features.transformer_list]
        if isinstance(features, FeatureUnion) and not features.transformer_weights
        else [features]
    )
    known = all(
        type(v) is TfidfVectorizer and v.norm in ("l2", None) and not v.binary for v in parts
    )
    return parts if known else None


class _Terms:
    """One vectoriser's part of the features: where its columns start, and what it needs."""

    def __init__(self, v: TfidfVectorizer, start: int, preprocess: Callable[[str], str]) -> None:
        self.vocabulary = vocabulary = v.vocabulary_
        if v.analyzer == "char_wb" and v.input == "content":
            # A word's n-grams never reach past its padding: a text's are the sum of its
            # words', and words repeat, so each word's columns are remembered.
            one_word = copy.copy(v)
            one_word.preprocessor = _same
            analyze_word = one_word.build_analyzer()

            @functools.lru_cache(maxsize=WORDS)
            def word(w: str) -> tuple[int, ...]:
                return tuple(i for i in map(vocabulary.get, analyze_word(w)) if i is not None)

            self.columns: Callable[[str], Iterable[int | None]] = lambda text: (
                itertools.chain.from_iterable(map(word, preprocess(text).split()))
            )
            self.words: Callable[[str], list[tuple[str, tuple[int, ...]]]] | None = lambda text: [
                (w, word(w)) for w in preprocess(text).split()
            ]
        else:
            whole = copy.copy(v)
            whole.preprocessor = preprocess
            analyze = whole.build_analyzer()
            self.columns = lambda text: map(vocabulary.get, analyze(text))
            self.words = None
            self.names = v.get_feature_names_out()
        self.start = start
        self.end = start + len(vocabulary)
        self.sublinear = v.sublinear_tf
        self.idf = v.idf_ if v.use_idf else None
        self.l2 = v.norm == "l2"

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """TfidfVectorizer.transform of one text: its columns and weights."""
        found = Counter(self.columns(text))
        found.pop(None, None)  # terms the model does not know
        cols = np.fromiter(found.keys(), dtype=np.int64, count=len(found))
        data = np.fromiter(found.values(), dtype=np.float64, count=len(found))
        if self.sublinear:
            data = np.log(data) + 1
        if self.idf is not None:
            data *= self.idf[cols]
        if self.l2 and len(data):
            data /= np.sqrt(data @ data)
        return cols + self.start, data

    def block(
        self, texts: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Occurrences]:
        """A character part's TF-IDF for the whole batch at once (rows, columns, values),
        from each word's remembered n-grams; and where each n-gram came from."""
        assert self.words is not None
        per_text = [self.words(text) for text in texts]
        flat = list(itertools.chain.from_iterable(per_text))
        slot_rows = np.repeat(np.arange(len(texts)), [len(p) for p in per_text])
        sizes = np.fromiter((len(c) for _, c in flat), dtype=np.int64, count=len(flat))
        slots = np.repeat(np.arange(len(flat)), sizes)
        grams = np.fromiter(itertools.chain.from_iterable(c for _, c in flat), dtype=np.int64)
        keys, at, counts = np.unique(
            slot_rows[slots] * WIDE + grams, return_inverse=True, return_counts=True
        )
        rows, cols = keys // WIDE, keys % WIDE
        data = counts.astype(np.float64)
        if self.sublinear:
            data = np.log(data) + 1
        if self.idf is not None:
            data *= self.idf[cols]
        if self.l2:
            data /= np.sqrt(np.bincount(rows, weights=data * data, minlength=len(texts)))[rows]
        cols += self.start
        return rows, cols, data, _Occurrences(flat, slot_rows, slots, at, counts, rows, cols, data)


@dataclass(frozen=True)
class _Occurrences:
    """Where a batch's character n-grams came from: its words in order (`flat`: the word
    and its n-grams' columns), each word's text, each n-gram occurrence's word, and its
    (text, n-gram) entry in the batch's features with that entry's count."""

    flat: list[tuple[str, tuple[int, ...]]]
    slot_rows: np.ndarray
    slots: np.ndarray
    at: np.ndarray
    counts: np.ndarray
    rows: np.ndarray  # the entries: text, column, value
    cols: np.ndarray
    data: np.ndarray

    def credit(
        self, push: np.ndarray, cause: np.ndarray, compiled: Compiled, words: dict[str, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each entry's contribution (value x push[column, its text's cause]) shared between
        the occurrences of its n-gram, summed by word: the (text, term) keys and weights of
        every word of every text."""
        contribution = self.data * push[self.cols, cause[self.rows]]
        share = contribution[self.at] / self.counts[self.at]
        per_word = np.bincount(self.slots, weights=share, minlength=len(self.flat))
        terms = np.fromiter(
            (compiled.term(w, words) for w, _ in self.flat), dtype=np.int64, count=len(self.flat)
        )
        return self.slot_rows * WIDE + terms, per_word


def _same(text: str) -> str:
    return text


def _terms(vectorizers: list[TfidfVectorizer]) -> list[_Terms]:
    starts = np.cumsum([0] + [len(v.vocabulary_) for v in vectorizers])
    shared = {id(v.build_preprocessor()) for v in vectorizers}
    # Vectorisers that share a preprocessor (causa's normaliser) share its answers: each text
    # of a batch (up to TEXTS_REMEMBERED) is normalised once, in either counting path.
    memo = (
        functools.lru_cache(maxsize=TEXTS_REMEMBERED)(vectorizers[0].build_preprocessor())
        if len(shared) == 1
        else None
    )
    return [
        _Terms(v, int(at), memo or v.build_preprocessor())
        for v, at in zip(vectorizers, starts, strict=False)
    ]


def _features(terms: list[_Terms], texts: Sequence[str]) -> sp.csr_matrix:
    return _batch(terms, texts, len(texts) >= BLOCK_FROM)[0]


def _batch(
    terms: list[_Terms], texts: Sequence[str], blocks: bool = True
) -> tuple[sp.csr_matrix, dict[int, _Occurrences]]:
    """The FeatureUnion's transform: every vectoriser's part side by side, one matrix; and,
    with `blocks`, each character part's n-grams counted for the whole batch at once, and
    where they came from (by the part's index)."""
    width = terms[-1].end
    if not blocks:  # text by text, each one's parts side by side
        indptr, cols, data = [0], [], []
        for text in texts:
            for part in terms:
                c, d = part.row(text)
                cols.append(c)
                data.append(d)
            indptr.append(indptr[-1] + sum(len(c) for c in cols[-len(terms) :]))
        shape = (len(texts), width)
        return sp.csr_matrix((np.concatenate(data), np.concatenate(cols), indptr), shape), {}
    rows, cols, data = [], [], []
    found: dict[int, _Occurrences] = {}
    for i, part in enumerate(terms):
        if part.words is None:
            per_text = [part.row(text) for text in texts]
            rows.append(np.repeat(np.arange(len(texts)), [len(c) for c, _ in per_text]))
            cols.append(np.concatenate([c for c, _ in per_text]))
            data.append(np.concatenate([d for _, d in per_text]))
        else:
            r, c, d, found[i] = part.block(texts)
            rows.append(r)
            cols.append(c)
            data.append(d)
    x = sp.csr_matrix(
        (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(texts), width),
    )
    return x, found
