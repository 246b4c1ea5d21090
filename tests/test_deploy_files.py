"""docker-compose.yml and the Dockerfile, checked against the compose schema and the code.

There is no Docker engine on the build machines, so the stack cannot be started here; these
checks keep the files true to the code instead.
"""

from __future__ import annotations

import os
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
    assert _command(compose, "worker")[:3] == ["celery", "-A", "celery_app"]
    # Flower as `make run` starts it: the broker-only app, which sets its login.
    assert _command(compose, "flower")[:4] == ["celery", "-A", "flower_app", "flower"]
    assert (PROJECT_ROOT / "flower_app.py").exists()
    worker = _command(compose, "worker")
    queues = worker[worker.index("-Q") + 1].split(",")
    assert sorted(queues) == sorted([UPDATES_QUEUE, LLM_QUEUE])
    assert "-E" not in worker, "task events cost CPU per task (FLOWER_ENABLE_EVENTS)"
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


def _python(code: str, instance: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run Python code in the project root with a private instance folder and no ``.env``."""
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL")}
    clean.update(INSTANCE_PATH=str(instance), REDIS_URL="redis://127.0.0.1:1/0", **env)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=clean, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def test_importing_wsgi_writes_nothing(tmp_path: Path) -> None:
    """``import wsgi`` builds no app and writes no secret; ``wsgi.app`` is the web app."""
    instance = tmp_path / "instance"
    imported = _python("import wsgi", instance)
    assert imported.returncode == 0, imported.stderr
    assert not instance.exists(), "importing wsgi created the instance folder"
    built = _python("import wsgi; print(type(wsgi.app).__name__, wsgi.app.name)", instance)
    assert built.returncode == 0, built.stderr
    assert built.stdout.split() == ["Flask", "web"]
    assert (instance / "secret_key").exists()


def test_worker_and_listener_do_not_load_the_admin(tmp_path: Path) -> None:
    """The worker's and the listener's entry points build the core app only."""
    code = (
        "import sys, celery_app, bot.listener, tasks.replies, tasks.updates; "
        "print(sorted(m for m in ('web', 'flask_admin', 'flask_wtf', 'flask_migrate') "
        "if m in sys.modules))"
    )
    result = _python(code, tmp_path / "instance", SECRET_KEY="x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_web_and_the_listener_keep_to_their_memory_budget(tmp_path: Path) -> None:
    """The imports that keep ``make run``'s tree under 450 MiB (docs/benchmarks.md).

    Neither loads pyTelegramBotAPI (≈ 10 MiB), the web not Alembic (≈ 11 MiB), the supervisor
    not OpenSSL.
    """
    heavy = "('telebot', 'requests', 'alembic', 'flask_migrate', 'mako', 'pygments')"
    for entry in ("wsgi; wsgi.app", "bot.listener, bot.__main__"):
        code = f"import sys, {entry}; print(sorted(m for m in {heavy} if m in sys.modules))"
        result = _python(code, tmp_path / "instance", SECRET_KEY="x")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == "[]", entry
    code = "import sys, supervisor; print('_hashlib' in sys.modules, 'secrets' in sys.modules)"
    result = _python(code, tmp_path / "instance", SECRET_KEY="x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False False"


def test_flower_app_loads_no_flask_app(tmp_path: Path) -> None:
    """Flower's entry point builds a broker-only Celery app: no Flask, database or metrics.

    This is what keeps ``make run``'s Flower at ≈ 60 MiB (≈ 110 with ``celery_app``).
    """
    code = (
        "import sys, flower_app; "
        "print(sorted(m for m in ('flask', 'sqlalchemy', 'shared.app', 'shared.db', "
        "'shared.celery_setup', 'prometheus_client') if m in sys.modules)); "
        "print(flower_app.celery.conf.broker_transport)"
    )
    result = _python(code, tmp_path / "instance", SECRET_KEY="x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "shared.broker:Transport"]
