"""The `causa` command line: commands grouped by concern, each a thin adapter that parses
its input, calls one flow and renders the result (worker/cli/render.py).

Every command goes through two places here: the callback (`start`), which reads the settings
and sets logging up from them before the command runs, and `CausaGroup.invoke`, which turns a
ConfigError raised anywhere in a command (an invalid setting, a database causa was never
migrated into) into one line, `error: ...`, and exit code 2 (its traceback with --debug)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from shared.settings import ConfigError
from worker.cli import admin, backfill, common, models, ops, run, serve

DEBUG = "causa.debug"
ARGS = "causa.args"
# Commands whose output is their answer: the console logs only errors (the file logs all).
CONSOLE_LEVEL = {"health": "ERROR"}


class CausaGroup(TyperGroup):
    """The root command: a ConfigError from any command (or its start) becomes one line.
    (`ctx` is typed Any: typer's Context class lives in its private copy of click.)"""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta[ARGS] = list(args)  # the callback no longer sees them (click >= 8.2)
        result: list[str] = super().parse_args(ctx, args)
        return result

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise common.report(exc, bool(ctx.meta.get(DEBUG))) from None


app = typer.Typer(
    cls=CausaGroup,
    no_args_is_help=True,
    add_completion=False,
    help="causa: classify IT service-desk tickets in the background.",
)


@app.callback()
def start(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of a configuration error.")
    ] = False,
) -> None:
    """causa: classify IT service-desk tickets in the background."""
    ctx.meta[DEBUG] = debug
    args: list[str] = ctx.meta.get(ARGS, [])
    if set(args) & set(ctx.help_option_names):
        return  # `causa status --help` shows the help, whatever the settings
    name = ctx.invoked_subcommand or ""
    common.start(_command_path(ctx, name, args), console_level=CONSOLE_LEVEL.get(name))


def _command_path(ctx: typer.Context, name: str, args: list[str]) -> str:
    """`causa status`, `causa admin drift`: the command, never its arguments."""
    path = ["causa", name]
    group = ctx.command.get_command(ctx, name) if isinstance(ctx.command, TyperGroup) else None
    if isinstance(group, TyperGroup) and name in args:
        rest = args[args.index(name) + 1 :]
        if rest and not rest[0].startswith("-"):
            path.append(rest[0])
    return " ".join(path)


for command in (*run.COMMANDS, *models.COMMANDS, *ops.COMMANDS, *backfill.COMMANDS):
    app.command()(command)
app.command()(serve.serve)
app.add_typer(admin.app, name="admin")
app.add_typer(serve.api_keys, name="api-key")
