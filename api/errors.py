"""Every error the API gives has one shape, `{"error": {"status", "code", "message",
"field"}}`, and no stack trace ever reaches a client: an unexpected error is logged with its
traceback and answered with a 500 that says only that."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

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


# What each error status means in the OpenAPI schema: every route may answer these.
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Error, "description": text}
    for status, text in {
        401: "no key, an unknown key or a revoked key",
        403: "the key lacks the scope",
        413: "the request body is too large",
        422: "the request is malformed: `field` names what is wrong",
        429: "over the key's rate limit: retry after `Retry-After` seconds",
        500: "an unexpected error (logged)",
        503: "not ready: no model, or the database or the broker is down",
    }.items()
}


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return response(exc.status, exc.code, exc.message, exc.field, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = _field(tuple(first.get("loc", ())))
        return response(422, "invalid", f"{field}: {first.get('msg', 'invalid')}", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return response(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", path=request.url.path, exc_info=exc)
        return response(500, "internal", "an unexpected error; it is logged on the server")
