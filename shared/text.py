"""Ticket text: made safe to handle, and normalised for features.

Text is stored as given; only the features see the normalised form. Normalising folds
case and accents the same way everywhere ("Sesión" and "sesion" are one word) and never
drops a letter (an old stemmer turned "sesión" into "sesin").
"""

from __future__ import annotations

import re
import unicodedata

# Features of the first 20,000 characters decide the cause; a 1 MB paste of a log file
# would only cost time and memory.
MAX_TEXT_CHARS = 20_000
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
NOT_ASCII = re.compile(r"[^\x00-\x7f]")


def clean(text: str | None) -> str:
    """Any string into one that is valid UTF-8 without NULs, at most MAX_TEXT_CHARS long."""
    if not text:
        return ""
    text = text[:MAX_TEXT_CHARS]
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates become '?'
    return CONTROL.sub(" ", text).strip()


def normalize(text: str) -> str:
    """NFC, case-folded, accents folded: the form the features see."""
    decomposed = unicodedata.normalize("NFD", clean(text).casefold())
    folded = NOT_ASCII.sub(_uncombined, decomposed)  # ASCII holds no combining mark
    return unicodedata.normalize("NFC", folded)


def _uncombined(match: re.Match[str]) -> str:
    return "" if unicodedata.combining(match.group()) else match.group()
