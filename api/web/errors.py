"""A page that cannot be shown, and why: rendered as an error page in the desk's layout."""

from __future__ import annotations


class PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
