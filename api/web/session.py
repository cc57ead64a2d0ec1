"""Sign-in for the review desk: an API key of `review` or `admin` scope, exchanged once for a
session cookie, and the CSRF token every form carries.

The cookie is signed (itsdangerous, with a key derived from the model signing key, which every
API process of a deployment shares) and holds the key's name, scope and lookup prefix, never
the key. It is HttpOnly, SameSite=Strict, Secure when the page came over HTTPS (or with
CAUSA_WEB_SECURE_COOKIES), and expires after CAUSA_WEB_SESSION_MINUTES; each request checks
that the key is still there and not revoked (a revoked key signs its sessions out). The CSRF
token is random per session, kept in the signed cookie and compared in constant time; the
sign-in form, before any session, is protected the same way by a cookie of its own (double
submit)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from api.web.errors import PageError
from flows import keys
from shared.settings import Settings
from shared.store import KeyStore

SESSION_COOKIE = "causa_session"
LOGIN_COOKIE = "causa_csrf"  # the sign-in form's token, before there is a session
LOGIN_MAX_AGE_S = 3600


@dataclass(frozen=True)
class Visitor:
    name: str
    scope: str
    prefix: str
    csrf: str
    rate_limit: str | None = None  # the key's own, if it has one

    @property
    def admin(self) -> bool:
        return self.scope == "admin"


def serializer(signing_key: bytes) -> URLSafeTimedSerializer:
    secret = hmac.new(signing_key, b"causa review desk sessions", hashlib.sha256).digest()
    return URLSafeTimedSerializer(secret, salt="causa-session")


def _set(
    response: Response, request: Request, settings: Settings, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        # over HTTPS, or behind a proxy that ends TLS (CAUSA_WEB_SECURE_COOKIES)
        secure=request.url.scheme == "https" or settings.web_secure_cookies,
        path="/",
    )


def start(
    response: Response,
    request: Request,
    signer: URLSafeTimedSerializer,
    key: keys.Key,
    given: str,
    settings: Settings,
) -> None:
    """Sign the visitor in: the session cookie for `key` (whose secret was `given`)."""
    value = {
        "n": key.name,
        "s": key.scope,
        "p": given[: keys.PREFIX_CHARS],
        "c": secrets.token_urlsafe(32),
    }
    _set(
        response,
        request,
        settings,
        SESSION_COOKIE,
        signer.dumps(value),
        settings.web_session_minutes * 60,
    )
    response.delete_cookie(LOGIN_COOKIE, path="/")


def end(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def visitor(
    request: Request, signer: URLSafeTimedSerializer, store: KeyStore, settings: Settings
) -> Visitor | None:
    """Who the session cookie says, if it is signed, not expired, and its key still stands."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        value: dict[str, Any] = signer.loads(raw, max_age=settings.web_session_minutes * 60)
        found = Visitor(value["n"], value["s"], value["p"], value["c"])
    except (BadSignature, KeyError, TypeError):
        return None
    row = store.find_api_key(found.prefix)
    if row is None or row["revoked"] or row["name"] != found.name:
        return None
    return Visitor(found.name, row["scope"], found.prefix, found.csrf, row["rate_limit"])


def login_token(request: Request) -> str:
    """The sign-in form's CSRF token: the one its cookie holds, else a new one."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)


def set_login_cookie(response: Response, request: Request, settings: Settings, token: str) -> None:
    _set(response, request, settings, LOGIN_COOKIE, token, LOGIN_MAX_AGE_S)


def check_csrf(expected: str | None, given: object) -> None:
    """A form's token against the one the cookie holds; else a 403 that says so."""
    if (
        not expected
        or not isinstance(given, str)
        or not hmac.compare_digest(expected.encode(), given.encode())
    ):
        raise PageError(
            403,
            "The form's CSRF token is missing or wrong: reload the page and send it again.",
        )
