"""Ticket text as a reviewer sees it: hostile input, shown as text and nothing else.

Anyone who can open a ticket writes it. The templates escape every piece (Jinja's
autoescape, never `|safe` on ticket data); here the text is only cut into pieces: characters
that can disguise what is shown (bidirectional overrides and isolates, zero-width and other
invisible format characters) become visible markers such as `[U+202E]`, the words the
explanation names are marked, and a long text is split into what is shown at once and the
rest, behind an expand control."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from shared.text import normalize

SHOWN_CHARS = 1500  # shown at once; the rest behind "show all"
WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Piece:
    text: str
    kind: str = ""  # "": plain; "mark": a word of the explanation; "control": a hidden character


def _hidden(ch: str) -> bool:
    """A character that changes or hides what is shown without being seen: format characters
    (Cf: bidirectional controls, zero-width spaces and joiners, the BOM), and controls other
    than tab and line breaks."""
    category = unicodedata.category(ch)
    return category == "Cf" or (category == "Cc" and ch not in "\t\n\r")


def _marked(text: str, words: frozenset[str]) -> Iterable[Piece]:
    at = 0
    for match in WORD.finditer(text):
        if normalize(match.group()) in words:
            if match.start() > at:
                yield Piece(text[at : match.start()])
            yield Piece(match.group(), "mark")
            at = match.end()
    if at < len(text):
        yield Piece(text[at:])


def pieces(text: str, terms: Iterable[str]) -> list[Piece]:
    """The text in pieces: plain, marked (a word of one of `terms`) and visible markers for
    hidden characters. Terms are normalised words or word pairs, as explanations give them."""
    words = frozenset(w for term in terms for w in normalize(term).split())
    out: list[Piece] = []
    run: list[str] = []
    for ch in text:
        if _hidden(ch):
            if run:
                out.extend(_marked("".join(run), words))
                run = []
            out.append(Piece(f"[U+{ord(ch):04X}]", "control"))
        else:
            run.append(ch)
    if run:
        out.extend(_marked("".join(run), words))
    return out


def split(text: str, limit: int = SHOWN_CHARS) -> tuple[str, str]:
    """What is shown at once and the rest (empty when the text is short), cut at a space
    near the limit when there is one."""
    if len(text) <= limit:
        return text, ""
    cut = text.rfind(" ", limit - 200, limit)
    cut = cut if cut > 0 else limit
    return text[:cut], text[cut:]
