from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.text import MAX_TEXT_CHARS, clean, mask, normalize


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("escribe a juan.perez+it@corp.example.com hoy", "escribe a [email] hoy"),
        ("desde 192.168.1.20.", "desde [ip]."),
        ("ipv6 2001:db8::8a2e:370:7334 y mac 00:1a:2b:3c:4d:5e", "ipv6 [ip] y mac [ip]"),
        ("tarjeta 4111 1111 1111 1111 o 4111-1111-1111-1111", "tarjeta [card] o [card]"),
        ("llámame al +34 612 345 678 o al (555) 123-4567", "llámame al [phone] o al [phone]"),
        ("móvil 612345678", "móvil [phone]"),
        (
            "id 12345678-9012-3456-7890-123456789012, tel 612345678",
            "id 12345678-9012-3456-7890-123456789012, tel [phone]",
        ),
    ],
)
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert mask(text) == expected
    assert mask(expected) == expected  # masking a masked text changes nothing


@pytest.mark.parametrize(
    "text",
    [
        "error 403 al entrar",
        "desde el 2024-01-15 a las 12:30:45",
        "versión 1.2 del cliente, puerto 8080, 3 equipos",
        "ticket INC000123456789",
        "999.1.1.1 no es una dirección",
        "task 12345678-9012-3456-7890-123456789012 retried",  # a UUID of digits: an id
    ],
)
def test_what_is_not_personal_data_is_left_alone(text: str) -> None:
    assert mask(text) == text


def test_the_features_see_masked_text() -> None:
    assert normalize("Correo: Ana@Example.COM") == "correo: [email]"


@given(st.text())
def test_masking_is_idempotent(text: str) -> None:
    assert mask(mask(text)) == mask(text)
