"""``GET /healthz`` checks the database and Redis for real."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from shared.config import Config
from tests.support import app_env
from web import create_app


def test_healthy(client) -> None:
    """Both parts reachable: 200 and every part ok."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "db": "ok", "redis": "ok"}


def _app(tmp_path: Path, database_url: str, redis_url: str) -> Flask:
    config = Config.from_env(app_env(tmp_path, database_url, redis_url))
    return create_app(config, {"TESTING": True})


def test_redis_down_is_named(tmp_path: Path, database_url: str) -> None:
    """Nothing listens on the Redis socket: 503 naming redis, the database still ok."""
    app = _app(tmp_path, database_url, f"unix://{tmp_path / 'nobody.sock'}")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "db": "ok", "redis": "error"}


def test_database_down_is_named(tmp_path: Path, redis_url: str) -> None:
    """The database cannot be opened: 503 naming db, Redis still ok."""
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    app = _app(tmp_path, f"sqlite:///{missing}", redis_url)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "error", "db": "error", "redis": "ok"}
