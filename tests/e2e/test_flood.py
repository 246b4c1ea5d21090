"""Telegram's flood limits on: a burst of users, two worker processes, one shared pacer.

The fake Bot API enforces Telegram's limits (30 messages/s for the bot, about 1/s per chat,
429 with ``retry_after`` and growing penalties beyond them). Two gevent workers, each in its own
process as ``make run`` with ``WORKER_PROCESSES=2`` starts them, answer a burst of users that
all write at the same moment. Without one pacer shared through Redis each worker would send at
the full rate and the fake would answer 429 after 429; with it, every user gets exactly one
answer, nobody gets an apology, and 429s stay a rare accident.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select

from shared.celery_setup import enqueue_update
from shared.config import Config
from shared.db import db
from shared.models import Request
from tests.e2e.conftest import producer_for, use_slow_model, worker_process
from tests.fakes.slow_llm import SlowLLM
from tests.fakes.telegram import FakeTelegram, FloodLimits
from tests.support import app_env, stop_process, wait_until

#: Enough users that the burst lasts beyond the pacer's 10 s horizon (30/s): some replies are
#: deferred to later tasks.
USERS = 400
FIRST_USER = 810_000


def _answers(telegram: FakeTelegram) -> list:
    """Accepted answers: sendMessage calls that carry the «new dialog» button."""
    return [
        call
        for call in telegram.calls("sendMessage")
        if call.ok and call.params.get("reply_markup")
    ]


@contextmanager
def _two_workers_under_flood_limits(
    app: Flask, config: Config, telegram: FakeTelegram, own_redis: str, tmp_path: Path
) -> Iterator[tuple[SlowLLM, Flask]]:
    """Two gevent worker processes, Telegram's flood limits on, a model answering in 0.5 s.

    Yields:
        The model and the app to enqueue updates with; the workers stop on exit.
    """
    with SlowLLM(delay=0.5) as llm:
        use_slow_model(app, telegram, llm)
        telegram.set_flood_limits(FloodLimits())
        env = app_env(
            tmp_path, config.database_url, own_redis,
            TELEGRAM_API_URL=telegram.url, WORKER_POOL="gevent", LOG_LEVEL="WARNING",
        )  # fmt: skip
        workers = [worker_process(env, f"flood{n}", 500) for n in (1, 2)]
        try:
            yield llm, producer_for(app, env)
        finally:
            for worker in workers:
                stop_process(worker)


def test_a_burst_of_users_loses_no_answer_and_gets_no_429_storm(
    app: Flask,
    config: Config,
    telegram: FakeTelegram,
    own_redis: str,
    tmp_path: Path,
) -> None:
    """400 users at once, two workers: 400 answers, one each, no apology, 429s ≤ 1 %."""
    with _two_workers_under_flood_limits(app, config, telegram, own_redis, tmp_path) as (
        llm,
        producer,
    ):
        for user in range(FIRST_USER, FIRST_USER + USERS):
            enqueue_update(producer, telegram.inject_message(user, f"question of {user}"))
        wait_until(
            lambda: len(_answers(telegram)) >= USERS,
            timeout=120,
            interval=0.5,
            what=f"{USERS} answers under flood limits",
        )
    answers = _answers(telegram)
    chats = [call.params["chat_id"] for call in answers]
    assert sorted(chats) == list(range(FIRST_USER, FIRST_USER + USERS)), "one answer per user"
    calls = telegram.calls()
    refused = telegram.flood_refusals()
    assert refused <= len(calls) // 100, f"{refused} of {len(calls)} Bot API calls got 429"
    with app.app_context():
        statuses = dict(
            db.session.execute(select(Request.status, func.count()).group_by(Request.status)).all()
        )
        delivered = db.session.scalar(select(func.count()).where(Request.delivered_at.is_not(None)))
    assert statuses == {"ok": USERS}, "no apology, no error"
    assert delivered == USERS
    assert llm.served == USERS, "one LLM call per message"


def test_two_messages_per_user_under_flood_limits_are_answered_once_each_in_order(
    app: Flask,
    config: Config,
    telegram: FakeTelegram,
    own_redis: str,
    tmp_path: Path,
) -> None:
    """150 users send two messages at once, two workers, 429s: two answers each, in order.

    The second question of a user is asked with the first exchange as history and nothing
    else, and each answer is sent once (before leases and ordered chats, a 429 retry could send
    an answer twice and mix both turns into one).
    """
    users = range(FIRST_USER, FIRST_USER + 150)
    with _two_workers_under_flood_limits(app, config, telegram, own_redis, tmp_path) as (
        llm,
        producer,
    ):
        for user in users:
            enqueue_update(producer, telegram.inject_message(user, f"first of {user}"))
            enqueue_update(producer, telegram.inject_message(user, f"second of {user}"))
        wait_until(
            lambda: len(_answers(telegram)) >= 2 * len(users),
            timeout=120,
            interval=0.5,
            what="two answers per user under flood limits",
        )
    by_chat: dict[int, list[str]] = {}
    for call in _answers(telegram):
        by_chat.setdefault(int(call.params["chat_id"]), []).append(call.params["text"])
    for user in users:
        assert by_chat[user] == [
            f"slow answer to first of {user}",
            f"slow answer to second of {user}",
        ], by_chat[user]
    assert llm.served == 2 * len(users), "one LLM call per message"
    for user in users:
        (second,) = [p for p in llm.prompts if p[-1]["content"] == f"second of {user}"]
        asked = [m["content"] for m in second if m["role"] in ("user", "assistant")]
        assert asked == [
            f"first of {user}",
            f"slow answer to first of {user}",
            f"second of {user}",
        ]
