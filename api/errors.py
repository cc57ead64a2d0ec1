"""Every error the API gives has one shape, `{"error": {"status", "code", "message",
"field"}}`, and no stack trace ever reaches a client: an unexpected error is logged with its
traceback and answered with a 500 that says only that."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from postgrest.exceptions import APIError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.retry import is_transient
from shared.store import Refused

log = structlog.get_logger("causa.api")


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str
    field: str | None = None


class Error(BaseModel):
    """What every error response holds."""

    error: ErrorBody


class ApiError(Exception):
    """An answer that is not a success: status, a short code, what to do."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Error(error=ErrorBody(status=status, code=code, message=message, field=field))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


# What each error status means in the OpenAPI schema.
MEANINGS = {
    401: "no key, an unknown key or a revoked key",
    403: "the key lacks the scope",
    404: "no such ticket or task",
    413: "the request body is too large",
    422: "the request is malformed: `field` names what is wrong",
    429: "over the key's rate limit: retry after `Retry-After` seconds",
    500: "an unexpected error (logged)",
    503: "not ready: no model, or the database or the broker is down",
}
SECONDS = {"type": "integer"}
LIMIT_HEADERS = {
    "Retry-After": {"description": "seconds to wait", "schema": SECONDS},
    "RateLimit-Limit": {"description": "requests allowed in the window", "schema": SECONDS},
    "RateLimit-Remaining": {"description": "requests left in the window", "schema": SECONDS},
    "RateLimit-Reset": {"description": "seconds until one is allowed again", "schema": SECONDS},
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entries of these error statuses, each an `Error`."""
    return {
        s: {
            "model": Error,
            "description": MEANINGS[s],
            **({"headers": LIMIT_HEADERS} if s == 429 else {}),
        }
        for s in statuses
    }


# Every /v1 route may answer these; those that name a ticket or a task also NOT_FOUND.
RESPONSES = responses(401, 403, 413, 422, 429, 500, 503)
NOT_FOUND = responses(404)
# The SQLSTATE class of data exceptions: the database refused a value the request carried (an
# entry point's checks, 22023, or a value its column type cannot hold).
DATA_EXCEPTION = "22"
MESSAGE_CHARS = 300  # of the database's own words, at most


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return response(exc.status, exc.code, exc.message, exc.field, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        loc = tuple(first.get("loc", ()))
        if first.get("type") == "json_invalid":  # its loc is the offset, not a field
            error = first.get("ctx", {}).get("error", "")
            return response(422, "invalid", f"body: not JSON ({error} at {loc[-1]})", "body")
        field = _field(loc)
        return response(422, "invalid", f"{field}: {first.get('msg', 'invalid')}", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not decode the body (not UTF-8)
            return response(422, "invalid", "body: not JSON in UTF-8", "body")
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return response(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))

    async def _store(request: Request, exc: Exception) -> JSONResponse:
        """A database error: the request's data refused (422), the database unreachable
        after the retries (503), else unexpected."""
        sqlstate = str(getattr(exc, "sqlstate", None) or getattr(exc, "code", None) or "")
        if isinstance(exc, Refused) or sqlstate.startswith(DATA_EXCEPTION):
            diag = getattr(exc, "diag", None)
            said = getattr(diag, "message_primary", None) or getattr(exc, "message", None)
            refused = f"refused by the database: {said or exc}"[:MESSAGE_CHARS]
            return response(422, "invalid", refused)
        if is_transient(exc):
            log.warning("database unreachable", path=request.url.path, error=type(exc).__name__)
            return response(503, "unavailable", "the database does not answer: retry shortly")
        return await _unexpected(request, exc)

    for kind in (Refused, psycopg.Error, APIError, httpx.HTTPError):
        app.add_exception_handler(kind, _store)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", path=request.url.path, exc_info=exc)
        return response(500, "internal", "an unexpected error; it is logged on the server")
