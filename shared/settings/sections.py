"""causa's settings by what they are about, one class per section.

`Settings` (shared/settings/__init__.py) is all of them at once and the only reader of the
environment; a function that needs one concern takes its section (`retry.policy` takes
`Retries`, `notify.channels` takes `Notifications`), and a `Settings` is accepted there.
Every field keeps its environment name: `CAUSA_<FIELD>`, or the conventional name given as
its alias (`DATABASE_URL`, `SMTP_HOST`, ...).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator

# A name causa quotes into its SQL: letters, digits and _ (\Z: no newline slips in at the end),
# at most PostgreSQL's 63 bytes (a longer name is cut short, and names another table).
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
# Spaces and control characters: a URL has them percent-encoded, or it is not one.
UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
FAMILIES = ("svc", "logreg", "sgd", "cnb", "xgb")
# A signing key shorter than this is guessable (32 hex characters: 128 bits).
MIN_SIGNING_KEY_CHARS = 32


class Connections(BaseModel):
    """Where things are: the database, the broker, Sentry, MLflow, files."""

    database_url: SecretStr | None = Field(None, validation_alias="DATABASE_URL")
    redis_url: SecretStr | None = Field(None, validation_alias="REDIS_URL")
    supabase_url: str | None = Field(None, validation_alias="SUPABASE_URL")
    supabase_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_KEY")
    )
    sentry_dsn: SecretStr | None = Field(None, validation_alias="SENTRY_DSN")
    mlflow_tracking_uri: str | None = Field(None, validation_alias="MLFLOW_TRACKING_URI")
    # A call to Supabase's REST API that has not answered in this many seconds has failed (a
    # transient error: retried, and counted by the breaker), long before the task's limit.
    rest_timeout: float = Field(10.0, gt=0)
    home: Path = Path(".causa")
    models_dir: Path = Path("models")
    # A directory every machine can read (NFS, a shared volume): promotions are published
    # there and workers copy new models from it, checksum verified. None: models_dir only.
    model_store: Path | None = None
    # Signs every model manifest (HMAC-SHA256); the same on every machine. Required with
    # model_store; without it, a key made once in home/model-signing.key.
    model_signing_key: SecretStr | None = None

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        check_database_url(value.get_secret_value())
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        check_redis_url(value.get_secret_value())
        return value

    @field_validator("supabase_url")
    @classmethod
    def _supabase_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        check_supabase_url(value)
        return value

    @field_validator("model_signing_key")
    @classmethod
    def _long_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SIGNING_KEY_CHARS:
            raise ValueError(
                f"CAUSA_MODEL_SIGNING_KEY has {len(value.get_secret_value())} characters, fewer"
                f" than {MIN_SIGNING_KEY_CHARS}: make a random one with"
                " `python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        return value


class TicketTable(BaseModel):
    """The user's ticket table: its name and the columns causa reads and writes."""

    table: str = "tickets"
    number_column: str = "number"
    text_columns: str = "short_description,description"
    cause_column: str = "causa"
    # The causa_ result columns (status, source, predicted, confidence, model version,
    # decided at) on the ticket table, for people's own tools. False: causa writes only the
    # cause; the view causa.tickets joins tickets and their latest decision.
    result_columns: bool = True

    @field_validator("table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) > 2 or not all(IDENTIFIER.match(p) for p in parts):
            raise ValueError(
                f"{value!r} is not a table name: use up to 63 letters, digits and _ ,"
                " optionally schema-qualified (public.tickets)"
            )
        return value

    @field_validator("number_column", "cause_column")
    @classmethod
    def _column_name(cls, value: str) -> str:
        if not IDENTIFIER.match(value):
            raise ValueError(f"{value!r} is not a column name: use up to 63 letters, digits and _")
        return value

    @field_validator("text_columns")
    @classmethod
    def _column_list(cls, value: str) -> str:
        names = [c.strip() for c in value.split(",") if c.strip()]
        bad = [c for c in names if not IDENTIFIER.match(c)]
        if not names or bad:
            raise ValueError(
                f"{value!r}: give one or more column names (up to 63 letters, digits and _"
                " each) separated by commas"
            )
        return ",".join(names)

    @property
    def text_column_list(self) -> list[str]:
        return self.text_columns.split(",")


class Queue(BaseModel):
    """The queue: batches, leases, time limits, what a decision needs."""

    # 1,000 rows per claim keeps one claim/predict/apply round near 100 ms: large enough that
    # per-call overhead vanishes, small enough that a lost worker strands little work.
    batch_size: int = Field(1000, ge=1, le=10_000)
    # The lease must outlive the task's hard time limit plus the longest retry backoff.
    lease_seconds: int = Field(300, ge=2)
    # Beat's safety net: how often pending tickets and expired leases are looked for.
    poll_interval: float = Field(5.0, gt=0)
    confidence_threshold: float = Field(0.6, ge=0.0, le=1.0)
    # Causes never applied automatically: always needs_review, whatever the confidence
    # (comma-separated, as the model names them).
    never_auto: str = ""
    # Store with each decision the terms that raised its cause (on a batch of 1,000, some
    # 6-14 % more prediction time with the bootstrap model, 7-13 % with the vote).
    explain: bool = True
    max_attempts: int = Field(3, ge=1)
    classify_since: datetime | None = None
    mode: Literal["apply", "suggest"] = "apply"
    # A ticket's text is cut to this many characters where the claim builds it (in SQL):
    # a 1 MB description costs no more than a normal one.
    max_text_chars: int = Field(20_000, ge=100)
    # Hard limit of one classify task; soft limit is 80 % of it.
    task_time_limit: int = Field(120, ge=1)
    # Redis redelivers an unacknowledged task after this long (kombu's visibility_timeout).
    visibility_timeout: int = Field(3600, ge=1)
    # Listener: how long notifications are gathered before tasks are enqueued.
    listen_window_ms: int = Field(10, ge=0, le=5000)
    # While the database fails, one probe at most this often (the circuit breaker).
    breaker_probe_interval: float = Field(10.0, gt=0)
    # Another beat may take over this long after the first one died (the single-beat lock).
    beat_lock_ttl: float = Field(30.0, ge=2)
    worker_concurrency: int | None = None  # None: one process per core

    @property
    def soft_time_limit(self) -> int:
        return max(1, int(self.task_time_limit * 0.8))

    @property
    def never_auto_causes(self) -> frozenset[str]:
        return frozenset(c.strip() for c in self.never_auto.split(",") if c.strip())


class Retries(BaseModel):
    """Retries of database calls on transient errors (tenacity, shared/retry.py)."""

    retry_attempts: int = Field(4, ge=0)  # retries after the first try
    retry_initial: float = Field(1.0, ge=0)  # first delay, seconds; doubles every retry
    retry_max: float = Field(8.0, ge=0)  # longest single delay, seconds
    retry_jitter: float = Field(0.5, ge=0)  # up to this many random seconds added

    @property
    def longest_backoff(self) -> float:
        """The sum of every retry delay in the worst case: what one write can wait in all."""
        delays = (
            min(self.retry_initial * 2**i, self.retry_max) + self.retry_jitter
            for i in range(self.retry_attempts)
        )
        return float(sum(delays))


def parse_targets(value: str) -> dict[str, float]:
    """ "Cause=0.95,Other=0.8" as {cause: target}; ValueError naming the part that is not."""
    targets: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        cause, _, number = part.rpartition("=")
        try:
            target = float(number)
        except ValueError:
            target = -1.0
        if not cause.strip() or not 0 < target <= 1:
            raise ValueError(
                f"CAUSA_TARGET_PRECISION_BY_CAUSE: {part!r} is not CAUSE=PRECISION with a"
                " precision above 0 and at most 1 (e.g. Accesos=0.97,Hardware=0.85)"
            )
        targets[cause.strip()] = target
    return targets


class Training(BaseModel):
    """Training, comparison and the model registry."""

    seed: int = 42  # splits, Optuna's sampler and every estimator
    # when beat runs tasks.training.retrain (minute hour day-of-month month day-of-week)
    retrain_cron: str = "0 2 * * *"
    # macro-F1 a challenger must gain to replace the champion (a gain above 1 cannot be)
    min_improvement: float = Field(0.01, ge=0.0, le=1.0)
    min_f1: float = Field(0.5, ge=0.0, le=1.0)  # floor for the first model
    min_class_count: int = Field(30, ge=2)  # classes with fewer labels are left out
    target_precision: float = Field(0.9, gt=0.0, le=1.0)  # per-class thresholds aim at this
    # Per-cause overrides of target_precision: "Accesos=0.97,Hardware=0.85".
    target_precision_by_cause: str = ""
    n_trials: int = Field(30, ge=1)  # Optuna trials per training
    # Model families the search tries (svc, logreg, sgd, cnb, xgb). XGBoost is off by default:
    # on TF-IDF text it fits far slower than the linear models and did not beat them.
    search_families: str = "svc,logreg,sgd,cnb"
    search_timeout: float = Field(900.0, gt=0)  # seconds; a safety net, not the budget
    min_tickets_per_s: float = Field(3_000.0, gt=0)  # inference on one core a model must reach
    keep_backups: int = Field(10, ge=1)
    # 1: the best single model. 2-3: a stack of the best families on one TF-IDF, about
    # +0.003 macro-F1 on the reference data (not significant) for twice the fit time and memory.
    stack_members: int = Field(1, ge=1, le=4)
    # The challenger is a soft vote of three models with a measured recipe, no search (word
    # SVM, character n-gram SVM, word logistic regression: training.candidates.vote) with
    # class factors learned for macro-F1 (training.candidates.Biased); false: the search's
    # best model, or the stack above.
    vote: bool = True
    # The model that serves is fitted again on every label, the holdout too, once it has
    # won on the holdout; the holdout-trained one is kept as its twin for comparisons.
    refit_all: bool = True
    # Processes a training fits in side by side (the folds of the class factors, a vote's
    # members: joblib); 1: all in the training's own process. Where the same cores classify,
    # a training at 2 slows classification while it runs.
    training_jobs: int = Field(2, ge=1)

    _cron = field_validator("retrain_cron")(lambda value: check_cron(value))

    @field_validator("target_precision_by_cause")
    @classmethod
    def _targets(cls, value: str) -> str:
        parse_targets(value)
        return value

    @property
    def precision_targets(self) -> dict[str, float]:
        """The per-cause precision targets that override target_precision."""
        return parse_targets(self.target_precision_by_cause)

    @field_validator("search_families")
    @classmethod
    def _families(cls, value: str) -> str:
        names = [f.strip() for f in value.split(",") if f.strip()]
        unknown = [f for f in names if f not in FAMILIES]
        if not names or unknown:
            raise ValueError(f"CAUSA_SEARCH_FAMILIES={value!r}: choose from {', '.join(FAMILIES)}")
        return ",".join(names)


class Logging(BaseModel):
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON when stdout is not a terminal
    log_file: Path | None = None  # also write JSON lines here, rotated and gzip-compressed
    log_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)  # rotate the log file at this size
    log_backups: int = Field(5, ge=0)  # compressed rotated files kept
    # Mask personal data (e-mail and IP addresses, card and phone numbers: shared.text.mask)
    # in what causa keeps and sends: log lines, Sentry events, notifications, and the
    # training data set's snapshots. The features always see masked text.
    mask_pii: bool = True


class Notifications(BaseModel):
    """Where notifications go (Apprise URLs and the familiar variables) and how often."""

    notify_urls: str = Field(  # Apprise URLs, separated by commas or spaces
        "", validation_alias=AliasChoices("CAUSA_NOTIFY_URLS", "NOTIFY_URLS")
    )
    slack_webhook_url: SecretStr | None = Field(None, validation_alias="SLACK_WEBHOOK_URL")
    discord_webhook_url: SecretStr | None = Field(None, validation_alias="DISCORD_WEBHOOK_URL")
    telegram_bot_token: SecretStr | None = Field(None, validation_alias="TELEGRAM_BOT_TOKEN")
    telegram_chat_id: str | None = Field(None, validation_alias="TELEGRAM_CHAT_ID")
    smtp_host: str | None = Field(None, validation_alias="SMTP_HOST")
    smtp_port: int = Field(587, validation_alias="SMTP_PORT")
    smtp_user: str | None = Field(None, validation_alias="SMTP_USER")
    smtp_password: SecretStr | None = Field(None, validation_alias="SMTP_PASSWORD")
    email_from: str | None = Field(None, validation_alias="EMAIL_FROM")
    email_to: str | None = Field(None, validation_alias="EMAIL_TO")  # commas for several
    # The same error, or the same alarm, is notified at most once per this many seconds.
    notify_every: float = Field(900.0, ge=0)


class Monitoring(BaseModel):
    """Flower, the watch's alarms and the drift report."""

    flower_user: str = "causa"
    flower_password: SecretStr | None = None  # None: a random one, printed once at start
    # How often beat runs the watch task: stalls, dead letters, worker errors.
    watch_interval: float = Field(60.0, gt=0)
    # The alarm that catches every stall: the oldest pending ticket is older than this.
    stall_after: float = Field(900.0, gt=0)
    drift_cron: str = "15 * * * *"  # when beat runs the drift report
    drift_window_hours: float = Field(24.0, gt=0)  # predictions compared with the holdout
    drift_min_tickets: int = Field(200, ge=1)  # fewer recent predictions: no verdict
    drift_threshold: float = Field(0.2, gt=0)  # PSI above this is drift (0.1 slight, 0.2 major)
    drift_retrain: bool = False  # retrain when drift is detected
    # Retention, applied by a periodic task in small batches: decisions and events older
    # than this are deleted (the newest event of each kind and install records stay).
    decision_retention_days: int = Field(180, ge=1, le=36_500)  # at most a century
    event_retention_days: int = Field(180, ge=1, le=36_500)
    # MLflow training runs (each with its model file) older than this are deleted, but for
    # those of the models in the registry.
    run_retention_days: int = Field(180, ge=1)
    retention_cron: str = "30 3 * * *"  # when beat runs the retention task
    # Live accuracy (flows/accuracy.py): per cause, the precision of the model's decisions
    # that people reviewed over the last this many days, against the cause's target.
    accuracy_window_days: int = Field(7, ge=1, le=365)
    accuracy_cron: str = "45 * * * *"  # when beat computes, stores and checks it
    # A cause is reported below target when its precision is lower than its target by more
    # than this, over at least accuracy_min_reviewed reviewed decisions (fewer say too little:
    # 3 wrong of 10 is noise). The same minimum holds for `causa thresholds --suggest`.
    accuracy_margin: float = Field(0.05, ge=0.0, lt=1.0)
    accuracy_min_reviewed: int = Field(20, ge=1)

    _cron = field_validator("drift_cron", "retention_cron", "accuracy_cron")(
        lambda value: check_cron(value)
    )


class Api(BaseModel):
    """The HTTP API (`causa serve`) and the workers' metrics."""

    # Requests a key may make (each key's own limit, when it has one, replaces this); the
    # login-free endpoints (/healthz, /readyz, /metrics) are limited per client address.
    api_rate_limit: str = "600/minute"
    api_public_rate_limit: str = "600/minute"
    api_max_batch: int = Field(1000, ge=1, le=10_000)  # texts one predict request may carry
    api_max_body_bytes: int = Field(5_000_000, ge=1_000)  # a larger request body: 413
    # How long a looked-up key is trusted before it is looked up again: a revocation takes
    # effect within this long; 0 looks up on every request.
    api_key_cache_s: float = Field(5.0, ge=0, le=300)
    # How long a review desk session lasts after signing in (then the key is asked again).
    web_session_minutes: int = Field(480, ge=1, le=10_080)
    # Session cookies are Secure over HTTPS; behind a proxy that ends TLS causa sees plain
    # HTTP, so say so here.
    web_secure_cookies: bool = False
    # The port a worker serves Prometheus metrics on (its pool processes aggregated); None:
    # no metrics endpoint on the workers.
    metrics_port: int | None = Field(None, ge=1, le=65_535)

    _rate = field_validator("api_rate_limit", "api_public_rate_limit")(
        lambda value: check_rate_limit(value)
    )


def check_rate_limit(value: str) -> str:
    """A rate limit as the `limits` library reads it, or a ValueError that shows the form."""
    from limits import parse  # lazy: only what uses a rate limit pays for the import

    try:
        parse(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a rate limit: give e.g. 600/minute, 10/second, 1000/hour"
        ) from None
    return value


def check_cron(value: str) -> str:
    """A five-field cron expression, or a ValueError that shows the form."""
    if len(value.split()) != 5:
        raise ValueError(
            f"{value!r} is not a cron expression: give five fields, minute hour"
            " day-of-month month day-of-week (e.g. '0 2 * * *' for 02:00 every day)"
        )
    return value


# The messages below never show the URL: it may hold a password. (Spaces, a wrong scheme or a
# port are what people get wrong; libpq's own words would quote the password back.)
PORT_RANGE = "from 1 to 65535"


def check_database_url(url: str) -> None:
    """A PostgreSQL URL (postgresql://user:password@host:5432/database) or libpq's key=value
    form (host=... dbname=...), as libpq reads it; else a ValueError that says what is wrong."""
    if scheme := SCHEME.match(url):
        if scheme[1] not in ("postgresql", "postgres"):
            raise ValueError(
                f"a {scheme[1][:20]}:// URL, not postgresql://user:password@host:5432/database"
            )
        if UNSAFE.search(url):
            raise ValueError("spaces or control characters in it: percent-encode them (%20)")
    elif CONTROL.search(url):
        raise ValueError("control characters in it: give a PostgreSQL URL or key=value pairs")
    try:
        params = conninfo_to_dict(url)
    except (psycopg.Error, ValueError):  # not shown: libpq's message quotes the value
        raise ValueError(
            "libpq cannot read it: give postgresql://user:password@host:5432/database"
            " (percent-encode @ : / in the password) or key=value pairs"
        ) from None
    port = str(params.get("port") or "")
    if not all(p == "" or (p.isdigit() and 1 <= int(p) <= 65535) for p in port.split(",")):
        raise ValueError(f"port {port[:20]!r} is not {PORT_RANGE}")


def check_redis_url(url: str) -> None:
    """redis://[:password@]host[:port][/db] or rediss:// (TLS): what both Celery's broker and
    the breaker's Redis client read. memory:// (Celery's broker inside one process) is what
    tests build an app with."""
    if url == "memory://":
        return
    path = _check_url(url, ("redis", "rediss"))
    if not re.fullmatch(r"/?[0-9]*", path):
        raise ValueError("its path is not a database number: give redis://host:6379/0")


def check_supabase_url(url: str) -> None:
    """The project's https:// URL (http:// for a local Supabase), without credentials: the
    key goes in SUPABASE_SERVICE_ROLE_KEY. The message shows the URL without them."""
    shown = re.sub(r"//[^/?#]*@", "//***@", url)[:80]
    if shown != url[:80]:
        raise ValueError(
            f"SUPABASE_URL={shown!r} holds credentials: give the project URL alone"
            " (https://PROJECT.supabase.co) and the key in SUPABASE_SERVICE_ROLE_KEY"
        )
    try:
        _check_url(url, ("https", "http"))
    except ValueError as exc:
        raise ValueError(f"SUPABASE_URL={shown!r}: {exc}") from None


def _check_url(url: str, schemes: tuple[str, ...]) -> str:
    """A URL of one of `schemes` with a host, without spaces or control characters, with a
    valid port; its path."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a bracket left open, a port that is no number
        raise ValueError(f"not a URL with a port {PORT_RANGE}") from None
    if port == 0:
        raise ValueError(f"not a URL with a port {PORT_RANGE}")
    if parts.scheme not in schemes or not url.startswith(f"{parts.scheme}://"):
        raise ValueError(f"not a {' or '.join(s + '://' for s in schemes)} URL")
    if UNSAFE.search(url):
        raise ValueError("spaces or control characters in it: percent-encode them (%20)")
    if not parts.hostname:
        raise ValueError(f"no host in it: give {schemes[0]}://HOST")
    return parts.path
