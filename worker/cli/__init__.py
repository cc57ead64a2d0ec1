"""The `causa` command line: commands grouped by concern, each a thin adapter that parses
its input, calls one flow and renders the result (worker/cli/render.py)."""

from __future__ import annotations

import typer

from worker.cli import admin, models, ops, run

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="causa: classify IT service-desk tickets in the background.",
)
for command in (*run.COMMANDS, *models.COMMANDS, *ops.COMMANDS):
    app.command()(command)
app.add_typer(admin.app, name="admin")
