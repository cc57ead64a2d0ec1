"""The hosted workflow runs the same checks as .ci/run, against the servers the suite needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_workflow_runs_what_ci_runs_with_postgres_15_and_redis_7() -> None:
    workflow: dict[Any, Any] = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    ci = re.findall(r"^(make \w+)$", (ROOT / ".ci/run").read_text(), re.M)
    assert ci == ["make lint", "make test"], "the commands of .ci/run were found"
    # `on:` is YAML 1.1's boolean true
    triggers = workflow["on"] if "on" in workflow else workflow[True]
    assert {"push", "pull_request"} <= set(triggers)
    (job,) = workflow["jobs"].values()
    # as root (the multihost tests build network namespaces), the same make targets
    sudo = 'sudo -E env "PATH=$PATH" '
    assert [s["run"] for s in job["steps"] if "run" in s] == [sudo + c for c in ci]
    python = next(s for s in job["steps"] if "setup-python" in s.get("uses", ""))
    assert python["with"]["python-version"] == "3.11"
    images = {name: service["image"] for name, service in job["services"].items()}
    assert images == {"postgres": "postgres:15", "redis": "redis:7"}
