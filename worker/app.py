"""The Celery app: configuration, signal hooks and the beat schedule.

Celery distributes, retries and shows the work; the database decides what is done. Tasks
carry no ticket data, only optional ticket numbers, so JSON is the only content accepted.
The app sits beneath the tasks: it includes them by name and imports none of them. It holds
this process's runtime, built on first use (afresh in every forked pool process), which the
tasks hand to their flow.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

import structlog
from celery import Celery, signals
from celery.schedules import crontab

from flows.runtime import Runtime
from shared import logs
from shared.settings import Settings, load_settings
from training import registry
from worker import bootstrap, broker, metrics, names, sentry
from worker.model_holder import ModelHolder
from worker.queue import CeleryQueue


def cron(expression: str) -> crontab:
    """A five-field cron expression (minute hour day-of-month month day-of-week)."""
    minute, hour, day_of_month, month_of_year, day_of_week = expression.split()
    return crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
    )


class CausaCelery(Celery):  # type: ignore[misc]
    """Celery with this process's settings and runtime."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            "causa",
            broker=settings.redis_url.get_secret_value() if settings.redis_url else None,
            include=names.TASK_MODULES,
        )
        self.settings = settings
        self._runtime: Runtime | None = None
        self.preloaded: ModelHolder | None = None  # the model loaded before the pool forked

    @property
    def runtime(self) -> Runtime:
        """The runtime of this process, built on first use."""
        if self._runtime is None:
            self._runtime = bootstrap.build(self.settings, CeleryQueue(self), self.preloaded)
        return self._runtime

    def use_runtime(self, runtime: Runtime | None) -> None:
        """Replace the runtime (None: build afresh on next use, as a forked child must)."""
        self._runtime = runtime


def make_app(settings: Settings) -> CausaCelery:
    app = CausaCelery(settings)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_default_queue=names.QUEUE,
        task_routes=names.ROUTES,
        task_ignore_result=True,
        # kombu's Redis transport, with a connection closed under it reported as lost, not as
        # an AttributeError that stops the worker (worker/broker.py).
        broker_transport=broker.transport_for(app.conf.broker_url),
        # At-least-once: a task is acknowledged after it ran, and a task whose process was
        # killed goes back to the queue. The claim token makes the second run harmless.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message per process at a time: a batch of 1,000 tickets is enough work.
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit,
        task_soft_time_limit=settings.soft_time_limit,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            # A broker call that hangs (the host cut off from Redis) fails after this long
            # instead of stalling the worker's main process, which enforces the time limits.
            "socket_timeout": bootstrap.REDIS_TIMEOUT_S,
            "socket_connect_timeout": bootstrap.REDIS_TIMEOUT_S,
            "socket_keepalive": True,
        },
        broker_connection_retry_on_startup=True,
        # A deploy (SIGTERM) lets running batches finish for this long before the cold stop.
        worker_soft_shutdown_timeout=min(30.0, float(settings.task_time_limit)),
        worker_enable_soft_shutdown_on_idle=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
        # Exactly one beat schedules: the others wait for its lock (worker/beat.py).
        beat_scheduler="worker.beat:LockedScheduler",
        beat_schedule={
            "retrain": {
                "task": names.RETRAIN,
                "schedule": cron(settings.retrain_cron),
                "kwargs": {"trigger": "schedule"},
            },
            "watch": {
                "task": names.WATCH,
                "schedule": settings.watch_interval,
                "options": {"expires": settings.watch_interval},
            },
            "drift-report": {
                "task": names.DRIFT,
                "schedule": cron(settings.drift_cron),
            },
            "retention": {
                "task": names.RETAIN,
                "schedule": cron(settings.retention_cron),
            },
            "live-accuracy": {
                "task": names.ACCURACY,
                "schedule": cron(settings.accuracy_cron),
            },
            "poll-pending": {
                "task": names.POLL,
                "schedule": settings.poll_interval,
                # A poll older than one interval is stale: the next one supersedes it.
                "options": {"expires": settings.poll_interval},
            },
        },
    )
    return app


# Settings are read once per process, when the app is made (the only settings the tasks see).
app = make_app(load_settings())


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    logs.setup(app.settings)


@signals.worker_process_init.connect
def _process_init(**_: Any) -> None:
    app.use_runtime(None)  # the parent's pool sockets are not this child's
    # A pool process is daemonic, and a daemonic process may not start processes: joblib
    # would fit a training in it alone, whatever CAUSA_TRAINING_JOBS says. Its helpers
    # (loky's) end with it; the worker still stops its pool processes as before.
    multiprocessing.current_process()._config["daemon"] = False  # type: ignore[attr-defined]
    sentry.init(app.settings, app.conf.beat_schedule, process="worker")


@signals.worker_init.connect
def _worker_init(**_: Any) -> None:
    # The worker's main process (consumer, pool supervision); its children init their own.
    sentry.init(app.settings, app.conf.beat_schedule, process="worker")
    # The model libraries (imported lazily elsewhere, for the commands' start-up) are imported
    # here, before the pool forks: every pool process shares them instead of spending seconds
    # and memory importing them on its first batch. The model in service too: a pool process
    # (a new one after a crash or a time limit included) starts with it in memory instead of
    # loading it within its first task's time limit.
    registry.preload()
    app.preloaded = ModelHolder.from_settings(app.settings)
    app.preloaded.get()
    if app.settings.metrics_port is not None:
        metrics.serve(app.settings.metrics_port)


@signals.worker_process_shutdown.connect
def _process_gone(pid: int | None = None, **_: Any) -> None:
    metrics.process_gone(pid or os.getpid())


@signals.beat_init.connect
def _beat_init(**_: Any) -> None:
    # Beat reports every schedule it applies as a Sentry Crons check-in.
    sentry.init(app.settings, app.conf.beat_schedule, process="beat")


@signals.task_prerun.connect
def _bind_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        task_id=task_id, task_name=getattr(task, "name", None), worker=bootstrap.worker_id()
    )


@signals.task_postrun.connect
def _unbind_task(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    logs.forget_ticket_texts()


@signals.task_failure.connect
def _notify_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    """Repeated worker errors: the same error of the same task at most once per
    CAUSA_NOTIFY_EVERY (the notifier's throttle, shared by every worker through Redis)."""
    name = getattr(sender, "name", "?")
    kind = type(exception).__name__
    app.runtime.notifier.send(
        "worker error",
        f"{name} failed with {kind}",
        f"{kind}: {exception}"[:1000],
        level="failure",
        key=f"error:{name}:{kind}",
    )
