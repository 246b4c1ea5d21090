"""Outages of the parts around the listener: it pauses while they are gone, it never exits.

The listener runs in a thread of the test against a Redis of the test's own, which is stopped
and started again mid-run (same socket, same instance folder: what a restart policy does).
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from bot.listener import Listener
from shared.celery_setup import enqueue_update
from shared.config import Config
from shared.db import db
from shared.embedded_redis import EmbeddedRedis
from shared.models import Request
from shared.services import bot_control
from shared.services.settings import set_setting
from tests.e2e.conftest import producer_for, use_slow_model, worker_process
from tests.fakes.slow_llm import SlowLLM
from tests.fakes.telegram import FakeTelegram
from tests.support import app_env, stop_process, wait_until

pytestmark = pytest.mark.e2e


def test_the_listener_survives_a_redis_outage(
    app: Flask, config: Config, telegram: FakeTelegram, tmp_path: Path
) -> None:
    """Redis stops for a few seconds while polling: the listener waits, then carries on."""
    server = EmbeddedRedis(tmp_path / "r.sock", tmp_path, persist=False)
    server.start()
    env = app_env(tmp_path, config.database_url, server.url, TELEGRAM_API_URL=telegram.url)
    listener_app = producer_for(app, env)  # the suite's Celery app stays the current one
    with app.app_context():
        set_setting("telegram_bot_token", telegram.token)
        db.session.commit()
    with listener_app.app_context():
        bot_control.set_desired(bot_control.POLLING)
    stop = threading.Event()
    thread = threading.Thread(target=Listener(listener_app, stop, poll_timeout=1).run)
    thread.start()
    try:
        telegram.wait_for_polling(timeout=30)
        server.stop()
        time.sleep(4)  # several steps fail against the missing Redis
        assert thread.is_alive(), "the listener exited during the outage"
        server.start()
        with listener_app.app_context():
            bot_control.set_desired(bot_control.POLLING)  # the restarted Redis is empty
        telegram.inject_message(900_001, "after the outage")
        redis = listener_app.extensions["redis"]
        wait_until(lambda: int(redis.llen("llm")) == 1, timeout=30, what="the update to be queued")
    finally:
        stop.set()
        thread.join(30)
        server.stop()
    assert not thread.is_alive()


def test_the_listener_survives_a_redis_outage_in_webhook_mode(
    app: Flask, config: Config, telegram: FakeTelegram, tmp_path: Path
) -> None:
    """Webhook mode (issue #10 saw the listener exit three times): it waits, then carries on.

    After the outage the listener reports itself running again in webhook mode, from the
    restarted (empty) Redis.
    """
    server = EmbeddedRedis(tmp_path / "r.sock", tmp_path, persist=False)
    server.start()
    env = app_env(tmp_path, config.database_url, server.url, TELEGRAM_API_URL=telegram.url)
    listener_app = producer_for(app, env)
    with app.app_context():
        set_setting("telegram_bot_token", telegram.token)
        set_setting("webhook_url", "https://bot.example.com/telegram/webhook")
        db.session.commit()
    with listener_app.app_context():
        bot_control.set_desired(bot_control.WEBHOOK)
    stop = threading.Event()
    thread = threading.Thread(target=Listener(listener_app, stop, poll_timeout=1).run)
    thread.start()
    try:
        telegram.wait_for_call("setWebhook", timeout=30)
        server.stop()
        time.sleep(4)  # several steps fail against the missing Redis
        assert thread.is_alive(), "the listener exited during the outage"
        server.start()
        with listener_app.app_context():
            bot_control.set_desired(bot_control.WEBHOOK)  # the restarted Redis is empty

        def running() -> bool:
            with listener_app.app_context():
                status = bot_control.bot_status()
            return status["state"] == "running" and status["desired"] == "webhook"

        wait_until(running, timeout=30, what="the listener to report webhook mode again")
    finally:
        stop.set()
        thread.join(30)
        server.stop()
    assert not thread.is_alive()


def _ask_again(
    producer: Flask, telegram: FakeTelegram, users: range, worker: subprocess.Popen[bytes]
) -> None:
    """Each user writes again after the fault; six answers in all, and the worker lives on."""
    for user in users:
        enqueue_update(producer, telegram.inject_message(user, f"after, from {user}"))
    wait_until(
        lambda: len([c for c in telegram.calls("sendMessage") if c.ok]) >= 6,
        timeout=120,
        what="six answers",
    )
    time.sleep(3)  # an answer sent twice would arrive by now
    assert worker.poll() is None, "the worker exited"


def _answers(telegram: FakeTelegram) -> list[str]:
    """The six answers' texts: all different (nothing was answered twice)."""
    texts = sorted(c.params["text"] for c in telegram.calls("sendMessage") if c.ok)
    assert len(texts) == 6 and len(set(texts)) == 6
    return texts


def test_a_worker_survives_a_redis_outage(
    app: Flask, config: Config, telegram: FakeTelegram, slow_llm: SlowLLM, tmp_path: Path
) -> None:
    """Redis stops for a few seconds under a gevent worker, then comes back with its data.

    The worker keeps running (it reconnects), and the messages sent before, during and after
    the outage are all answered, once each.
    """
    server = EmbeddedRedis(tmp_path / "r.sock", tmp_path, persist=True)
    server.start()
    use_slow_model(app, telegram, slow_llm)
    env = app_env(
        tmp_path, config.database_url, server.url, TELEGRAM_API_URL=telegram.url,
        WORKER_POOL="gevent", LEASE_SECONDS="6", LOG_LEVEL="WARNING",
    )  # fmt: skip
    worker = worker_process(env, "outage", 50)
    try:
        producer = producer_for(app, env)
        users = range(910_001, 910_004)
        for user in users:
            enqueue_update(producer, telegram.inject_message(user, f"before, from {user}"))
        wait_until(lambda: slow_llm.in_flight == 3, timeout=60, what="three calls in flight")
        server.stop()  # mid-call: the answers cannot be recorded as sent in Redis
        time.sleep(12)  # longer than the 10 s that made workers exit (issue #10)
        assert worker.poll() is None, "the worker exited during the outage"
        server.start()
        _ask_again(producer, telegram, users, worker)
    finally:
        stop_process(worker)
        server.stop()
    texts = _answers(telegram)
    assert sum(t.startswith("slow answer to before") for t in texts) == 3


def test_a_database_restart_costs_no_answer(
    app: Flask, config: Config, telegram: FakeTelegram, slow_llm: SlowLLM, tmp_path: Path
) -> None:
    """Every PostgreSQL connection of the worker is cut, twice; every message is answered once.

    What a restart does to a client — each open connection ends with ``AdminShutdown`` — is
    done here with ``pg_terminate_backend`` on the worker's own connections (named by
    ``application_name``), so the shared server of the suite keeps running. The first cut
    comes while three LLM calls are in flight (no connection is held during a call), the second
    between messages (the pool's ping replaces dead connections at checkout).
    """
    if not config.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only (TEST_DATABASE_URL); SQLite has no server to restart")
    name = f"air-restart-{uuid.uuid4().hex[:8]}"
    database_url = make_url(config.database_url).update_query_dict({"application_name": name})
    server = EmbeddedRedis(tmp_path / "r.sock", tmp_path, persist=False)
    server.start()
    use_slow_model(app, telegram, slow_llm)
    env = app_env(
        tmp_path, database_url.render_as_string(hide_password=False), server.url,
        TELEGRAM_API_URL=telegram.url, WORKER_POOL="gevent", LOG_LEVEL="WARNING",
    )  # fmt: skip
    worker = worker_process(env, "pg-restart", 50)

    def cut() -> int:
        with app.app_context(), db.engine.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = :name"
                    ),
                    {"name": name},
                ).all()
            )

    try:
        producer = producer_for(app, env)
        users = range(920_001, 920_004)
        for user in users:
            enqueue_update(producer, telegram.inject_message(user, f"before, from {user}"))
        wait_until(lambda: slow_llm.in_flight == 3, timeout=60, what="three calls in flight")
        assert cut() >= 1, "the worker had connections to cut"
        wait_until(
            lambda: len([c for c in telegram.calls("sendMessage") if c.ok]) >= 3,
            timeout=60,
            what="the first three answers",
        )

        def settled() -> bool:
            with app.app_context():
                rows = db.session.scalars(select(Request.delivered_at)).all()
                db.session.close()
            return len(rows) == 3 and all(rows)

        # Between messages: once the answers are recorded as delivered. A cut between
        # Telegram's acceptance and that record would make the retry send the answer again
        # (the at-least-once window of any send followed by its record).
        wait_until(settled, timeout=60, what="the first three answers recorded as delivered")
        assert cut() >= 1
        _ask_again(producer, telegram, users, worker)
    finally:
        stop_process(worker)
        server.stop()
    _answers(telegram)
    assert slow_llm.served == 6, "one LLM call per message"
    with app.app_context():
        statuses = db.session.scalars(select(Request.status)).all()
    assert sorted(statuses) == ["ok"] * 6
