"""The review desk: server-rendered pages under / for the people who work with causa (the
JSON API stays under /v1). Each page is a thin adapter around the flows the API uses: the
review queue labels through the same store call as `POST /v1/tickets/{n}/label`, admin
buttons queue the same admin tasks as `/v1/admin/*`.

Every page is sent with a Content-Security-Policy that allows only causa's own script and
style files: no inline script can run, whatever a ticket's text holds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader
from starlette.concurrency import run_in_threadpool

from api.guard import Guard, parsed_limit
from api.web import charts, session, text
from api.web.errors import PageError
from api.web.session import Visitor
from flows import accuracy, admin, dashboard
from flows.runtime import Runtime
from shared.contract import Event
from training import registry

log = structlog.get_logger("causa.web")
HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
QUEUE_PAGE = 200  # tickets in the queue's list view
MAX_CAUSE = 200
T = TypeVar("T")

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True
)
templates.filters["pct"] = lambda v: "–" if v is None else f"{v * 100:.0f}%"


class SignIn(Exception):
    """No session: the visitor is sent to the sign-in page."""


def render(
    request: Request, name: str, visitor: Visitor | None, status: int = 200, **context: Any
) -> HTMLResponse:
    page = templates.get_template(f"{name}.html").render(
        page=name,
        visitor=visitor,
        csrf=visitor.csrf if visitor else "",
        path=request.url.path,
        **context,
    )
    return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)


def _rt(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def _call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(function, *args, **kwargs)


async def _visitor(request: Request) -> Visitor | None:
    rt = _rt(request)
    return await _call(session.visitor, request, request.app.state.signer, rt.store, rt.settings)


async def signed_in(request: Request) -> Visitor:
    """A FastAPI dependency: the visitor of a valid session, within its key's rate limit (the
    same count as its API calls); else off to the sign-in page."""
    found = await _visitor(request)
    if found is None:
        raise SignIn()
    guard: Guard = request.app.state.guard
    limit = parsed_limit(found.rate_limit) if found.rate_limit else guard.default_limit
    await guard.limit(limit, f"key:{found.name}", fail_open=not found.admin)
    return found


async def admin_only(visitor: Annotated[Visitor, Depends(signed_in)]) -> Visitor:
    if not visitor.admin:
        raise PageError(403, f"Key {visitor.name!r} has the review scope: this needs an admin key.")
    return visitor


Signed = Annotated[Visitor, Depends(signed_in)]
Admin = Annotated[Visitor, Depends(admin_only)]


async def form(request: Request, visitor: Visitor) -> dict[str, Any]:
    """The posted form, once its CSRF token is checked."""
    data = await request.form()
    session.check_csrf(visitor.csrf, data.get("csrf_token"))
    return {k: v for k, v in data.items() if isinstance(v, str)}


def back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request) -> Response:
    return back("/review" if await _visitor(request) else "/login")


@router.get("/login")
async def login_page(request: Request) -> Response:
    token = session.login_token(request)
    response = render(request, "login", None, token=token)
    session.set_login_cookie(response, request, _rt(request).settings, token)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    guard: Guard = request.app.state.guard
    address = request.client.host if request.client else "unknown"
    await guard.limit(guard.public_limit, f"addr:{address}", fail_open=True)
    data = await request.form()
    session.check_csrf(request.cookies.get(session.LOGIN_COOKIE), data.get("csrf_token"))
    given = str(data.get("key") or "").strip()
    key = await guard.key(given) if given else None
    if key is None:
        log.info("desk sign-in refused", reason="unknown or revoked key")
        raise PageError(401, "Unknown or revoked key: paste a key from `causa api-key create`.")
    if not key.allows("review"):
        raise PageError(
            403, f"Key {key.name!r} has the predict scope: the desk needs a review or admin key."
        )
    response = back("/review")
    session.start(response, request, request.app.state.signer, key, given, _rt(request).settings)
    log.info("desk sign-in", key=key.name, scope=key.scope)
    return response


@router.post("/logout")
async def logout(request: Request, visitor: Signed) -> Response:
    await form(request, visitor)
    response = back("/login")
    session.end(response)
    return response


def _suggestions(ticket: dict[str, Any]) -> list[dict[str, Any]]:
    """The top 3 causes: the prediction, then the next ones."""
    out = []
    if ticket.get("predicted"):
        out.append({"cause": ticket["predicted"], "p": ticket.get("confidence")})
    for alt in ticket.get("alternatives") or []:
        if isinstance(alt, dict) and alt.get("cause") not in (None, *[o["cause"] for o in out]):
            out.append({"cause": alt["cause"], "p": alt.get("p")})
    return out[:3]


def _next_ticket(rt: Runtime, after: str | None, at: str | None) -> dict[str, Any] | None:
    cursor = None
    if after is not None:
        if at is None:
            found = rt.store.ticket(after)
            at = str(found["decided_at"]) if found and found.get("decided_at") else None
        cursor = {"at": at, "number": after} if at else None
    items = rt.store.tickets("needs_review", 1, cursor)
    return items[0] if items else None


@router.get("/review")
async def review(
    request: Request,
    visitor: Signed,
    after: str | None = None,
    at: str | None = None,
    done: str | None = None,
    cause: str | None = None,
) -> Response:
    rt = _rt(request)
    ticket = await _call(_next_ticket, rt, after, at)
    counts = await _call(rt.store.status_counts)
    # where the reviewer is in the queue (after skipping): a label goes on from there
    context: dict[str, Any] = {
        "ticket": ticket,
        "done": done,
        "done_cause": cause,
        "cursor": {"after": after, "at": at} if after and at else {},
        "waiting": counts.get("needs_review", 0),
        "estimated": "needs_review" in counts.get("estimated", []),
    }
    if ticket is not None:
        terms = [t.get("term", "") for t in ticket.get("explanation") or [] if isinstance(t, dict)]
        shown, rest = text.split(ticket.get("text") or "")
        context.update(
            shown=text.pieces(shown, terms),
            rest=text.pieces(rest, terms) if rest else [],
            rest_chars=len(rest),
            suggestions=_suggestions(ticket),
            causes=sorted(await _call(accuracy.model_classes, rt)),
            skip=f"/review?{urlencode({'after': ticket['number'], 'at': ticket['at']})}",
        )
    return render(request, "review", visitor, **context)


@router.post("/review/{number}/label")
async def label(request: Request, number: str, visitor: Signed) -> Response:
    data = await form(request, visitor)
    cause = data.get("cause", "").strip()
    if not cause or len(cause) > MAX_CAUSE or "\x00" in cause:
        raise PageError(422, f"A cause is 1 to {MAX_CAUSE} characters: got {len(cause)}.")
    done = await _call(_rt(request).store.label, number, cause, f"web:{visitor.name}")
    if not done["found"]:
        raise PageError(404, f"No ticket {number!r}: it may have been deleted.")
    log.info("desk label", key=visitor.name, changed=done["changed"])
    where = {k: data[k] for k in ("after", "at") if data.get(k)}
    return back(f"/review?{urlencode({**where, 'done': number, 'cause': cause})}")


@router.get("/review/list")
async def queue(request: Request, visitor: Signed) -> Response:
    items = await _call(_rt(request).store.tickets, "needs_review", QUEUE_PAGE, None)
    for item in items:
        item["preview"] = text.pieces(text.split(item.get("text") or "", 160)[0], [])
    return render(request, "queue", visitor, items=items, limit=QUEUE_PAGE)


@router.get("/failed")
async def failed(request: Request, visitor: Signed) -> Response:
    items = await _call(_rt(request).store.tickets, "failed", QUEUE_PAGE, None)
    for item in items:
        item["preview"] = text.pieces(text.split(item.get("text") or "", 160)[0], [])
        item["error_pieces"] = text.pieces(item.get("error") or "", [])
    return render(request, "failed", visitor, items=items, limit=QUEUE_PAGE)


async def _submit(request: Request, visitor: Visitor, action: str, **kwargs: Any) -> str:
    try:
        queued = await _call(admin.submit, _rt(request), action, f"web:{visitor.name}", **kwargs)
    except ValueError as exc:
        raise PageError(422, str(exc)) from None
    return str(queued["task_id"])


@router.post("/failed/requeue")
async def requeue(request: Request, visitor: Admin) -> Response:
    data = await form(request, visitor)
    task = await _submit(request, visitor, "requeue_failed", numbers=[data.get("number", "")])
    return back(f"/failed?task={quote(task)}")


@router.get("/dashboard")
async def dashboard_page(request: Request, visitor: Signed, days: int = 7) -> Response:
    rt = _rt(request)
    days = min(max(days, 1), 90)
    data = await _call(dashboard.gather, rt, days)
    return render(
        request, "dashboard", visitor, days=days, charts=draw(data, rt), accuracy=data["accuracy"]
    )


def draw(data: dict[str, Any], rt: Runtime) -> dict[str, Any]:
    """The dashboard's charts as SVG (None: no data for that one yet)."""
    s = rt.settings
    hours = [dashboard.hour_label(h) for h in data["hours"]]
    out: dict[str, Any] = {}
    out["decisions"] = data["decisions"] and charts.stacked_bars(
        "chart-decisions", "Decisions per hour, by verdict", hours, data["decisions"]
    )
    out["backlog"] = any(data["backlog"]) and charts.lines(
        "chart-backlog",
        "Tickets waiting at the end of each hour",
        hours,
        {"backlog": data["backlog"]},
    )
    out["causes"] = data["causes"] and charts.stacked_bars(
        "chart-causes",
        "Share of each cause, by day",
        [dashboard.day_label(d) for d in data["days"]],
        data["causes"],
        percent=True,
    )
    bins = [f"{i * 5}%" for i in range(dashboard.BINS)]
    out["confidence"] = any(map(any, data["confidence"].values())) and charts.stacked_bars(
        "chart-confidence",
        "The model's confidence, by verdict",
        bins,
        data["confidence"],
        marker=s.confidence_threshold,
        marker_label=f"threshold {s.confidence_threshold:.2f}",
    )
    causes = data["accuracy"].get("causes") or {}
    out["accuracy"] = causes and charts.meters(
        "chart-accuracy",
        "Live precision per cause, against its target",
        [
            charts.Meter(
                cause,
                row.get("precision"),
                row.get("target"),
                f"{row.get('reviewed', 0)} of {row.get('decided', 0)} reviewed",
                bool(row.get("below_target")),
            )
            for cause, row in sorted(causes.items())
        ],
    )
    drift = data["drift"]
    out["drift"] = drift and charts.lines(
        "chart-drift",
        "Drift: PSI and the share of unknown words",
        [dashboard.hour_label(d["at"]) for d in drift],
        {"PSI": [d["psi"] for d in drift], "unknown words": [d["unknown_words"] for d in drift]},
        threshold=s.drift_threshold,
        threshold_label=f"PSI threshold {s.drift_threshold}",
    )
    timeline = data["timeline"]
    out["models"] = timeline and charts.lines(
        "chart-models",
        "Model timeline: trainings, rollbacks, thresholds",
        [dashboard.hour_label(t["at"]) for t in timeline],
        {"macro-F1": [t["macro_f1"] for t in timeline]},
        point_labels=[t["label"] for t in timeline],
    )
    return out


@router.get("/models")
async def models_page(request: Request, visitor: Signed, task: str | None = None) -> Response:
    rt = _rt(request)
    listed = await _call(rt.registry.models)
    trainings = await _call(
        rt.store.event_history, [Event.TRAINING], "1970-01-01T00:00:00+00:00", 20
    )
    current = next((info for kind, info in listed if kind == "current"), None)
    return render(
        request,
        "models",
        visitor,
        models=listed,
        current=current,
        trainings=list(reversed(trainings)),
        threshold=rt.settings.confidence_threshold,
        never_auto=sorted(rt.settings.never_auto_causes),
        task=task,
    )


@router.post("/models/retrain")
async def retrain(request: Request, visitor: Admin) -> Response:
    data = await form(request, visitor)
    if data.get("confirm") != "yes":
        current = await _call(_rt(request).registry.current)
        return render(request, "confirm", visitor, action="retrain", current=current)
    return back(f"/models?task={quote(await _submit(request, visitor, 'retrain'))}")


@router.post("/models/rollback")
async def rollback(request: Request, visitor: Admin) -> Response:
    data = await form(request, visitor)
    rt = _rt(request)
    version = data.get("version") or None
    current = await _call(rt.registry.current)
    if data.get("confirm") != "yes":
        backups = [info for kind, info in await _call(rt.registry.models) if kind == "backup"]
        target = next((b for b in backups if version in (None, b.version)), None)
        return render(
            request,
            "confirm",
            visitor,
            action="rollback",
            current=current,
            target=target,
            version=version or "",
        )
    kwargs: dict[str, Any] = {"version": version} if version else {}
    if current is not None:
        kwargs["replacing"] = current.label  # a second click changes nothing more
    return back(f"/models?task={quote(await _submit(request, visitor, 'rollback', **kwargs))}")


@router.get("/models/task/{task_id}")
async def task_state(request: Request, task_id: str, visitor: Admin) -> Response:
    found = await _call(_rt(request).store.task, task_id)
    if found is None:
        return JSONResponse({"state": "unknown"}, status_code=404)
    return JSONResponse(
        {k: found.get(k) for k in ("id", "name", "state", "error", "summary")},
        headers={"Cache-Control": "no-store"},
    )


def install(app: FastAPI) -> None:
    """Add the desk to the app: its pages, its files under /static, its error pages."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(SignIn)
    async def _sign_in(request: Request, exc: SignIn) -> Response:
        return back(f"/login?{urlencode({'next': request.url.path})}")

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> Response:
        found = None
        if request.cookies.get(session.SESSION_COOKIE):
            try:
                found = await _visitor(request)
            except Exception:  # the error page itself must not fail on the database
                found = None
        return render(request, "error", found, status=exc.status, message=exc.message)


def signer_for(rt: Runtime) -> Any:
    return session.serializer(registry.signing_key(rt.settings))
