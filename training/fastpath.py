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

from training import candidates

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
WIDE = 1 << 40  # (text, column) pairs as one number: text * WIDE + column
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
    n-grams are credited to the words they come from. A part counted as another alike (see
    _alike) is explained as that one: its push is added to that part's."""

    terms: list[_Terms]
    scores: Proba
    push: np.ndarray  # features x classes, float32
    names: np.ndarray = field(init=False)  # a term's text, by column ("" for n-grams)
    # A column's term: the first column with its text (a vote's members share words).
    ids: np.ndarray = field(init=False)
    unigrams: dict[str, int] = field(init=False)  # single-word terms: their term

    def __post_init__(self) -> None:
        names = np.full(self.terms[-1].end, "", dtype=object)
        ids = np.arange(self.terms[-1].end)
        first: dict[str, int] = {}
        for part in self.terms:
            if part.words is None:
                names[part.start : part.end] = part.names
                for term, i in part.vocabulary.items():
                    ids[part.start + i] = first.setdefault(term, part.start + i)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "unigrams", {t: c for t, c in first.items() if " " not in t})

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.scores(_features(self.terms, texts))

    def explain(
        self, texts: Sequence[str], top: int = EXPLAINED
    ) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
        """The probabilities, and per text the `top` terms that raised its most likely cause
        most, with their weights (only terms that raised it). Done for the whole batch at
        once: a term is a number (a feature's column, or a word numbered in this call), and
        (text, term) pairs are summed and ranked by numpy, not one by one; a single text by
        `_explain_one`."""
        if len(texts) == 1:
            return self._explain_one(texts[0], top)
        x, found = _batch(self.terms, texts)
        proba = self.scores(x)
        cause = proba.argmax(axis=1)
        of_text, terms, weights = [], [], []
        words: dict[str, int] = {}  # words that are not a feature's term: numbered past them
        for part in found.values():  # each term's weight in each text
            r, t, w = part.credit(self.push, cause, self, words)
            of_text.append(r)
            terms.append(t)
            weights.append(w)
        # (text, term) pairs summed, those that raised the cause ranked by text, largest first
        keys, at = np.unique(
            np.concatenate(of_text) * WIDE + np.concatenate(terms), return_inverse=True
        )
        total = np.bincount(at, weights=np.concatenate(weights), minlength=len(keys))
        raised = total > 0
        keys, total = keys[raised], total[raised]
        row = keys // WIDE
        order = np.lexsort((-total, row))
        row, term, total = row[order], keys[order] % WIDE, total[order]
        kept = np.arange(len(row)) - np.searchsorted(row, row) < top
        row, term, total = row[kept], term[kept], total[kept]
        named = len(self.names)
        spelled = self.names[np.minimum(term, named - 1)]
        spelled[term >= named] = np.asarray(list(words), dtype=object)[term[term >= named] - named]
        explained: list[list[tuple[str, float]]] = [[] for _ in texts]
        for r, name, w in zip(
            row.tolist(), spelled.tolist(), np.round(total, 4).tolist(), strict=True
        ):
            explained[r].append((name, w))
        return proba, explained

    def _explain_one(self, text: str, top: int) -> tuple[np.ndarray, list[list[tuple[str, float]]]]:
        """`explain` of one text: the same sums, by dicts, on the features counted as a single
        text is predicted (numpy's fixed costs, paid once for a batch, would be most of one
        text's explanation)."""
        cols, data, counted = _one(self.terms, text)
        shape = (1, self.terms[-1].end)
        x = sp.csr_matrix(
            (np.concatenate(data), np.concatenate(cols), [0, sum(map(len, cols))]), shape
        )
        proba = self.scores(x)
        cause = int(proba[0].argmax())
        total: dict[int, float] = {}  # each term's weight
        words: dict[str, int] = {}
        for i, (c, d, counts) in counted.items():
            part = self.terms[i]
            weights = d * self.push[c, cause]
            if part.words is None:  # a word part: a column is a term
                for term, w in zip(self.ids[c].tolist(), weights.tolist(), strict=True):
                    total[term] = total.get(term, 0.0) + w
                continue
            # a character part: each n-gram's weight shared by its occurrences, summed by word
            share = dict(zip((c - part.start).tolist(), (weights / counts).tolist(), strict=True))
            for word, times in Counter(part.words(text)).items():
                term = self.term(word, words)
                raised = times * sum(map(share.__getitem__, part.word(word)))
                total[term] = total.get(term, 0.0) + raised
        ranked = sorted((-w, term) for term, w in total.items() if w > 0)[:top]
        named, spelled = len(self.names), list(words)
        return proba, [
            [(self.names[t] if t < named else spelled[t - named], round(-w, 4)) for w, t in ranked]
        ]

    def term(self, word: str, words: dict[str, int]) -> int:
        """A word's term number: the word feature's column when it is one, else its number
        among `words` (after every column)."""
        found = self.unigrams.get(word)
        if found is None:
            found = words.setdefault(word, len(self.names) + len(words))
        return found


def compile(pipeline: Any) -> Compiled | None:
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


def _build(pipeline: Any) -> Compiled | None:
    """A pipeline, or a soft vote of pipelines, as one function over all their columns side
    by side: a vote's probabilities are the weighted mean of its members' on their columns,
    and its push is theirs, weighted (a term's weight in an explanation adds up what it
    pushed in each member; every member's texts are normalised once). A Biased classifier is
    its classifier's function with the class factors applied; its push is the classifier's
    (a factor raises a class by as much in every text: no term of a text did it)."""
    if isinstance(pipeline, candidates.Biased):
        inner = _build(pipeline.estimator_)
        if inner is None:
            return None
        unbiased, bias = inner.scores, pipeline.bias_
        return Compiled(inner.terms, lambda x: candidates.shifted(unbiased(x), bias), inner.push)
    voting = isinstance(pipeline, VotingClassifier) and pipeline.voting == "soft"
    members = [_member(p) for p in (pipeline.estimators_ if voting else [pipeline])]
    if not members or any(m is None for m in members):
        return None
    known = [m for m in members if m is not None]
    weights = np.asarray((pipeline.weights if voting else None) or [1] * len(known), float)
    weights /= weights.sum()
    vectorizers = [v for m in known for v in m[0]]
    bounds = np.cumsum([0] + [sum(len(v.vocabulary_) for v in m[0]) for m in known])
    parts = [
        (w, s, int(a), int(b))
        for w, (_, s, _), a, b in zip(weights, known, bounds[:-1], bounds[1:], strict=True)
    ]

    def scores(x: sp.csr_matrix) -> np.ndarray:
        if len(parts) == 1:
            return parts[0][1](x)
        total = np.zeros((x.shape[0], len(pipeline.classes_)))
        for w, proba, a, b in parts:
            total += w * proba(x[:, a:b])
        return total

    # float32: an explanation's weights are shown to 4 decimals; half the memory
    push = np.vstack([w * p for w, (_, _, p) in zip(weights, known, strict=True)], dtype=np.float32)
    terms = _terms(vectorizers)
    for part in terms:  # counted as the part it is alike, so explained as that part too
        if part.same is not None:
            first = terms[part.same]
            push[first.start : first.end] += push[part.start : part.end]
    return Compiled(terms, scores, push)


def _member(pipeline: Any) -> tuple[list[TfidfVectorizer], Proba, np.ndarray] | None:
    """A two-step pipeline's vectorisers, probabilities from their features, and push."""
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    features, model = pipeline.steps[0][1], pipeline.steps[1][1]
    vectorizers = _vectorizers(features)
    if vectorizers is None or len(getattr(model, "classes_", ())) < 3:
        return None
    if isinstance(model, CalibratedClassifierCV):
        built = _calibrated(model)
        return None if built is None else (vectorizers, *built)
    if isinstance(model, LogisticRegression) and model.coef_.shape[0] == len(model.classes_):
        coef, intercept = model.coef_, model.intercept_
        push = (coef - coef.mean(axis=0)).T

        def proba(x: sp.csr_matrix) -> np.ndarray:
            result: np.ndarray = softmax(x @ coef.T + intercept, axis=1)
            return result

        return vectorizers, proba, push
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

            def words(text: str) -> list[str]:
                return preprocess(text).split()

            self.columns: Callable[[str], Iterable[int | None]] = lambda text: (
                itertools.chain.from_iterable(map(word, words(text)))
            )
            self.words: Callable[[str], list[str]] | None = words
            self.word = word
        else:
            whole = copy.copy(v)
            whole.preprocessor = preprocess
            analyze = whole.build_analyzer()
            self.columns = lambda text: map(vocabulary.get, analyze(text))
            self.words = None
            self.names = v.get_feature_names_out()
        self.start = start
        self.end = start + len(vocabulary)
        self.same: int | None = None  # an earlier part alike (see _alike), counted once
        self.sublinear = v.sublinear_tf
        self.idf = v.idf_ if v.use_idf else None
        self.l2 = v.norm == "l2"

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """TfidfVectorizer.transform of one text: its columns and weights; and each column's
        count in the text."""
        found = Counter(self.columns(text))
        found.pop(None, None)  # terms the model does not know
        cols = np.fromiter(found.keys(), dtype=np.int64, count=len(found))
        counts = np.fromiter(found.values(), dtype=np.float64, count=len(found))
        data = np.log(counts) + 1 if self.sublinear else counts.copy()
        if self.idf is not None:
            data *= self.idf[cols]
        if self.l2 and len(data):
            data /= np.sqrt(data @ data)
        return cols + self.start, data, counts

    def block(
        self, texts: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Occurrences]:
        """A character part's TF-IDF for the whole batch at once (rows, columns, values),
        from each word's remembered n-grams; and where each n-gram came from."""
        assert self.words is not None
        per_text = [self.words(text) for text in texts]
        numbered: dict[str, int] = {}  # each word of the batch once, numbered in order
        occurrences = np.fromiter(  # the words in order, by number
            (
                numbered.setdefault(w, len(numbered))
                for w in itertools.chain.from_iterable(per_text)
            ),
            dtype=np.int64,
        )
        found = [self.word(w) for w in numbered]  # each one's n-grams' columns
        per_slot = list(map(found.__getitem__, occurrences.tolist()))
        sizes = np.fromiter(map(len, per_slot), dtype=np.int64, count=len(per_slot))
        slot_rows = np.repeat(np.arange(len(texts)), [len(p) for p in per_text])
        slots = np.repeat(np.arange(len(per_slot)), sizes)  # each n-gram occurrence's word
        grams = np.fromiter(itertools.chain.from_iterable(per_slot), dtype=np.int64)
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
        return (
            rows,
            cols,
            data,
            _Occurrences(
                list(numbered), occurrences, slot_rows, slots, at, counts, rows, cols, data
            ),
        )


@dataclass(frozen=True)
class _Entries:
    """A word part's features of a batch: text, column, value."""

    rows: np.ndarray
    cols: np.ndarray
    data: np.ndarray

    def credit(
        self, push: np.ndarray, cause: np.ndarray, compiled: Compiled, words: dict[str, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each entry's weight (value x push[column, its text's cause]): its text, term and
        weight."""
        return self.rows, compiled.ids[self.cols], self.data * push[self.cols, cause[self.rows]]


@dataclass(frozen=True)
class _Occurrences:
    """Where a batch's character n-grams came from: its words (each once), the batch's words
    in order (by number, and each one's text), each n-gram occurrence's word, and its
    (text, n-gram) entry in the batch's features with that entry's count."""

    words: list[str]
    occurrences: np.ndarray
    slot_rows: np.ndarray
    slots: np.ndarray
    at: np.ndarray
    counts: np.ndarray
    rows: np.ndarray  # the entries: text, column, value
    cols: np.ndarray
    data: np.ndarray

    def credit(
        self, push: np.ndarray, cause: np.ndarray, compiled: Compiled, words: dict[str, int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each entry's contribution (value x push[column, its text's cause]) shared between
        the occurrences of its n-gram, summed by word: the text, term and weight of every
        word of every text."""
        share = self.data / self.counts * push[self.cols, cause[self.rows]]
        per_word = np.bincount(self.slots, weights=share[self.at], minlength=len(self.slot_rows))
        term = np.fromiter(  # each word's term, looked up once
            (compiled.term(w, words) for w in self.words), dtype=np.int64, count=len(self.words)
        )
        return self.slot_rows, term[self.occurrences], per_word


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
    terms = [
        _Terms(v, int(at), memo or v.build_preprocessor())
        for v, at in zip(vectorizers, starts, strict=False)
    ]
    for i, v in enumerate(vectorizers):  # a vote's members may count the same words alike
        terms[i].same = next((j for j in range(i) if _alike(vectorizers[j], v)), None)
    return terms


def _alike(a: TfidfVectorizer, b: TfidfVectorizer) -> bool:
    """Two fitted word vectorisers that give every text the same features."""
    return (
        a.analyzer == b.analyzer == "word"
        and a.get_params() == b.get_params()
        and a.vocabulary_ == b.vocabulary_
        and np.array_equal(a.idf_, b.idf_)
    )


def _features(terms: list[_Terms], texts: Sequence[str]) -> sp.csr_matrix:
    return _batch(terms, texts, len(texts) >= BLOCK_FROM)[0]


Counted = dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]


def _one(terms: list[_Terms], text: str) -> tuple[list[np.ndarray], list[np.ndarray], Counted]:
    """One text's features, part by part (columns, values); and each part counted (not one
    counted as another alike, see _alike), by its index: columns, values and counts."""
    counted: Counted = {}
    cols, data = [], []
    for i, part in enumerate(terms):
        if part.same is None:
            c, d, _ = counted[i] = part.row(text)
        else:  # counted already, by the part it is alike: its columns moved
            c, d, _ = counted[part.same]
            c = c - terms[part.same].start + part.start
        cols.append(c)
        data.append(d)
    return cols, data, counted


def _batch(
    terms: list[_Terms], texts: Sequence[str], blocks: bool = True
) -> tuple[sp.csr_matrix, dict[int, _Occurrences | _Entries]]:
    """The FeatureUnion's transform: every vectoriser's part side by side, one matrix; and,
    with `blocks`, each character part's n-grams counted for the whole batch at once, and
    what an explanation needs of each part (by its index; none for a part counted as
    another alike): a word part's entries, a character part's n-grams and where they came
    from."""
    width = terms[-1].end
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    data: list[np.ndarray] = []
    if not blocks:  # text by text, each one's parts side by side
        indptr = [0]
        for text in texts:
            one_cols, one_data, _ = _one(terms, text)
            cols += one_cols
            data += one_data
            indptr.append(indptr[-1] + sum(map(len, one_cols)))
        shape = (len(texts), width)
        return sp.csr_matrix((np.concatenate(data), np.concatenate(cols), indptr), shape), {}
    found: dict[int, _Occurrences | _Entries] = {}
    for i, part in enumerate(terms):
        if part.same is not None:
            rows.append(rows[part.same])
            cols.append(cols[part.same] - terms[part.same].start + part.start)
            data.append(data[part.same])
        elif part.words is None:
            per_text = [part.row(text) for text in texts]
            rows.append(np.repeat(np.arange(len(texts)), [len(c) for c, _, _ in per_text]))
            cols.append(np.concatenate([c for c, _, _ in per_text]))
            data.append(np.concatenate([d for _, d, _ in per_text]))
            found[i] = _Entries(rows[-1], cols[-1], data[-1])
        else:
            r, c, d, found[i] = part.block(texts)
            rows.append(r)
            cols.append(c)
            data.append(d)
    # By text (each part's entries are by text already): no duplicates to sum, so the rows
    # are put together directly (scipy's way from triples sums duplicates, and costs more)
    of_text = np.concatenate(rows)
    order = np.argsort(of_text, kind="stable")
    starts = np.concatenate(([0], np.cumsum(np.bincount(of_text, minlength=len(texts)))))
    x = sp.csr_matrix(
        (np.concatenate(data)[order], np.concatenate(cols)[order], starts),
        shape=(len(texts), width),
    )
    return x, found
