"""Deterministic generator of synthetic IT service-desk tickets (Spanish / English).

Used for demos, tests and smoke-training when no real tickets are at hand. Every ticket is
built from the template tables in templates.json (see `Tables`); no dataset is copied.

    >>> from worker.demodata import generate
    >>> tickets = generate(3, seed=7)
    >>> tickets == generate(3, seed=7)
    True

Each ticket gets its own ``random.Random(f"{seed}:{start + i}")``, so a ticket only depends
on its seed and absolute position: ``generate(20)[10:] == generate(10, start=10)``.
"""

from __future__ import annotations

import functools
import json
import random
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["CAUSES", "TABLE_SQL", "DemoTicket", "generate", "tables"]

# The ticket table with causa's default names, as the demo, the benchmarks and the tests
# create it (a real deployment brings its own table).
TABLE_SQL = resources.files(__name__).joinpath("tickets.sql").read_text(encoding="utf-8")

CAUSES: tuple[str, ...] = (
    "Accesos",
    "Hardware",
    "Red",
    "Software",
    "Correo",
    "Impresoras",
    "Base de datos",
)

# --------------------------------------------------------------------------------------
# Tunables
# --------------------------------------------------------------------------------------

SPANISH_SHARE = 0.70  # share of tickets written (mainly) in Spanish
MIXED_SHARE = 0.12  # tickets mixing both languages (other-language subject or greeting)
AMBIGUOUS_SHARE = 0.08  # tickets whose text mentions two causes
VAGUE_SHARE = 0.04  # under-specified tickets ("SAP no funciona")
TYPO_SHARE = 0.10  # tickets carrying one typo
URGENT_PREFIX_SHARE = 0.07

# Relative frequency of each cause (access and software requests dominate real desks).
CAUSE_WEIGHTS: dict[str, float] = {
    "Accesos": 0.21,
    "Hardware": 0.15,
    "Red": 0.14,
    "Software": 0.18,
    "Correo": 0.13,
    "Impresoras": 0.10,
    "Base de datos": 0.09,
}

MAX_SHORT_WORDS = 10
_WORD = re.compile(r"[^\W\d_]{4,}")

# A template: (es_short, es_body, en_short, en_body). Bodies are exactly one sentence.
# Slots: {app} {sw} {device} {printer} {db} {dbname} {dept} {loc} {since} {city}
Template = tuple[str, str, str, str]


@dataclass(frozen=True)
class Tables:
    """templates.json: the templates per cause, the templates that point at two causes
    (ambiguous) or fit several about equally well (vague), each as (causes, template) with
    the true cause drawn from causes; slot values and framing phrases per language, "es" and
    "en" (slot tables are parallel across languages: one index fills both)."""

    templates: dict[str, tuple[Template, ...]]
    ambiguous: tuple[tuple[tuple[str, ...], Template], ...]
    vague: tuple[tuple[tuple[str, ...], Template], ...]
    slots: dict[str, dict[str, tuple[str, ...]]]
    greetings: dict[str, tuple[str, ...]]
    follow_ups: dict[str, tuple[str, ...]]
    closings: dict[str, tuple[str, ...]]
    urgent_prefixes: dict[str, tuple[str, ...]]


@functools.cache
def tables() -> Tables:
    """The template tables, read once."""
    text = resources.files(__name__).joinpath("templates.json").read_text(encoding="utf-8")
    return Tables(**{key: _frozen(value) for key, value in json.loads(text).items()})


def _frozen(value: Any) -> Any:
    """JSON lists as tuples, and a {"causes", "template"} object as the pair (causes, template)."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        if value.keys() == {"causes", "template"}:
            return (_frozen(value["causes"]), _frozen(value["template"]))
        return {k: _frozen(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoTicket:
    short_description: str
    description: str
    cause: str  # the hidden true cause, one of CAUSES


def generate(n: int, *, seed: int = 42, start: int = 0) -> list[DemoTicket]:
    """Return ``n`` synthetic tickets; the same ``(n, seed, start)`` always gives the same list.

    Ticket ``i`` is drawn from ``random.Random(f"{seed}:{start + i}")``, so ``start`` shifts
    the window: ``generate(10, seed=1, start=10)`` continues ``generate(10, seed=1)``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [_ticket(random.Random(f"{seed}:{start + i}")) for i in range(n)]  # noqa: S311 (data, not crypto)


def _ticket(rng: random.Random) -> DemoTicket:
    cause, template = _pick_cause_and_template(rng)
    lang = "es" if rng.random() < SPANISH_SHARE else "en"
    other = "en" if lang == "es" else "es"
    short_lang = frame_lang = lang
    # A mixed ticket has its subject, or its greeting/follow-up/closing, in the other language.
    if rng.random() < MIXED_SHARE:
        if rng.random() < 0.5:
            short_lang = other
        else:
            frame_lang = other

    # Slot tables are parallel across languages, so one index per slot keeps both texts consistent.
    picks = {name: rng.randrange(len(values)) for name, values in tables().slots["es"].items()}
    short = _fill(template[0 if short_lang == "es" else 2], _slot_values(short_lang, picks))
    body = _fill(template[1 if lang == "es" else 3], _slot_values(lang, picks))

    short = _maybe_urgent(rng, short, short_lang)
    description = _compose(rng, body, frame_lang)
    if rng.random() < TYPO_SHARE:
        if rng.random() < 0.4:
            short = _typo(rng, short)
        else:
            description = _typo(rng, description)
    return DemoTicket(short_description=short, description=description, cause=cause)


def _pick_cause_and_template(rng: random.Random) -> tuple[str, Template]:
    t = tables()
    draw = rng.random()
    if draw < AMBIGUOUS_SHARE + VAGUE_SHARE:
        causes, template = rng.choice(t.ambiguous if draw < AMBIGUOUS_SHARE else t.vague)
        return rng.choice(causes), template
    cause = rng.choices(CAUSES, weights=[CAUSE_WEIGHTS[c] for c in CAUSES])[0]
    return cause, rng.choice(t.templates[cause])


def _slot_values(lang: str, picks: dict[str, int]) -> dict[str, str]:
    return {name: tables().slots[lang][name][index] for name, index in picks.items()}


def _fill(template: str, slots: dict[str, str]) -> str:
    text = template.format_map(slots)
    return text[:1].upper() + text[1:]


def _maybe_urgent(rng: random.Random, short: str, lang: str) -> str:
    if rng.random() < URGENT_PREFIX_SHARE and len(short.split()) < MAX_SHORT_WORDS - 1:
        return f"{rng.choice(tables().urgent_prefixes[lang])} {short}"
    return short


def _compose(rng: random.Random, body: str, lang: str) -> str:
    """Greeting, the body sentence, maybe a follow-up, maybe a closing (<= 3 sentences)."""
    lines: list[str] = []
    if rng.random() < 0.55:
        lines.append(rng.choice(tables().greetings[lang]))
    sentences = [body]
    if rng.random() < 0.45:
        sentences.append(rng.choice(tables().follow_ups[lang]))
    lines.append(" ".join(sentences))
    if rng.random() < 0.5:
        lines.append(rng.choice(tables().closings[lang]))
    return "\n".join(lines)


def _typo(rng: random.Random, text: str) -> str:
    """Introduce one realistic typo: a missing accent, a dropped letter or two swapped letters."""
    words = list(_WORD.finditer(text))
    if not words:
        return text
    accented = [m for m in words if _strip_accents(m.group()) != m.group()]
    if accented and rng.random() < 0.5:
        match = rng.choice(accented)
        typo = _strip_accents(match.group())
    else:
        match = rng.choice(words)
        word = match.group()
        pos = rng.randrange(1, len(word) - 1)
        if rng.random() < 0.5:
            typo = word[:pos] + word[pos + 1 :]
        else:
            typo = word[:pos] + word[pos + 1] + word[pos] + word[pos + 2 :]
    return text[: match.start()] + typo + text[match.end() :]


def _strip_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", kept)
