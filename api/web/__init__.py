"""The review desk: pages, sessions, charts (api/web/pages.py)."""
