"""The names causa and its SQL agree on, written once: ticket statuses and event kinds.

The SQL functions in shared/sql/ use the same literals (a unit test checks every status
literal there is one of these).
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A ticket's state: queued (a work item in causa.work: pending, or claimed under a
    lease), or its latest decision (causa.outcomes, and `causa_status` on its row)."""

    PENDING = "pending"  # waiting to be claimed
    CLAIMED = "claimed"  # a worker holds its lease
    CLASSIFIED = "classified"  # the model was sure: the cause is written (mode apply)
    NEEDS_REVIEW = "needs_review"  # the model was unsure, or the text empty: a person decides
    FAILED = "failed"  # dead letter: too many attempts
    LABELLED = "labelled"  # a person set the cause: training data, never work


# What the model decides for a ticket it could predict.
DECIDED = (Status.CLASSIFIED, Status.NEEDS_REVIEW)


class Event(StrEnum):
    """Kinds of rows in causa.events (the latest of each is in `causa status`)."""

    TRAINING = "training"
    ROLLBACK = "rollback"
    DRIFT = "drift"
    ADMIN = "admin"
    INSTALL = "install"  # a migration applied versioned steps (retention keeps these)
    LIVE_ACCURACY = "live_accuracy"  # per-cause precision of reviewed decisions (flows/accuracy)
    THRESHOLDS = "thresholds_applied"  # a manifest revision with thresholds from live corrections
