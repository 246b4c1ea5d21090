"""Crashes are recovered within a lease, and a long call of a living worker is never taken.

Real gevent worker processes on a Redis of the test's own, with ``LEASE_SECONDS`` short and
the task time limit at its default (300 s): before leases, a dead worker's task came back only
after four time limits (20 minutes), so these tests could not pass.
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
LEASE = 6
SWEEP = LEASE / 3


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
        WORKER_POOL="gevent", LEASE_SECONDS="6", LLM_MAX_ATTEMPTS="1", LOG_LEVEL="WARNING",
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
            timeout=LEASE + SWEEP + 4 + 30,  # the lease, a sweep, the 4 s call, a worker's start
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


def test_a_call_longer_than_the_lease_is_not_taken_from_a_living_worker(
    app: Flask, config: Config, telegram: FakeTelegram, own_redis: str, tmp_path: Path
) -> None:
    """The model takes 12 s, four leases: the living worker keeps its task; one call, one answer."""
    with SlowLLM(delay=12.0) as slow:
        use_slow_model(app, telegram, slow)
        env = app_env(
            tmp_path, config.database_url, own_redis, TELEGRAM_API_URL=telegram.url,
            WORKER_POOL="gevent", LEASE_SECONDS="3", LLM_MAX_ATTEMPTS="1", LOG_LEVEL="WARNING",
        )  # fmt: skip
        first = worker_process(env, "holder", 50)
        second = None
        try:
            producer = producer_for(app, env)
            enqueue_update(producer, telegram.inject_message(USER, "take your time"))
            wait_until(lambda: slow.in_flight, timeout=60, what="the LLM call to start")
            second = worker_process(env, "bystander", 50)  # sweeps every second, finds nothing
            wait_until(
                lambda: [c for c in telegram.calls("sendMessage") if c.ok],
                timeout=60,
                what="the answer",
            )
            time.sleep(4)  # a second call (and answer) would have started by now
        finally:
            stop_process(first)
            if second is not None:
                stop_process(second)
        assert slow.served == 1 and slow.max_in_flight == 1, "one LLM call, never a second"
    answers = [c for c in telegram.calls("sendMessage") if c.ok]
    assert len(answers) == 1
    with app.app_context():
        rows = db.session.scalars(select(Request)).all()
        assert [(r.status, r.delivered_parts) for r in rows] == [("ok", 1)]


def test_every_worker_killed_and_restarted_loses_nothing_and_answers_once(
    app: Flask,
    config: Config,
    telegram: FakeTelegram,
    slow_llm: SlowLLM,
    own_redis: str,
    tmp_path: Path,
) -> None:
    """Both workers SIGKILLed with calls in flight and tasks reserved; restarted, they answer all.

    Each worker runs 2 tasks at once, so of the 8 messages some are inside the LLM call and
    some only reserved (taken from the broker, not started) when both die.
    """
    use_slow_model(app, telegram, slow_llm)
    env = app_env(
        tmp_path, config.database_url, own_redis, TELEGRAM_API_URL=telegram.url,
        WORKER_POOL="gevent", LEASE_SECONDS="6", LLM_MAX_ATTEMPTS="1", LOG_LEVEL="WARNING",
    )  # fmt: skip
    users = [USER + n for n in range(1, 9)]
    workers = [worker_process(env, f"doomed{n}", 2) for n in (1, 2)]
    try:
        producer = producer_for(app, env)
        for user in users:
            enqueue_update(producer, telegram.inject_message(user, f"question of {user}"))
        wait_until(lambda: slow_llm.in_flight >= 3, timeout=60, what="both workers to be calling")
        for worker in workers:
            os.killpg(worker.pid, signal.SIGKILL)
        for worker in workers:
            worker.wait(10)
        answered_before = len([c for c in telegram.calls("sendMessage") if c.ok])
        time.sleep(2)  # the restart policy's delay: nothing is running now
        workers = [worker_process(env, f"reborn{n}", 2) for n in (1, 2)]
        wait_until(
            lambda: (
                len({c.params["chat_id"] for c in telegram.calls("sendMessage") if c.ok})
                == len(users)
            ),
            timeout=LEASE + SWEEP + 30 + 4 * len(users) / 4,  # a lease, a sweep, starts, calls
            what="every message to be answered",
        )
        time.sleep(3)  # anything sent twice would arrive by now
    finally:
        for worker in workers:
            stop_process(worker)
    answers = [c for c in telegram.calls("sendMessage") if c.ok]
    assert answered_before < len(users), "the kill came while work was in flight"
    assert sorted(int(c.params["chat_id"]) for c in answers) == users, "each answered once"
    for call in answers:
        assert call.params["text"].startswith(
            f"slow answer to question of {call.params['chat_id']}"
        )
    with app.app_context():
        rows = db.session.scalars(select(Request)).all()
        assert sorted((r.status, r.delivered_parts) for r in rows) == [("ok", 1)] * len(users)
