"""Two workers and two listeners, as the compose file runs them, on one Redis and one database.

Two worker processes and two listener processes start with the compose file's commands
(``celery -A celery_app worker -Q updates,llm --pool gevent``, ``python -m bot``); users write
through the fake Bot API's long poll. The work is shared (more LLM calls run at once than one
worker allows), nothing is answered twice, and only one listener ever polls.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from shared.config import PROJECT_ROOT, Config
from shared.db import db
from shared.embedded_redis import EmbeddedRedis
from shared.models import Request
from shared.services import bot_control
from tests.e2e.conftest import producer_for, use_slow_model, worker_process
from tests.fakes.slow_llm import SlowLLM
from tests.fakes.telegram import FakeTelegram
from tests.support import app_env, stop_process, wait_until

pytestmark = pytest.mark.e2e

USERS = 20
CONCURRENCY = 10  # per worker: 20 calls at once need both


def _listener(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot"], cwd=PROJECT_ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def test_two_workers_and_two_listeners_share_the_work_and_answer_once(
    app: Flask, config: Config, telegram: FakeTelegram, slow_llm: SlowLLM, tmp_path: Path
) -> None:
    """20 users at once: 20 answers, one each; both workers answered; one poller, no 409."""
    server = EmbeddedRedis(tmp_path / "r.sock", tmp_path, persist=False)
    server.start()
    use_slow_model(app, telegram, slow_llm)
    env = app_env(
        tmp_path, config.database_url, server.url, TELEGRAM_API_URL=telegram.url,
        WORKER_POOL="gevent", WORKER_CONCURRENCY=str(CONCURRENCY), LOG_LEVEL="WARNING",
    )  # fmt: skip
    producer = producer_for(app, env)
    with producer.app_context():
        bot_control.set_desired(bot_control.POLLING)
    processes = [
        worker_process(env, "one", CONCURRENCY),
        worker_process(env, "two", CONCURRENCY),
        _listener(env),
        _listener(env),
    ]
    try:
        telegram.wait_for_polling(timeout=60)
        time.sleep(2)  # the second listener has tried for the lead by now
        for user in range(930_001, 930_001 + USERS):
            telegram.inject_message(user, f"question of {user}")
        wait_until(
            lambda: len([c for c in telegram.calls("sendMessage") if c.ok]) >= USERS,
            timeout=120,
            what=f"{USERS} answers",
        )
        time.sleep(3)  # an answer sent twice would arrive by now
        assert all(p.poll() is None for p in processes), "a process exited"
    finally:
        for process in processes:
            stop_process(process)
        server.stop()
    answers = [c for c in telegram.calls("sendMessage") if c.ok]
    assert len(answers) == USERS == len({c.params["chat_id"] for c in answers})
    assert slow_llm.served == USERS, "one LLM call per message"
    assert slow_llm.max_in_flight > CONCURRENCY, "one worker did all the work"
    assert not [c for c in telegram.calls("getUpdates") if c.status == 409], "two pollers"
    with app.app_context():
        statuses = db.session.scalars(select(Request.status)).all()
    assert sorted(statuses) == ["ok"] * USERS
