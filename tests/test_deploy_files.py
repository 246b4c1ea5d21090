"""docker-compose.yml and the Dockerfile, checked against the compose schema and the code.

There is no Docker engine on the build machines, so the stack cannot be started here; these
checks keep the files true to the code instead.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shared.celery_setup import LLM_QUEUE, UPDATES_QUEUE
from shared.config import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    """The parsed compose file (YAML anchors and merge keys resolved)."""
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_specification() -> None:
    """Validated against the Compose Specification's JSON schema (vendored by check-jsonschema)."""
    check = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_every_process(compose: dict) -> None:
    """Redis, PostgreSQL, web, worker, listener and Flower, plus a one-shot migration."""
    assert set(compose["services"]) == {
        "redis", "postgres", "migrate", "web", "worker", "bot", "flower",
    }  # fmt: skip


def _command(compose: dict, service: str) -> list[str]:
    return [str(part) for part in compose["services"][service]["command"]]


def test_commands_point_at_real_entry_points(compose: dict) -> None:
    """Every module and attribute a command names exists, and the worker consumes both queues."""
    assert "wsgi:app" in _command(compose, "web")
    assert hasattr(importlib.import_module("wsgi"), "app")
    for service in ("worker", "flower"):
        command = _command(compose, service)
        assert command[:3] == ["celery", "-A", "celery_app"]
    worker = _command(compose, "worker")
    queues = worker[worker.index("-Q") + 1].split(",")
    assert sorted(queues) == sorted([UPDATES_QUEUE, LLM_QUEUE])
    assert "-E" in worker, "Flower needs task events"
    assert _command(compose, "bot") == ["python", "-m", "bot"]
    assert (PROJECT_ROOT / "bot" / "__main__.py").exists()
    assert _command(compose, "migrate") == ["flask", "--app", "wsgi", "init"]


def test_app_services_share_production_settings(compose: dict) -> None:
    """App containers run in production mode against the stack's PostgreSQL and Redis."""
    for service in ("migrate", "web", "worker", "bot", "flower"):
        env = compose["services"][service]["environment"]
        assert env["AI_ROUTER_ENV"] == "production"
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
        assert env["DATABASE_URL"].startswith("postgresql://")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
    for service in ("web", "worker", "bot", "flower"):
        depends = compose["services"][service]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_environment_variables_are_documented(compose: dict) -> None:
    """Every variable the stack interpolates or sets for the app is listed in .env.example."""
    documented = set(
        re.findall(r"^#?([A-Z_]+)=", (PROJECT_ROOT / ".env.example").read_text(), re.M)
    )
    used = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE.read_text()))
    used |= set(compose["services"]["web"]["environment"])
    stack_only = {"POSTGRES_PASSWORD", "FLOWER_PORT"}
    assert used - stack_only <= documented


def test_dockerfile_installs_the_pinned_requirements() -> None:
    """The image installs requirements.txt and serves the same WSGI app."""
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "pip install -r requirements.txt" in dockerfile
    assert '"wsgi:app"' in dockerfile
