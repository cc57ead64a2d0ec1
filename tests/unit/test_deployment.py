"""docker-compose.yml cannot run here (no Docker engine); what can be checked, is."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.main import get_command

from worker.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_every_causa_service_runs_a_real_causa_command() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    causa_services = {"migrate", "worker", "beat", "listener"}
    for name in causa_services:
        service = compose["services"][name]
        assert service["command"][0] in commands, f"{name}: {service['command']}"
        assert service["image"] == "causa:latest"
    assert compose["services"]["beat"]["deploy"]["replicas"] == 1
    assert "noeviction" in compose["services"]["redis"]["command"]
    assert compose["services"]["flower"]["ports"] == ["127.0.0.1:5555:5555"]


def test_the_image_entrypoint_is_causa() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["causa"]' in dockerfile
    assert "requirements.lock" in dockerfile
