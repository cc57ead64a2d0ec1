"""What every flow is given: the parts of causa, built once per process by the entry point
(worker/bootstrap.py) and passed in, never looked up from a global. Tests build their own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from shared.breaker import Breaker
from shared.notify import Notify
from shared.settings import Settings
from shared.store import TicketStore
from training.registry import LoadedModel, ModelRegistry


class ServedModels(Protocol):
    """The model in service in this process, hot-swapped (worker/model_holder.py)."""

    def get(self) -> LoadedModel | None: ...


class TaskQueue(Protocol):
    """The broker as flows see it: enqueue work by name, see what waits (worker/queue.py)."""

    def classify(self, tasks: int) -> None:
        """Enqueue `tasks` classify tasks (each claims its own batch)."""

    def waiting(self) -> int:
        """Classify tasks waiting in the queue, not yet taken by a worker."""

    def retrain(self, trigger: str) -> None:
        """Enqueue a training on the training queue."""

    def workers(self) -> list[str]:
        """The workers that answer a ping."""

    def admin(self, action: str, kwargs: dict[str, Any]) -> str:
        """Enqueue the admin task `action`; its task id."""


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    store: TicketStore
    registry: ModelRegistry  # where models are promoted, rolled back, listed
    models: ServedModels  # the model this process serves
    notifier: Notify
    breaker: Breaker  # holds batches back while the database fails
    redis: Any  # the broker's Redis: locks, the breaker, notification throttles
    queue: TaskQueue
    worker: str  # who claims: host and process, shown in claimed_by

    def close(self) -> None:
        self.store.close()
