"""A worker killed in the middle of an LLM call: the message is answered once, by another worker.

Two real gevent worker processes, one after the other, on a Redis of the test's own; the first
is killed with SIGKILL while the model is still writing. ``TASK_TIME_LIMIT`` is short here so
the broker hands the task to the second worker within the test's patience.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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

USER = 800_001


@pytest.fixture()
def slow_llm() -> Iterator[SlowLLM]:
    """An LLM that takes 4 s per answer (time to kill a worker mid-call)."""
    with SlowLLM(delay=4.0) as server:
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


def _worker(env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "gevent",
         "--concurrency", "50", "-Q", "updates,llm", "--loglevel", "WARNING",
         "--hostname", f"{name}@%h"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def test_a_worker_killed_mid_call_loses_nothing_and_answers_once(
    app: Flask,
    config: Config,
    telegram: FakeTelegram,
    slow_llm: SlowLLM,
    own_redis: str,
    tmp_path: Path,
) -> None:
    """SIGKILL during the LLM call; a second worker answers the message exactly once."""
    with app.app_context():
        seed_catalog(config)
        set_setting("telegram_bot_token", telegram.token)
        model = LLMModel(name="Slow", model="slow", base_url=slow_llm.base_url, enabled=True)
        set_api_key(model, "sk-slow")
        db.session.add(model)
        make_default(model)
        db.session.commit()
    env = app_env(
        tmp_path, config.database_url, own_redis, TELEGRAM_API_URL=telegram.url,
        WORKER_POOL="gevent", TASK_TIME_LIMIT="6", LLM_MAX_ATTEMPTS="1", LOG_LEVEL="WARNING",
    )  # fmt: skip
    first = _worker(env, "first")
    second = None
    try:
        producer = create_core_app(Config.from_env(env))
        _restore_default_celery(app)  # the producer made its own Celery app the default
        enqueue_update(producer, telegram.inject_message(USER, "are you still there?"))
        wait_until(lambda: slow_llm.in_flight, timeout=60, what="the LLM call to start")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        assert not telegram.calls("sendMessage"), "nothing was answered before the crash"
        second = _worker(env, "second")
        answer = wait_until(
            lambda: [c for c in telegram.calls("sendMessage") if c.ok],
            timeout=120,
            what="the second worker to answer",
        )
        time.sleep(3)  # anything sent twice would arrive by now
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)
    answers = [c for c in telegram.calls("sendMessage") if c.ok]
    assert len(answers) == 1 and answers == answer[:1]
    assert answers[0].params["text"].startswith("slow answer to are you still there?")
    with app.app_context():
        rows = db.session.scalars(select(Request)).all()
        assert [(r.status, r.delivered_parts) for r in rows] == [("ok", 1)]
        assert rows[0].delivered_at is not None


def _restore_default_celery(app: Flask) -> None:
    """Make the suite's Celery app the process default again (other tests rely on it)."""
    celery = app.extensions["celery"]
    celery.set_default()
    celery.set_current()
