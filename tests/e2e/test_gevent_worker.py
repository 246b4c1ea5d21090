"""One gevent worker process keeps hundreds of slow LLM calls in flight, on few connections.

This is the worker exactly as ``make run`` and the compose file start it (``celery -A
celery_app worker --pool gevent``), in a process of its own, with its own Redis; the LLM is a
local server that takes seconds to answer and counts how many calls it serves at once.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from shared.app import create_core_app
from shared.celery_setup import enqueue_update
from shared.config import PROJECT_ROOT, Config
from shared.db import db
from shared.embedded_redis import EmbeddedRedis
from shared.models import LLMModel, Request
from shared.services.catalog import make_default, seed_catalog, set_api_key
from shared.services.settings import set_setting
from tests.fakes.slow_llm import SlowLLM
from tests.fakes.telegram import FakeTelegram
from tests.support import app_env, stop_process, wait_until

USERS = 200
CONCURRENCY = 300
DB_POOL = 10


@pytest.fixture()
def slow_llm() -> Iterator[SlowLLM]:
    """An LLM that takes 3 s per answer."""
    with SlowLLM(delay=3.0) as server:
        yield server


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis of this test's own, so no other worker of the suite takes its tasks."""
    server = EmbeddedRedis(tmp_path / "r.sock", tmp_path, persist=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def test_hundreds_of_llm_calls_in_flight_in_one_process(
    app: Flask,
    config: Config,
    telegram: FakeTelegram,
    slow_llm: SlowLLM,
    own_redis: str,
    tmp_path: Path,
) -> None:
    """200 users at once: their 200 slow LLM calls run together in one gevent process."""
    with app.app_context():
        seed_catalog(config)
        set_setting("telegram_bot_token", telegram.token)
        model = LLMModel(name="Slow", model="slow", base_url=slow_llm.base_url, enabled=True)
        set_api_key(model, "sk-slow")
        db.session.add(model)
        make_default(model)
        db.session.commit()
    env = app_env(
        tmp_path, config.database_url, own_redis,
        TELEGRAM_API_URL=telegram.url, WORKER_POOL="gevent",
        WORKER_CONCURRENCY=str(CONCURRENCY), DB_POOL_SIZE=str(DB_POOL), LOG_LEVEL="WARNING",
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "gevent",
         "--concurrency", str(CONCURRENCY), "-Q", "updates,llm", "--loglevel", "WARNING",
         "--hostname", "gevent-test@%h"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        producer = create_core_app(Config.from_env(env))
        _restore_default_celery(app)  # the producer made its own Celery app the default
        for user in range(700_000, 700_000 + USERS):
            enqueue_update(producer, telegram.inject_message(user, f"question of {user}"))
        answers = wait_until(
            lambda: len(telegram.calls("sendMessage")) >= USERS and telegram.calls("sendMessage"),
            timeout=120,
            what=f"{USERS} answers",
        )
    finally:
        stop_process(worker)
    assert worker.returncode == 0, worker.stderr.read().decode()[-3000:] if worker.stderr else ""
    assert len(answers) == USERS and all(call.ok for call in answers)
    assert slow_llm.served == USERS, "one LLM call per message"
    assert slow_llm.max_in_flight >= USERS * 3 // 4, (
        f"only {slow_llm.max_in_flight} LLM calls were in flight at once"
    )
    with app.app_context():
        statuses = db.session.scalars(select(Request.status)).all()
    assert sorted(set(statuses)) == ["ok"] and len(statuses) == USERS


def _restore_default_celery(app: Flask) -> None:
    """Make the suite's Celery app the process default again (other tests rely on it)."""
    celery = app.extensions["celery"]
    celery.set_default()
    celery.set_current()
