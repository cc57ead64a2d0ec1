from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.text import MAX_TEXT_CHARS, clean, normalize


def test_accents_and_case_fold_without_dropping_letters() -> None:
    assert normalize("Sesión CONTRASEÑA") == "sesion contrasena"
    assert normalize("sesión") == normalize("SESION") == "sesion"


def test_nul_control_characters_and_lone_surrogates_become_safe() -> None:
    text = clean("a\x00b\x07c \ud800 d")
    assert "\x00" not in text and "\x07" not in text
    text.encode("utf-8")  # no UnicodeEncodeError: the surrogate was replaced


def test_empty_and_whitespace_clean_to_nothing() -> None:
    assert clean(None) == clean("") == clean("   \n\t ") == ""


def test_huge_text_is_capped() -> None:
    assert len(clean("x" * 1_000_000)) == MAX_TEXT_CHARS


def test_rtl_cjk_emoji_and_html_survive() -> None:
    for text in ("שלום עולם", "打印机坏了", "🔥 VPN caída 🔥", "<script>alert(1)</script>"):
        assert normalize(text)


@given(st.text())
def test_any_string_normalizes_to_valid_utf8(text: str) -> None:
    normalize(text).encode("utf-8")
