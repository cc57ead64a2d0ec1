"""Bad input, tried systematically (hypothesis): hostile settings are refused with a message
that names the variable and never shows a secret; the text cleaner takes any string."""

from __future__ import annotations

import math
import re
import unicodedata

import pytest
from annotated_types import Ge, Gt, Le, Lt
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.settings import ConfigError, Settings, env_names, load_settings
from shared.text import MAX_TEXT_CHARS, clean, normalize

EXAMPLES = settings(max_examples=80, deadline=None)

# What an environment variable can hold: no NUL, no lone surrogate (the OS refuses both).
ENV_CHARS = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
ATTACKS = [
    "tickets; DROP TABLE tickets; --",
    'tickets" CASCADE; --',
    "tickets'",
    "tickets\n",
    "tíckets",
    "tickets\u200b",
    "ticket s",
    "",
    "a" * 64,
    "public.tickets.x",
    "1tickets",
]


def loaded(**env: str) -> Settings | str:
    """The settings load_settings makes with `env` set, or the message it refuses them with.
    (A context of its own per example: hypothesis reuses a test's fixtures across examples.)"""
    with pytest.MonkeyPatch.context() as m:
        for name, value in env.items():
            m.setenv(name, value)
        try:
            return load_settings()
        except ConfigError as exc:
            return str(exc)


def refusal(**env: str) -> str | None:
    """The ConfigError message load_settings gives with `env` set, or None if it accepts."""
    got = loaded(**env)
    return got if isinstance(got, str) else None


def is_identifier(name: str) -> bool:
    """What PostgreSQL takes unquoted and whole: ASCII letters, digits, _, 63 bytes at most."""
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name, re.ASCII)) and len(name) <= 63


NAMES = st.sampled_from(["tickets", "public.tickets", "Number", "_x", "a" * 63]) | st.text(
    ENV_CHARS, max_size=70
)


@EXAMPLES
@given(
    variable=st.sampled_from(
        ["CAUSA_TABLE", "CAUSA_NUMBER_COLUMN", "CAUSA_CAUSE_COLUMN", "CAUSA_TEXT_COLUMNS"]
    ),
    name=NAMES | st.sampled_from(ATTACKS),
)
def test_a_table_or_column_name_is_an_identifier_or_refused_by_its_variable(
    variable: str, name: str
) -> None:
    # given a name in one of the settings causa quotes into its SQL
    if variable == "CAUSA_TABLE":
        valid = 0 < len(name.split(".")) <= 2 and all(map(is_identifier, name.split(".")))
    elif variable == "CAUSA_TEXT_COLUMNS":
        columns = [c.strip() for c in name.split(",") if c.strip()]
        valid = bool(columns) and all(map(is_identifier, columns))
    else:
        valid = is_identifier(name)
    # when causa reads it
    message = refusal(**{variable: name})
    # then an identifier is taken, anything else refused by the variable's name (an empty
    # value counts as unset: the default)
    if valid or name == "":
        assert message is None, message
    else:
        assert message is not None, f"{variable}={name!r} was accepted"
        assert message.startswith(f"{variable}="), message
        assert len(message) < 300, "a hostile value is shown cut"


# URLs built from parts, each either right or wrong: the URL is good when every part is.
PASSWORD = "Pw-7f3e-secret"


@st.composite
def urls(draw: st.DrawFn, schemes: list[str], good_schemes: set[str]) -> tuple[str, bool]:
    scheme = draw(st.sampled_from(schemes))
    user = draw(st.sampled_from(["", "app:", ":"]))
    password = draw(st.sampled_from([PASSWORD, f"{PASSWORD} x", f"{PASSWORD}%20x"]))
    host = draw(st.sampled_from(["db.example.com", "127.0.0.1", "[::1]", "db host", "h\tx"]))
    port = draw(st.sampled_from(["", ":5432", ":6379", ":0", ":65536", ":abc", ":-1"]))
    path = draw(st.sampled_from(["", "/0", "/13"]))
    credentials = f"{user}{password}@" if user else ""
    url = f"{scheme}://{credentials}{host}{port}{path}"
    good = (
        scheme in good_schemes
        and not (credentials and " " in password)
        and host in ("db.example.com", "127.0.0.1", "[::1]")
        and port in ("", ":5432", ":6379")
    )
    return url, good


SCHEMES = ["postgresql", "postgres", "mysql", "redis", "rediss", "https", "http", "ftp", "HTTPS"]


@EXAMPLES
@given(url=urls(SCHEMES, {"postgresql", "postgres"}))
@example(url=("user=app password=x host=db dbname=tickets port=5432", True))
@example(url=("not a url", False))
@example(url=("postgresql://app:x@db/tickets?nonsense=1", False))
def test_database_url_is_a_postgresql_url_or_refused_without_showing_it(
    url: tuple[str, bool],
) -> None:
    value, good = url
    message = refusal(DATABASE_URL=value)
    if good:
        assert message is None, message
    else:
        assert message is not None and message.startswith("DATABASE_URL=***"), message
        assert PASSWORD not in message and value not in message


@EXAMPLES
@given(url=urls(SCHEMES, {"redis", "rediss"}))
@example(url=("redis://127.0.0.1:6379/zero", False))
@example(url=("unix:///tmp/redis.sock", False))
def test_redis_url_is_a_redis_url_or_refused_without_showing_it(url: tuple[str, bool]) -> None:
    value, good = url
    message = refusal(REDIS_URL=value)
    if good:
        assert message is None, message
    else:
        assert message is not None and message.startswith("REDIS_URL=***"), message
        assert PASSWORD not in message


@EXAMPLES
@given(url=urls(SCHEMES, {"https", "http"}))
@example(url=("https://PROJECT.supabase.co", True))
@example(url=("javascript:alert(1)", False))
def test_supabase_url_is_a_web_url_without_credentials_or_refused(url: tuple[str, bool]) -> None:
    value, good = url
    good = good and "@" not in value  # the key goes in SUPABASE_SERVICE_ROLE_KEY
    message = refusal(SUPABASE_URL=value)
    if good:
        assert message is None, message
    else:
        assert message is not None and message.startswith("SUPABASE_URL="), message
        assert PASSWORD not in message


def bounds(field: str) -> tuple[float, float, bool, bool]:
    """A number field's (low, high, low included, high included), from its Field(...)."""
    low, high, low_in, high_in = -math.inf, math.inf, True, True
    for rule in Settings.model_fields[field].metadata:
        if isinstance(rule, Ge):
            low, low_in = float(rule.ge), True  # type: ignore[arg-type]
        elif isinstance(rule, Gt):
            low, low_in = float(rule.gt), False  # type: ignore[arg-type]
        elif isinstance(rule, Le):
            high, high_in = float(rule.le), True  # type: ignore[arg-type]
        elif isinstance(rule, Lt):
            high, high_in = float(rule.lt), False  # type: ignore[arg-type]
    return low, high, low_in, high_in


THRESHOLDS = [
    name for name, f in Settings.model_fields.items() if f.annotation is float and f.metadata
]


def test_every_bounded_number_setting_is_tried() -> None:
    # the thresholds below come from the settings themselves: a new one is tried too
    assert {"confidence_threshold", "min_f1", "target_precision", "drift_threshold"} <= set(
        THRESHOLDS
    )
    assert {"poll_interval", "stall_after", "rest_timeout", "min_improvement"} <= set(THRESHOLDS)


NUMBERS = (
    st.floats().map(repr)
    | st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e309", "-0.0", "1.5", "-1", " 1"])
    | st.text(ENV_CHARS, max_size=12)
)


def within(field: str, number: float) -> bool:
    low, high, low_in, high_in = bounds(field)
    return (low < number or (low_in and low == number)) and (
        number < high or (high_in and high == number)
    )


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(THRESHOLDS), value=NUMBERS)
def test_a_threshold_is_a_finite_number_in_its_bounds_or_refused_by_its_variable(
    field: str, value: str
) -> None:
    # given a value for one of the bounded number settings; when causa reads it
    variable = env_names(field)[0]
    got = loaded(**{variable: value})
    # then it is refused by its variable's name, or it is a finite number within the bounds
    if isinstance(got, str):
        assert got.startswith(f"{variable}="), got
    else:
        number = getattr(got, field)
        assert math.isfinite(number) and within(field, number), (value, number)
    # and a number written as Python writes it, finite and within the bounds, is taken
    number = plain(value)
    if number is not None and math.isfinite(number) and within(field, number):
        assert not isinstance(got, str), got


def plain(value: str) -> float | None:
    """The number `value` writes the way Python writes numbers (repr), else None."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if repr(number) == value else None


@pytest.mark.parametrize("field", THRESHOLDS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_and_infinity_are_refused_for_every_threshold(field: str, value: str) -> None:
    variable = env_names(field)[0]
    message = refusal(**{variable: value})
    assert message == f"{variable}={value!r} must be a finite number"


# Any Unicode: control characters, lone surrogates, bidirectional and zero-width marks.
ODD = "\x00\x07\x1b\x7f\x85\u200b\u200e\u200f\u202e\u2028\ufeff\ud800\udfff\u0301ﬃ🔥"
ANY_TEXT = st.text(
    st.characters(exclude_categories=()) | st.characters(categories=["Cs"]) | st.sampled_from(ODD)
)
LONG_TEXT = st.builds(lambda s, n: s * n, ANY_TEXT.filter(bool), st.integers(1, 2 * MAX_TEXT_CHARS))


@settings(max_examples=200, deadline=None)
@given(text=st.none() | ANY_TEXT | LONG_TEXT)
@example(text="\ud800" * (MAX_TEXT_CHARS + 1))
@example(text=" " * MAX_TEXT_CHARS + "x")
def test_clean_takes_any_string_and_returns_safe_text_within_the_bound(text: str | None) -> None:
    # given any string, of any length; when it is cleaned (it never raises)
    cleaned = clean(text)
    # then it is within the bound, encodable, without control characters but tab and newlines
    assert len(cleaned) <= MAX_TEXT_CHARS
    cleaned.encode("utf-8")  # no lone surrogate left
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", cleaned)
    assert cleaned == cleaned.strip()
    assert clean(cleaned) == cleaned  # cleaning twice changes nothing


@settings(max_examples=100, deadline=None)
@given(text=ANY_TEXT | LONG_TEXT)
def test_normalize_takes_any_string_and_folds_it(text: str) -> None:
    # given any string; when it is normalized for the features; then it is NFC, unaccented
    folded = normalize(text)
    folded.encode("utf-8")
    assert unicodedata.is_normalized("NFC", folded)
    assert not any(unicodedata.combining(c) for c in folded)
    # exactly what models made before were trained on: every combining mark dropped
    decomposed = unicodedata.normalize("NFD", clean(text).casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    assert folded == unicodedata.normalize("NFC", plain)
