"""docker-compose.yml cannot run here (no Docker engine); what can be checked by parsing, is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command

from worker.cli import app

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
CAUSA_SERVICES = ("migrate", "worker", "beat", "listener", "flower", "api")
LONG_RUNNING = ("worker", "beat", "listener")
# ${VAR}, ${VAR:-default}, ${VAR:?message}, ${VAR-default}: the variable's name.
INTERPOLATED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
ENV_LINE = re.compile(r"^#?([A-Z][A-Z0-9_]*)=", re.M)
SECRET = re.compile(r"PASSWORD|TOKEN|KEY|DSN|WEBHOOK|DATABASE_URL")
# What a user may set, by the list: each must be in .env.example.
USER_SETTINGS = (
    "DATABASE_URL",
    "SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "REDIS_URL",
    "CAUSA_FLOWER_PASSWORD",
    "SENTRY_DSN",
    "NOTIFY_URLS",
    "SLACK_WEBHOOK_URL",
    "DISCORD_WEBHOOK_URL",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CHAT_ID",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USER",
    "SMTP_PASSWORD",
    "EMAIL_FROM",
    "EMAIL_TO",
    "MLFLOW_TRACKING_URI",
    "CAUSA_MODEL_STORE",
)


def env_example() -> str:
    return (ROOT / ".env.example").read_text()


def causa_commands() -> dict[str, Any]:
    """`causa`'s subcommands, as typer builds them (on its own copy of click)."""
    return dict(get_command(app).commands)  # type: ignore[attr-defined]


def causa_argv(service: dict[str, Any]) -> list[str]:
    """The arguments `causa` receives in the container: the image's entrypoint is causa."""
    assert "entrypoint" not in service, "a causa service keeps the image's entrypoint"
    command = service["command"]
    assert isinstance(command, list), "commands as lists: no shell in between"
    return [str(a) for a in command]


@pytest.mark.parametrize("name", CAUSA_SERVICES)
def test_every_causa_service_runs_a_real_causa_command_with_real_options(name: str) -> None:
    # given causa's command line as click sees it
    service = SERVICES[name]
    argv = causa_argv(service)
    command = causa_commands().get(argv[0])
    # then the service names an existing command, and click accepts its options
    assert command is not None, f"{name}: no `causa {argv[0]}`"
    ctx = command.make_context(f"causa {argv[0]}", argv[1:], resilient_parsing=False)
    assert ctx.params is not None
    assert service["image"] == "causa:latest"


def test_flower_binds_every_interface_in_the_container_and_only_localhost_on_the_host() -> None:
    flower = SERVICES["flower"]
    argv = causa_argv(flower)
    params = causa_commands()["flower"].make_context("causa flower", argv[1:]).params
    assert params["address"] == "0.0.0.0"  # noqa: S104 (in the container; the host side below)
    for port in flower["ports"]:
        host_ip, _, container_port = str(port).split(":")
        assert host_ip == "127.0.0.1", f"flower published beyond this host: {port}"
        assert int(container_port) == params["port"]
    # the password is required, never a generated one lost in the container's log
    assert "${CAUSA_FLOWER_PASSWORD:?" in str(flower["environment"]["CAUSA_FLOWER_PASSWORD"])


def test_there_is_exactly_one_beat() -> None:
    beat = SERVICES["beat"]
    deploy = beat.get("deploy", {})
    assert deploy.get("replicas", 1) == 1
    assert deploy.get("mode", "replicated") == "replicated"  # `global`: one per node
    assert "scale" not in beat


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_the_long_running_services_are_checked_with_causa_health(name: str) -> None:
    check = SERVICES[name]["healthcheck"]
    assert check["test"] == ["CMD", "causa", "health"]
    assert not check.get("disable", False)


def test_flower_and_mlflow_have_their_own_healthchecks_and_migrate_none() -> None:
    assert "/healthcheck" in " ".join(SERVICES["flower"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(SERVICES["api"]["healthcheck"]["test"])
    assert "/health" in " ".join(SERVICES["mlflow"]["healthcheck"]["test"])
    assert SERVICES["migrate"]["healthcheck"] == {"disable": True}  # one-shot


def test_services_start_in_order() -> None:
    # the broker, the schema and the tracking server before the processes that need them
    for name in LONG_RUNNING:
        needs = SERVICES[name]["depends_on"]
        assert needs["redis"]["condition"] == "service_healthy"
        assert needs["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["worker"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert SERVICES["migrate"]["restart"] == "no"


def test_every_causa_service_shares_the_model_store() -> None:
    for name in CAUSA_SERVICES:
        service = SERVICES[name]
        assert "models:/app/models" in service["volumes"], name
        assert service["environment"]["CAUSA_MODELS_DIR"] == "/app/models", name
    assert "models" in COMPOSE["volumes"]


def test_redis_never_evicts_queued_tasks_and_asks_for_a_password() -> None:
    redis = SERVICES["redis"]
    command = redis["command"][-1].split()
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    # the password comes from .env, is required (compose refuses to start without one), and
    # every causa service's broker URL carries it
    assert command[command.index("--requirepass") + 1] == '"$$REDIS_PASSWORD"'
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    assert "REDISCLI_AUTH" in redis["healthcheck"]["test"][1]
    url = SERVICES["worker"]["environment"]["REDIS_URL"]
    assert url.startswith("${REDIS_URL:-redis://:${REDIS_PASSWORD:?")
    # and .env.example ships no password anyone could use as it is
    assert re.search(r"^#REDIS_PASSWORD=$", env_example(), re.M)


def test_every_services_log_is_capped() -> None:
    for name, service in SERVICES.items():
        options = service["logging"]["options"]
        assert service["logging"]["driver"] == "json-file", name
        assert options["max-size"] and int(options["max-file"]) >= 1, name


def test_mlflow_serves_artifacts_from_a_volume_and_workers_use_it() -> None:
    mlflow = SERVICES["mlflow"]
    assert mlflow["image"] == "causa:latest" and mlflow["entrypoint"] == ["mlflow", "server"]
    args = [str(a) for a in mlflow["command"]]
    assert "--serve-artifacts" in args
    destination = args[args.index("--artifacts-destination") + 1]
    backend = args[args.index("--backend-store-uri") + 1]
    assert destination.startswith("/data/") and backend == "sqlite:////data/mlflow.db"
    assert "mlflow:/data" in mlflow["volumes"] and "mlflow" in COMPOSE["volumes"]
    assert any(str(p).startswith("127.0.0.1:") for p in mlflow["ports"])
    uri = SERVICES["worker"]["environment"]["MLFLOW_TRACKING_URI"]
    assert "http://mlflow:5000" in uri
    hosts = args[args.index("--allowed-hosts") + 1].split(",")
    assert "mlflow:*" in hosts, "MLflow refuses a Host header it does not know"


def test_every_variable_the_compose_file_reads_is_in_env_example() -> None:
    listed = set(ENV_LINE.findall(env_example()))
    used = set(INTERPOLATED.findall(COMPOSE_TEXT))
    assert used, "the compose file reads variables"
    assert used <= listed, f"missing from .env.example: {sorted(used - listed)}"


@pytest.mark.parametrize("name", [".env.example", "causa.env.example"])
def test_the_example_files_explain_every_variable(name: str) -> None:
    text = (ROOT / name).read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = ENV_LINE.match(line)
        if not match:
            continue
        # a comment explains the variable, or the block of variables it belongs to
        j = i - 1
        while j >= 0 and ENV_LINE.match(lines[j]):
            j -= 1
        assert j >= 0 and lines[j].startswith("# "), f"no comment for {match.group(1)}"
    # what a user sets is in one of them; the settings file holds no secret at all
    listed = set(ENV_LINE.findall(env_example() + (ROOT / "causa.env.example").read_text()))
    assert set(USER_SETTINGS) <= listed, sorted(set(USER_SETTINGS) - listed)
    assert not SECRET.search(" ".join(ENV_LINE.findall((ROOT / "causa.env.example").read_text())))


def test_env_example_ships_no_usable_secret_and_compose_requires_the_ones_it_needs() -> None:
    for line in env_example().splitlines():
        name, _, value = line.lstrip("#").partition("=")
        if ENV_LINE.match(line) and SECRET.search(name):
            assert line.startswith("#") and value == "", f"{name} ships a value"
    for required in ("REDIS_PASSWORD", "POSTGRES_PASSWORD", "CAUSA_MODEL_SIGNING_KEY"):
        assert f"${{{required}:?" in COMPOSE_TEXT, required
    assert "${CAUSA_FLOWER_PASSWORD:?" in SERVICES["flower"]["environment"]["CAUSA_FLOWER_PASSWORD"]


def test_secrets_reach_only_the_services_that_need_them() -> None:
    # no service gets .env wholesale; each secret is handed to the services that use it
    given = {name: set(service.get("environment", {})) for name, service in SERVICES.items()}
    files = [f["path"] for service in SERVICES.values() for f in service.get("env_file", [])]
    assert files and set(files) == {"causa.env"}
    database = {"DATABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"}
    notify = {"SMTP_PASSWORD", "NOTIFY_URLS", "SLACK_WEBHOOK_URL", "TELEGRAM_BOT_TOKEN"}
    signing = {"CAUSA_MODEL_SIGNING_KEY"}
    assert database | notify | signing <= given["worker"]
    assert database | notify <= given["listener"] and not signing & given["listener"]
    assert database <= given["migrate"] and not (notify | signing) & given["migrate"]
    assert database <= given["beat"] and not (notify | signing) & given["beat"]
    assert not (database | notify | signing) & given["flower"]
    assert database | signing <= given["api"] and not notify & given["api"]
    assert (
        "CAUSA_FLOWER_PASSWORD" in given["flower"]
        and "CAUSA_FLOWER_PASSWORD" not in given["worker"]
    )
    assert not {"REDIS_URL", "DATABASE_URL"} & given["mlflow"]


def test_the_image_entrypoint_is_causa() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["causa"]' in dockerfile
    assert "requirements.lock" in dockerfile
    assert "/data" in dockerfile, "MLflow's volume is writable by the image's user"


def test_the_image_copies_every_package_causa_installs() -> None:
    import tomllib

    dockerfile = (ROOT / "Dockerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    assert packages, "the packages were found"
    for package in packages:
        assert f"COPY {package} {package}" in dockerfile, f"the image lacks {package}/"


def test_a_retrain_asked_for_by_an_operator_gets_the_training_time_limits() -> None:
    # the scheduled retrain and the admin one (Flower, `causa admin retrain --enqueue`) run
    # the same training: neither may be cut by the classify tasks' 120 s
    import tasks.admin
    import tasks.training
    from flows.training import TRAINING_SOFT_LIMIT_S, TRAINING_TIME_LIMIT_S

    for task in (tasks.training.retrain, tasks.admin.retrain):
        assert (task.time_limit, task.soft_time_limit) == (
            TRAINING_TIME_LIMIT_S,
            TRAINING_SOFT_LIMIT_S,
        ), task.name
