"""Unit tests for worker.demodata, the synthetic service-desk ticket generator."""

import re
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from worker import demodata
from worker.demodata import CAUSES, DemoTicket, generate

SPANISH_WORDS = frozenset(
    {"el", "la", "los", "las", "de", "del", "que", "en", "y", "con", "para", "al"}
)
ENGLISH_WORDS = frozenset(
    {"the", "is", "my", "and", "to", "of", "not", "when", "with", "it", "i", "on"}
)
SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _looks_spanish(text: str) -> bool:
    words = _words(text)
    return sum(w in SPANISH_WORDS for w in words) > sum(w in ENGLISH_WORDS for w in words)


def _has_words_of_both_languages(ticket: DemoTicket) -> bool:
    words = set(_words(f"{ticket.short_description} {ticket.description}"))
    return bool(words & (SPANISH_WORDS - {"i"})) and bool(words & (ENGLISH_WORDS - {"y"}))


def _text(ticket: DemoTicket) -> str:
    return f"{ticket.short_description}\n{ticket.description}"


def test_same_arguments_give_the_same_list() -> None:
    # given: two calls with identical arguments
    # when: generating
    first = generate(300, seed=7, start=3)
    second = generate(300, seed=7, start=3)
    # then: the lists are equal ticket by ticket
    assert first == second
    assert len(first) == 300


def test_different_start_gives_different_tickets() -> None:
    # given: the same seed with two non-overlapping windows
    # when: generating both windows
    head = generate(10, seed=1, start=0)
    tail = generate(10, seed=1, start=10)
    # then: the windows differ, and start really is an offset into one stream
    assert head != tail
    assert generate(20, seed=1) == head + tail


def test_different_seed_gives_different_tickets() -> None:
    # given / when: two seeds
    a, b = generate(50, seed=1), generate(50, seed=2)
    # then: the tickets differ
    assert a != b


def test_zero_tickets_and_negative_n() -> None:
    # given / when / then: n=0 is an empty list, a negative n is a caller error
    assert generate(0) == []
    with pytest.raises(ValueError):
        generate(-1)


def test_every_cause_appears_in_700_tickets() -> None:
    # given / when: a default batch of 700 tickets
    tickets = generate(700)
    counts = Counter(t.cause for t in tickets)
    # then: every cause is present and nothing outside CAUSES is produced
    assert set(counts) == set(CAUSES)
    assert min(counts.values()) >= 20


def test_both_languages_appear_in_roughly_70_30_split() -> None:
    # given / when
    tickets = generate(1000, seed=3)
    spanish = sum(_looks_spanish(t.description) for t in tickets)
    # then: mostly Spanish, a good share of English, and some tickets mixing both
    assert 0.55 <= spanish / len(tickets) <= 0.85
    assert sum(_has_words_of_both_languages(t) for t in tickets) >= 20


def test_spanish_text_keeps_its_accents() -> None:
    # given / when
    corpus = "\n".join(_text(t) for t in generate(1000, seed=4))
    # then: accented words are spelled properly
    for word in ("sesión", "contraseña", "conexión", "impresión"):
        assert word in corpus
    assert re.search(r"[áéíóúñ]", corpus)


def test_lengths_are_within_bounds() -> None:
    # given / when
    tickets = generate(2000, seed=5)
    # then: subject of 3-10 words, description of 1-3 sentences, no unfilled slot
    for t in tickets:
        assert 3 <= len(t.short_description.split()) <= 10, t
        assert 1 <= len(SENTENCE_END.findall(t.description)) <= 3, t
        assert "{" not in _text(t) and "}" not in _text(t), t
        assert t.short_description == t.short_description.strip()


def test_about_ten_percent_of_tickets_carry_a_typo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: the same tickets generated with and without typos (the typo is the last random step)
    clean_share = 0.0
    monkeypatch.setattr(demodata, "TYPO_SHARE", clean_share)
    clean = generate(2000, seed=6)
    monkeypatch.undo()
    # when: generating with the default typo rate
    noisy = generate(2000, seed=6)
    # then: roughly one ticket in ten differs
    changed = sum(a != b for a, b in zip(clean, noisy, strict=True))
    assert 0.05 <= changed / len(noisy) <= 0.15


def test_text_is_learnable_but_not_trivial() -> None:
    # given: a TF-IDF + logistic regression model trained on one seed
    make_pipeline = pytest.importorskip("sklearn.pipeline").make_pipeline
    tfidf = pytest.importorskip("sklearn.feature_extraction.text").TfidfVectorizer
    logreg = pytest.importorskip("sklearn.linear_model").LogisticRegression
    train = generate(2000, seed=1)
    test = generate(1000, seed=2, start=5000)
    model = make_pipeline(tfidf(ngram_range=(1, 2), sublinear_tf=True), logreg(max_iter=1000))
    model.fit([_text(t) for t in train], [t.cause for t in train])
    # when: scoring on tickets from another seed and window
    accuracy = model.score([_text(t) for t in test], [t.cause for t in test])
    # then: clearly learnable, but ambiguity and noise keep it below perfect
    assert 0.75 <= accuracy <= 0.99


def test_template_tables_are_consistent() -> None:
    # given: every template of the module, filled with the shortest and the longest slot values
    tables = demodata.tables()
    slots = tables.slots
    assert slots["es"].keys() == slots["en"].keys()
    assert all(len(slots["es"][k]) == len(slots["en"][k]) for k in slots["es"])
    shared = [template for _, template in (*tables.ambiguous, *tables.vague)]
    templates = [t for cause in CAUSES for t in tables.templates[cause]] + shared
    # then: each cause has at least 15 distinct templates, every ambiguous cause is a real one
    assert all(len(set(tables.templates[cause])) >= 15 for cause in CAUSES)
    assert {c for causes, _ in (*tables.ambiguous, *tables.vague) for c in causes} <= set(CAUSES)
    # and the framing phrases exist in both languages, the weights cover exactly the causes
    for phrases in (tables.greetings, tables.follow_ups, tables.closings, tables.urgent_prefixes):
        assert phrases.keys() == {"es", "en"} and all(phrases.values())
    assert set(demodata.CAUSE_WEIGHTS) == set(CAUSES) == set(tables.templates)
    # when / then: every subject renders to 3-10 words and every body to exactly one sentence
    for lang, (short_at, body_at) in {"es": (0, 1), "en": (2, 3)}.items():
        for pick in (min, max):
            values = {
                name: pick(options, key=lambda v: len(v.split()))
                for name, options in slots[lang].items()
            }
            for template in templates:
                short = template[short_at].format_map(values)
                body = template[body_at].format_map(values)
                assert 3 <= len(short.split()) <= 10, short
                assert len(SENTENCE_END.findall(body)) == 1, body


def test_the_data_files_ship_with_the_package() -> None:
    # given: pyproject's package-data, which decides what an installed causa carries
    root = Path(__file__).resolve().parents[2]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["worker"]
    # when / then: every file beside the generator's code is matched by one of them
    package = root / "worker" / "demodata"
    data = {p for p in package.iterdir() if p.suffix in {".json", ".sql"}}
    assert data and all(any(p.match(f"*/{pat}") for pat in patterns) for p in data)
    assert demodata.TABLE_SQL.count("CREATE TABLE IF NOT EXISTS tickets") == 1
