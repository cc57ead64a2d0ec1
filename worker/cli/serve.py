"""`causa serve` (the HTTP API) and `causa api-key` (its keys)."""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Annotated

import typer

from flows import keys
from worker import metrics
from worker.cli import render
from worker.cli.common import console, fail, settings
from worker.cli.common import runtime as make_runtime

# The app uvicorn starts in each process, by name: worker/ sits below api/ and imports none of it.
APP = "api.app:factory"

api_keys = typer.Typer(help="The HTTP API's keys: create (shown once), list, revoke.")


def serve(
    host: Annotated[str, typer.Option(help="The address to bind (0.0.0.0: every interface).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="API processes.")] = 1,
) -> None:
    """Serve the HTTP API (docs at /docs, schema at /openapi.json): predictions, the review
    queue, the model, admin tasks, status; /healthz, /readyz and /metrics without a key."""
    import uvicorn  # lazy: start-up time of the other commands

    s = settings()
    if s.database_url is None:
        s.require_supabase()  # or say what to set
    s.require_redis_url()
    metrics.prepare(s.home, f"api-{port}")  # every process's metrics summed
    config = uvicorn.Config(
        APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,  # causa's logging, set up in each process
        access_log=False,  # requests are counted in /metrics; errors are logged
        proxy_headers=False,
    )
    if workers == 1:
        uvicorn.Server(config).run()
        return
    from uvicorn.supervisors import Multiprocess

    # The processes share one listening socket, which uvicorn makes without TCP_NODELAY:
    # every answer then waited some 40 ms for the client's delayed ACK. Accepted
    # connections inherit the option from the listening socket (Linux).
    sock = config.bind_socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[sock]).run()


@api_keys.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key (letters, digits, _.@-).")],
    scope: Annotated[
        str, typer.Option(help="predict, review (implies predict) or admin (implies both).")
    ] = "predict",
    rate_limit: Annotated[
        str | None,
        typer.Option(help="e.g. 600/minute; default CAUSA_API_RATE_LIMIT."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line.")] = False,
) -> None:
    """Make a key and print it, once: only its hash is stored."""
    rt = make_runtime(settings())
    try:
        made = keys.create(rt.store, name, scope, rate_limit)
    except ValueError as exc:
        raise fail(str(exc)) from None
    finally:
        rt.close()
    if as_json:
        print(json.dumps(made))
        return
    console.print(f"API key {name!r} ({', '.join(made['scopes'])}); it is shown only now:")
    print(made["key"])


@api_keys.command("list")
def list_keys(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every key: name, scope, rate limit, created, last used, revoked (never the key)."""
    rt = make_runtime(settings())
    try:
        listed = rt.store.api_keys()
    finally:
        rt.close()
    if as_json:
        print(json.dumps(listed, default=str))
        return
    columns = ("name", "scope", "rate_limit", "created_at", "last_used_at", "revoked_at")
    render.table("API keys", columns, ([str(k[c] or "—") for c in columns] for k in listed))


@api_keys.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key: refused within CAUSA_API_KEY_CACHE_S seconds by every API process."""
    rt = make_runtime(settings())
    try:
        revoked = rt.store.revoke_api_key(name)
    finally:
        rt.close()
    if not revoked:
        raise fail(f"no active API key named {name!r} (`causa api-key list`)")
    console.print(f"API key {name!r} revoked")
