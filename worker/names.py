"""Queue and task names: the contract between the code that sends tasks (by name) and the
task modules that define them."""

QUEUE = "causa"
# Training gets a queue of its own: a ten-minute fit must not sit in front of classification.
TRAINING_QUEUE = "causa-training"

CLASSIFY = "tasks.classify.classify_pending"
POLL = "tasks.classify.poll_pending"
RETRAIN = "tasks.training.retrain"
ROLLBACK = "tasks.training.rollback"
DRIFT = "tasks.monitoring.drift_report"
WATCH = "tasks.monitoring.watch"
RETAIN = "tasks.monitoring.retain"
ACCURACY = "tasks.monitoring.live_accuracy"


def admin(action: str) -> str:
    """tasks.admin.<action>: what `causa admin` and Flower's API send."""
    return f"tasks.admin.{action}"


# Task modules, imported by the worker (Celery's include) and Flower, never by worker/ code.
TASK_MODULES = ["tasks.classify", "tasks.training", "tasks.monitoring", "tasks.admin"]
ROUTES = {
    RETRAIN: {"queue": TRAINING_QUEUE},
    ROLLBACK: {"queue": TRAINING_QUEUE},
    admin("retrain"): {"queue": TRAINING_QUEUE},
    admin("rollback"): {"queue": TRAINING_QUEUE},
}
