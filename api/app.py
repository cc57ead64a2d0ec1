"""The causa HTTP API (`causa serve`): predictions, the review queue, the model, admin tasks and
status under /v1; /healthz, /readyz and /metrics without a key; the review desk's pages under /
(api/web). Each route is a thin adapter
around one flow, on the same runtime a worker builds (store, hot-swapped model, queue)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics
from api.errors import NOT_FOUND, RESPONSES, ApiError, install, response, responses
from api.guard import Guard, public, require
from api.web import pages
from flows import admin, predict, status
from flows.classify import classify_batch
from flows.keys import Key
from flows.runtime import Runtime
from shared import logs
from shared.settings import Settings, load_settings
from training.modelfile import LoadedModel

log = structlog.get_logger("causa.api")
# What the schema says of a text; `_text` checks it, with messages that say what is wrong (the
# length limit, a setting, is added to the schema by `_documented_limits`). BLANKS is what
# str.strip() removes, spelled out: regex engines disagree on what \s is.
BLANKS = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = "^(?![" + BLANKS + "]*$)[^\\x00]*$"  # not empty or only whitespace, no NUL
Text = Annotated[str, Field(json_schema_extra={"minLength": 1, "pattern": NOT_BLANK})]
# A promoted model answers within this long (the workers check before each batch).
MODEL_CHECK_S = 1.0
# Requests with at most this many texts are predicted on the event loop (some 3 ms at most).
INLINE_TEXTS = 10
VERSION = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"  # ASCII digits: as every regex engine reads it
LABEL = VERSION.removesuffix("$") + r"(\.r[1-9][0-9]*)?$"  # or a thresholds revision of it


def _no_nul(value: str) -> str:
    """PostgreSQL's text holds any character but NUL."""
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value


# A ticket number or a task id.
NO_NUL = {"pattern": r"^[^\x00]*$"}
TicketNumber = Annotated[
    str, Field(min_length=1, max_length=200, json_schema_extra=NO_NUL), AfterValidator(_no_nul)
]
Number = Annotated[
    str,
    Path(min_length=1, max_length=200, json_schema_extra=NO_NUL, description="A ticket number."),
    AfterValidator(_no_nul),
]
TaskId = Annotated[
    str, Path(min_length=1, max_length=200, json_schema_extra=NO_NUL), AfterValidator(_no_nul)
]


def _text(value: str, limit: int) -> str:
    _no_nul(value)
    if not value.strip():
        raise ValueError("is empty or only whitespace")
    if len(value) > limit:
        raise ValueError(f"has {len(value)} characters, more than {limit}")
    return value


def _given(name: str, kind: str) -> dict[str, Any]:
    """A JSON schema: `name` is there and not null."""
    return {"required": [name], "properties": {name: {"type": kind}}}


class PredictRequest(BaseModel):
    """One text (`text`) or a batch (`texts`), never both."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [_given("text", "string"), _given("texts", "array")]}
    )
    text: Text | None = None
    texts: list[Text] | None = Field(None, min_length=1)
    explain: StrictBool = Field(
        False,
        description="also say which terms raised each cause (some 10 % more time a request for"
        " one text, 10-15 % for a batch)",
    )

    @model_validator(mode="after")
    def _one(self) -> PredictRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give either text or texts")
        return self


class Term(BaseModel):
    term: str = Field(
        description="a word or word pair of the text (normalised: lower case, no accents)"
    )
    weight: float = Field(description="how much it raised the cause's score (log-odds)")


class Prediction(BaseModel):
    cause: str
    confidence: float
    verdict: Literal["classified", "needs_review"]
    threshold: float | None = Field(
        description="the confidence from which the cause is applied automatically; null for a"
        " cause never applied automatically (CAUSA_NEVER_AUTO)"
    )
    alternatives: list[dict[str, Any]]
    probabilities: dict[str, float]
    explanation: list[Term] | None = Field(
        description="the terms that raised the cause most (with `explain`; null without it, or"
        " for a model causa does not explain)"
    )


class PredictResponse(BaseModel):
    model_version: str
    predictions: list[Prediction]


class ClassifyRequest(BaseModel):
    numbers: list[TicketNumber] = Field(min_length=1, max_length=1000)


class Classified(BaseModel):
    """What a classify batch did (the counts are null when nothing was claimed)."""

    claimed: int
    model_version: str | None
    classified: int | None = None
    needs_review: int | None = None
    failed: int | None = None
    retrying: int | None = None
    stale: int | None = None


class Ticket(BaseModel):
    number: str
    text: str | None
    cause: str | None
    status: str | None = Field(description="pending, claimed, classified, needs_review, failed")
    predicted: str | None
    confidence: float | None
    alternatives: list[dict[str, Any]] | None
    explanation: list[dict[str, Any]] | None = Field(
        None, description="the terms that raised the predicted cause most: [{term, weight}]"
    )
    model_version: str | None
    error: str | None


class ListedTicket(Ticket):
    at: datetime = Field(description="when it was queued (pending) or decided: the page order")
    received_at: datetime | None
    attempts: int | None


class TicketDetail(Ticket):
    decided_at: datetime | None


class TicketPage(BaseModel):
    items: list[ListedTicket]
    next_cursor: str | None = Field(description="give it as `cursor` for the next page")


class LabelRequest(BaseModel):
    cause: str = Field(min_length=1, max_length=200, json_schema_extra={"pattern": NOT_BLANK})

    @field_validator("cause")
    @classmethod
    def _cause(cls, value: str) -> str:
        return _text(value, 200).strip()


class Labelled(BaseModel):
    number: str
    cause: str
    changed: bool = Field(description="false: the ticket had this cause (a confirmation)")


class ModelInfo(BaseModel):
    version: str
    classes: list[str]
    metrics: dict[str, Any]
    thresholds: dict[str, float]
    created_at: str
    n_train: int
    decision: str


class ListedModel(ModelInfo):
    kind: Literal["current", "backup"] = Field(description="current: the one in service")


class NumbersRequest(BaseModel):
    numbers: list[TicketNumber] | None = Field(None, min_length=1, max_length=10_000)


class ReclassifyRequest(NumbersRequest):
    """The tickets named, or those a model version decided (or both)."""

    model_config = ConfigDict(
        json_schema_extra={"anyOf": [_given("numbers", "array"), _given("model_version", "string")]}
    )
    model_version: str | None = Field(None, pattern=VERSION)


class RollbackRequest(BaseModel):
    version: str | None = Field(
        None, pattern=LABEL, description="a backup's version, or VERSION.rN for one revision"
    )


class Queued(BaseModel):
    task_id: str
    action: str
    state: str


class TaskRun(BaseModel):
    id: str
    name: str
    state: Literal["queued", "started", "succeeded", "failed"]
    requested_by: str | None
    summary: dict[str, Any] | None
    error: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class Readiness(BaseModel):
    """Each part: "ok", or why it does not answer."""

    ready: bool
    database: str
    broker: str
    model: str


async def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def model_in_service(rt: Runtime) -> LoadedModel:
    model = rt.models.get()
    if model is None:
        raise ApiError(503, "no_model", "no model in service yet: train one (causa train)")
    return model


def _cursor(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        after = json.loads(base64.urlsafe_b64decode(value.encode() + b"=="))
        at, number = after["at"], after["number"]
        datetime.fromisoformat(at)
        if not isinstance(number, str) or "\x00" in number:
            raise ValueError(number)
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise ApiError(422, "invalid", "cursor: not a cursor this API gave", "cursor") from None
    return {"at": at, "number": number}


def _next_cursor(items: list[dict[str, Any]], limit: int) -> str | None:
    if len(items) < limit:
        return None
    last = {"at": items[-1]["at"], "number": items[-1]["number"]}
    return base64.urlsafe_b64encode(json.dumps(last).encode()).decode().rstrip("=")


v1 = APIRouter(prefix="/v1", responses=RESPONSES)
Rt = Annotated[Runtime, Depends(runtime)]


class Serving:
    """The model in service, for the event loop: the hot-swap check (a stat; a load of
    seconds when the manifest changed) runs in a thread, at most once a MODEL_CHECK_S. Small
    requests are predicted on the loop (a thread would only add switches of the GIL, which
    the prediction holds anyway); large ones in a thread, so the loop still answers."""

    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self.checked_at = -math.inf

    async def predict(
        self, rt: Runtime, texts: list[str], explain: bool
    ) -> tuple[str, list[dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        if self.model is None or loop.time() - self.checked_at > MODEL_CHECK_S:
            self.model = await loop.run_in_executor(None, model_in_service, rt)
            self.checked_at = loop.time()
        model, s = self.model, rt.settings
        run = functools.partial(
            predict.predict, model, texts, s.confidence_threshold, explain, s.never_auto_causes
        )
        if len(texts) <= INLINE_TEXTS:
            return model.version, run()
        return model.version, await loop.run_in_executor(None, run)


@v1.post("/predict", response_model=PredictResponse)
async def predict_texts(
    body: PredictRequest,
    rt: Rt,
    request: Request,
    _: Annotated[Key, Depends(require("predict"))],
) -> dict[str, Any]:
    """What causa would decide for each text: nothing is written."""
    texts = [body.text] if body.text is not None else (body.texts or [])
    s = rt.settings
    if len(texts) > s.api_max_batch:
        raise ApiError(
            422, "invalid", f"texts: more than {s.api_max_batch} in one request", "texts"
        )
    for i, text in enumerate(texts):
        field = "text" if body.text is not None else f"texts.{i}"
        try:
            _text(text, s.max_text_chars)
        except ValueError as exc:
            raise ApiError(422, "invalid", f"{field} {exc}", field) from None
    version, predictions = await request.app.state.serving.predict(rt, texts, body.explain)
    metrics.predicted(predictions)
    return {"model_version": version, "predictions": predictions}


@v1.post("/tickets/classify", response_model=Classified)
def classify_tickets(
    body: ClassifyRequest, rt: Rt, key: Annotated[Key, Depends(require("review"))]
) -> dict[str, Any]:
    """Classify these pending tickets now, through the queue (claim, predict, one write)."""
    model_in_service(rt)
    return classify_batch(
        rt.store,
        rt.models,
        rt.settings,
        worker=f"api:{key.name}",
        limit=len(body.numbers),
        numbers=body.numbers,
    )


@v1.get("/tickets", response_model=TicketPage)
def list_tickets(
    rt: Rt,
    _: Annotated[Key, Depends(require("review"))],
    state: Annotated[
        Literal["needs_review", "failed", "pending"], Query(alias="status")
    ] = "needs_review",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """Tickets of one state, oldest first; `next_cursor` gives the next page."""
    items = rt.store.tickets(state, limit, _cursor(cursor))
    return {"items": items, "next_cursor": _next_cursor(items, limit)}


@v1.get("/tickets/{number}", response_model=TicketDetail, responses=NOT_FOUND)
def get_ticket(
    number: Number, rt: Rt, _: Annotated[Key, Depends(require("review"))]
) -> dict[str, Any]:
    found = rt.store.ticket(number)
    if found is None:
        raise ApiError(404, "not_found", f"no ticket {number!r}")
    return found


@v1.post("/tickets/{number}/label", response_model=Labelled, responses=NOT_FOUND)
def label_ticket(
    number: Number,
    body: LabelRequest,
    rt: Rt,
    key: Annotated[Key, Depends(require("review"))],
) -> dict[str, Any]:
    """A person's cause (or a confirmation of causa's), as an edit of the ticket would be:
    a human label, recorded with the key's name, never overwritten by causa."""
    done = rt.store.label(number, body.cause, f"api:{key.name}")
    if not done["found"]:
        raise ApiError(404, "not_found", f"no ticket {number!r}")
    return {"number": number, "cause": body.cause, "changed": done["changed"]}


def _model_info(info: Any) -> dict[str, Any]:
    return {
        "version": info.version,
        "classes": info.classes,
        "metrics": info.metrics,
        "thresholds": info.thresholds,
        "created_at": info.created_at,
        "n_train": info.n_train,
        "decision": info.decision,
    }


@v1.get("/model", response_model=ModelInfo)
def get_model(rt: Rt, _: Annotated[Key, Depends(require("predict"))]) -> dict[str, Any]:
    """The model in service here."""
    return _model_info(model_in_service(rt).info)


@v1.get("/models", response_model=list[ListedModel])
def list_models(rt: Rt, _: Annotated[Key, Depends(require("review"))]) -> list[dict[str, Any]]:
    """The model in service first, then the backups, newest first."""
    return [{"kind": kind, **_model_info(info)} for kind, info in rt.registry.models()]


def _submit(rt: Runtime, key: Key, action: str, **kwargs: Any) -> dict[str, Any]:
    try:
        return admin.submit(rt, action, f"api:{key.name}", **kwargs)
    except ValueError as exc:
        raise ApiError(422, "invalid", str(exc)) from None


Admin = Annotated[Key, Depends(require("admin"))]


@v1.post("/admin/retrain", status_code=202, response_model=Queued)
def admin_retrain(rt: Rt, key: Admin) -> dict[str, Any]:
    return _submit(rt, key, "retrain")


@v1.post("/admin/rollback", status_code=202, response_model=Queued)
def admin_rollback(rt: Rt, key: Admin, body: RollbackRequest | None = None) -> dict[str, Any]:
    return _submit(
        rt, key, "rollback", **({"version": body.version} if body and body.version else {})
    )


@v1.post("/admin/reclassify", status_code=202, response_model=Queued)
def admin_reclassify(rt: Rt, key: Admin, body: ReclassifyRequest) -> dict[str, Any]:
    if body.numbers is None and body.model_version is None:
        raise ApiError(422, "invalid", "give numbers or model_version", "numbers")
    return _submit(rt, key, "reclassify", **body.model_dump(exclude_none=True))


@v1.post("/admin/requeue-failed", status_code=202, response_model=Queued)
def admin_requeue_failed(rt: Rt, key: Admin, body: NumbersRequest | None = None) -> dict[str, Any]:
    return _submit(
        rt, key, "requeue_failed", **(body.model_dump(exclude_none=True) if body else {})
    )


@v1.post("/admin/drift", status_code=202, response_model=Queued)
def admin_drift(rt: Rt, key: Admin) -> dict[str, Any]:
    return _submit(rt, key, "drift_report")


@v1.get("/tasks/{task_id}", response_model=TaskRun, responses=NOT_FOUND)
def get_task(task_id: TaskId, rt: Rt, _: Admin) -> dict[str, Any]:
    """What became of an admin task: queued, started, succeeded (with its summary) or failed."""
    found = rt.store.task(task_id)
    if found is None:
        raise ApiError(404, "not_found", f"no admin task {task_id!r} was queued through the API")
    return found


@v1.get("/status")
def get_status(rt: Rt, _: Annotated[Key, Depends(require("review"))]) -> dict[str, Any]:
    """What `causa status --json` reports."""
    return status.gather(rt)


probes = APIRouter(dependencies=[Depends(public)], responses=responses(413, 429, 500))


@probes.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@probes.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a part does not answer: it says why"}},
)
def readyz(rt: Rt) -> JSONResponse:
    """The database, the broker and a model answer."""
    checks: dict[str, str] = {}
    parts: dict[str, Callable[[], object]] = {
        "database": rt.store.pending_count,
        "broker": rt.redis.ping,
        "model": lambda: model_in_service(rt).version,
    }
    for name, check in parts.items():
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"{type(exc).__name__}: {exc}"[:200]
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)


@probes.get(
    "/metrics",
    response_class=Response,  # its own content type: only the one below is documented
    responses={
        200: {
            "description": "Prometheus' text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def get_metrics(rt: Rt) -> Response:
    """Prometheus metrics of every API process."""
    return metrics.exposition(rt)


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes ends in 413 in the API's error shape,
    whether it says its length or streams (then it is read here, at most `limit` bytes, and
    handed on). FastAPI's own max_body_size answers in plain text."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) <= self.limit:
                await self.app(scope, receive, send)
            else:
                await self._refuse(scope, receive, send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            more = message.get("more_body", False)
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def replay() -> Message:
            nonlocal whole
            if whole:
                message, whole = whole, {}
                return message
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = response(413, "too_large", f"the request body is over {self.limit} bytes")
        await answer(scope, receive, send)


def create_app(rt: Runtime | None = None, settings: Settings | None = None) -> FastAPI:
    """The app; with `rt` (tests), that runtime instead of one built at start-up."""
    settings = settings or (rt.settings if rt else load_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if rt is None:
            from worker import bootstrap  # lazy: a test app brings its own runtime
            from worker.app import app as celery
            from worker.queue import CeleryQueue

            app.state.runtime = bootstrap.build(settings, CeleryQueue(celery))
        else:
            app.state.runtime = rt
        app.state.guard = Guard(settings, app.state.runtime.store)
        app.state.signer = pages.signer_for(app.state.runtime)
        app.state.serving = Serving()
        # Loaded now, once: not by the first requests, each in a thread of its own, all at once.
        app.state.runtime.models.get()
        try:
            yield
        finally:
            if rt is None:
                app.state.runtime.close()

    app = FastAPI(
        title="causa",
        version="1",
        description="Predictions, the review queue, the model and admin tasks of causa.",
        lifespan=lifespan,
    )
    install(app)
    app.add_middleware(BodyLimit, limit=settings.api_max_body_bytes)
    app.add_middleware(metrics.Observe)
    app.include_router(v1)
    app.include_router(probes)
    pages.install(app)
    _documented_limits(app, settings)
    return app


def _documented_limits(app: FastAPI, s: Settings) -> None:
    """The schema states the limits in force, which are settings: the longest text, the
    largest batch."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            fields = generate()["components"]["schemas"]["PredictRequest"]["properties"]
            text, texts = fields["text"]["anyOf"][0], fields["texts"]["anyOf"][0]
            text["maxLength"] = texts["items"]["maxLength"] = s.max_text_chars
            texts["maxItems"] = s.api_max_batch
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def factory() -> FastAPI:
    """What uvicorn starts in each process (`causa serve`). With --workers 2 or more each is a
    new interpreter, which sets logging up as the command did: else its errors would reach
    structlog's default renderer, tracebacks with their local variables and nothing redacted."""
    settings = load_settings()
    logs.setup(settings)
    return create_app(settings=settings)
