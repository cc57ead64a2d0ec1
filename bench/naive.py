"""The naive approach, for comparison only: one Celery task and one UPDATE per ticket, which
writes the cause and the result columns of the ticket's row (no work item, no decision log).

Run by bench/throughput.py as `python -m celery -A bench.naive worker`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import psycopg

from worker.app import app


@functools.cache
def connection() -> psycopg.Connection[Any]:
    conn = psycopg.connect(app.runtime.settings.require_database_url(), autocommit=True)
    conn.execute(
        "SELECT set_config('causa.applying', 'on', false)"
    )  # a model write, not a person's
    return conn


@app.task(name="bench.naive.classify_one")
def classify_one(number: str) -> None:
    model = app.runtime.models.get()
    assert model is not None
    conn = connection()
    row = conn.execute(
        "SELECT concat_ws(' ', short_description, description) FROM tickets WHERE number = %s",
        [number],
    ).fetchone()
    assert row is not None
    p = model.predict_proba([row[0]])[0]
    best = int(np.argmax(p))
    conn.execute(
        "UPDATE tickets SET causa = %s, causa_status = 'classified', causa_source = 'model',"
        " causa_predicted = %s, causa_confidence = %s, causa_model_version = %s,"
        " causa_decided_at = clock_timestamp()"
        " WHERE number = %s",
        [model.classes[best], model.classes[best], float(p[best]), model.version, number],
    )
