"""A worker killed in the middle of an LLM call: the message is answered once, by another worker.

Two real gevent worker processes, one after the other, on a Redis of the test's own; the first
is killed with SIGKILL while the model is still writing. ``TASK_TIME_LIMIT`` is short here so
the broker hands the task to the second worker within the test's patience.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from shared.celery_setup import enqueue_update
from shared.config import Config
from shared.db import db
from shared.models import Request
from tests.e2e.conftest import producer_for, use_slow_model, worker_process
from tests.fakes.slow_llm import SlowLLM
from tests.fakes.telegram import FakeTelegram
from tests.support import app_env, stop_process, wait_until

USER = 800_001


def test_a_worker_killed_mid_call_loses_nothing_and_answers_once(
    app: Flask,
    config: Config,
    telegram: FakeTelegram,
    slow_llm: SlowLLM,
    own_redis: str,
    tmp_path: Path,
) -> None:
    """SIGKILL during the LLM call; a second worker answers the message exactly once."""
    use_slow_model(app, telegram, slow_llm)
    env = app_env(
        tmp_path, config.database_url, own_redis, TELEGRAM_API_URL=telegram.url,
        WORKER_POOL="gevent", TASK_TIME_LIMIT="6", LLM_MAX_ATTEMPTS="1", LOG_LEVEL="WARNING",
    )  # fmt: skip
    first = worker_process(env, "first", 50)
    second = None
    try:
        producer = producer_for(app, env)
        enqueue_update(producer, telegram.inject_message(USER, "are you still there?"))
        wait_until(lambda: slow_llm.in_flight, timeout=60, what="the LLM call to start")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        assert not telegram.calls("sendMessage"), "nothing was answered before the crash"
        second = worker_process(env, "second", 50)
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
