"""One gevent worker process keeps hundreds of slow LLM calls in flight, on few connections.

This is the worker exactly as ``make run`` and the compose file start it (``celery -A
celery_app worker --pool gevent``), in a process of its own, with its own Redis; the LLM is a
local server that takes seconds to answer and counts how many calls it serves at once.
"""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask
from redis import Redis
from sqlalchemy import select

from shared.celery_setup import enqueue_update
from shared.config import Config
from shared.db import db
from shared.models import Request
from tests.e2e.conftest import producer_for, use_slow_model, worker_process
from tests.fakes.slow_llm import SlowLLM
from tests.fakes.telegram import FakeTelegram
from tests.support import app_env, stop_process, wait_until

USERS = 200
CONCURRENCY = 300
DB_POOL = 10


def test_hundreds_of_llm_calls_in_flight_in_one_process(
    app: Flask,
    config: Config,
    telegram: FakeTelegram,
    slow_llm: SlowLLM,
    own_redis: str,
    tmp_path: Path,
) -> None:
    """200 users at once: their 200 slow LLM calls run together in one gevent process."""
    use_slow_model(app, telegram, slow_llm)
    env = app_env(
        tmp_path, config.database_url, own_redis,
        TELEGRAM_API_URL=telegram.url, WORKER_POOL="gevent",
        WORKER_CONCURRENCY=str(CONCURRENCY), DB_POOL_SIZE=str(DB_POOL), LOG_LEVEL="WARNING",
    )  # fmt: skip
    worker = worker_process(env, "gevent-test", CONCURRENCY)
    try:
        producer = producer_for(app, env)
        for user in range(700_000, 700_000 + USERS):
            enqueue_update(producer, telegram.inject_message(user, f"question of {user}"))
        answers = wait_until(
            lambda: len(telegram.calls("sendMessage")) >= USERS and telegram.calls("sendMessage"),
            timeout=120,
            what=f"{USERS} answers",
        )
        broker = Redis.from_url(own_redis)

        def held() -> list[str]:
            """The tasks still unacknowledged (task name and retries), for the failure text."""
            found = []
            for raw in broker.hvals("unacked"):
                headers = json.loads(raw)[0].get("headers", {})  # kombu: [message, exchange, key]
                found.append(f"{headers.get('task')} retries={headers.get('retries')}")
            return found

        try:  # the batched transport writes its acknowledgements while it runs
            wait_until(lambda: broker.hlen("unacked") == 0, timeout=30)
        except AssertionError:
            raise AssertionError(f"tasks never acknowledged: {held()}") from None
        assert broker.zcard("unacked_index") == 0
    finally:
        stop_process(worker)
    assert worker.returncode == 0
    assert len(answers) == USERS and all(call.ok for call in answers)
    assert slow_llm.served == USERS, "one LLM call per message"
    assert slow_llm.max_in_flight >= USERS * 3 // 4, (
        f"only {slow_llm.max_in_flight} LLM calls were in flight at once"
    )
    with app.app_context():
        statuses = db.session.scalars(select(Request.status)).all()
    assert sorted(set(statuses)) == ["ok"] and len(statuses) == USERS
