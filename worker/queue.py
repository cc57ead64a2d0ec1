"""The flows' TaskQueue on Celery: tasks are sent by name, so nothing here imports them."""

from __future__ import annotations

from typing import Any

from amqp.exceptions import ChannelError
from celery import Celery

from worker import names

INSPECT_TIMEOUT_S = 1.0  # how long workers get to answer a ping


class CeleryQueue:
    def __init__(self, app: Celery) -> None:
        self.app = app

    def classify(self, tasks: int) -> None:
        for _ in range(tasks):
            self.app.send_task(names.CLASSIFY)

    def waiting(self) -> int:
        with self.app.connection_for_read() as conn:
            try:
                declared = conn.default_channel.queue_declare(queue=names.QUEUE, passive=True)
            except ChannelError:  # Redis keeps no empty queue: nothing is waiting
                return 0
            return int(declared.message_count)

    def retrain(self, trigger: str) -> None:
        self.app.send_task(names.RETRAIN, kwargs={"trigger": trigger})

    def workers(self) -> list[str]:
        return sorted((self.app.control.inspect(timeout=INSPECT_TIMEOUT_S).ping() or {}).keys())

    def admin(self, action: str, kwargs: dict[str, Any]) -> str:
        return str(self.app.send_task(names.admin(action), kwargs=kwargs).id)
