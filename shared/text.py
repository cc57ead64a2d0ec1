"""Ticket text: made safe to handle, and normalised for features.

Text is stored as given; only the features see the normalised form. Normalising folds
case and accents the same way everywhere ("Sesión" and "sesion" are one word) and never
drops a letter (an old stemmer turned "sesión" into "sesin").

Personal data is masked (`mask`) before the features see a text, at training and at
prediction alike, so a model never learns or stores an address; what causa stores of a text
for itself (the training data set's snapshot) and what it logs are masked the same way.
"""

from __future__ import annotations

import functools
import re
import unicodedata

# Features of the first 20,000 characters decide the cause; a 1 MB paste of a log file
# would only cost time and memory.
MAX_TEXT_CHARS = 20_000
NORMALIZED_REMEMBERED = 1_024  # texts whose normal form is remembered: a worker's batch
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
NOT_ASCII = re.compile(r"[^\x00-\x7f]")

# Personal data, tried in this order at each place (after UUIDs, kept whole: a task id whose
# first groups are all digits is not a phone number): e-mail addresses; IPv4 (each part 0-255)
# and IPv6 addresses (also MAC addresses); card-like numbers (13 to 19 digits, single spaces
# or dashes between them); phone numbers (9 to 15 digits, an optional +, spaces, dots, dashes
# and parentheses between them). Shorter numbers (error codes, years, dates of 8 digits) are
# left alone; a longer run of digits that is none of these is masked as a phone number.
OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
PERSONAL = re.compile(
    rf"""
     (?P<uuid>(?<![\w-])[0-9a-f]{{8}}(?:-[0-9a-f]{{4}}){{3}}-[0-9a-f]{{12}}(?![\w-]))
    |(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)
    |(?P<ip>(?<![\w.]){OCTET}(?:\.{OCTET}){{3}}(?!\.?\w)
        |(?<![\w:])(?=[0-9a-f:]*[0-9a-f])(?:[0-9a-f]{{0,4}}:){{3,7}}[0-9a-f]{{0,4}}(?![\w:]))
    |(?P<card>(?<!\w)\d(?:[ -]?\d){{12,18}}(?!\w))
    |(?P<phone>(?<![\w+])\+?\(?\d(?:[ .()-]{{0,2}}\d){{8,14}}(?!\w))
    """,
    re.VERBOSE | re.IGNORECASE,
)
MAYBE_PERSONAL = re.compile(r"[\d@:]")  # every pattern above needs one of these


def clean(text: str | None) -> str:
    """Any string into one that is valid UTF-8 without NULs, at most MAX_TEXT_CHARS long."""
    if not text:
        return ""
    text = text[:MAX_TEXT_CHARS]
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates become '?'
    return CONTROL.sub(" ", text).strip()


def mask(text: str) -> str:
    """`text` with e-mail addresses, IP addresses, card-like and phone numbers replaced by
    `[email]`, `[ip]`, `[card]` and `[phone]`. Masking a masked text changes nothing."""
    if not MAYBE_PERSONAL.search(text):
        return text
    return PERSONAL.sub(_placeholder, text)


def _placeholder(match: re.Match[str]) -> str:
    return match.group() if match.lastgroup == "uuid" else f"[{match.lastgroup}]"


def masked(text: str | None) -> str:
    """The text as causa keeps it for itself: cleaned, then masked."""
    return mask(clean(text))


def normalize(text: str) -> str:
    """Cleaned, masked, NFC, case-folded, accents folded: the form the features see."""
    return _normalized(text)


@functools.lru_cache(maxsize=NORMALIZED_REMEMBERED)
def _normalized(text: str) -> str:
    # Remembered: a worker normalises a batch's texts to hide them from its logs, then its
    # model normalises them again (normalize stays a plain function: model files name it).
    decomposed = unicodedata.normalize("NFD", masked(text).casefold())
    folded = NOT_ASCII.sub(_uncombined, decomposed)  # ASCII holds no combining mark
    return unicodedata.normalize("NFC", folded)


def _uncombined(match: re.Match[str]) -> str:
    return "" if unicodedata.combining(match.group()) else match.group()
