"""The admin's live status while the worker is busy: answers running, questions waiting.

The suite's worker runs 4 tasks at once and takes no more than it runs (prefetch 1); the model
takes 4 s per answer, so of six questions two wait in the ``llm`` queue, and the admin's status
(``GET /admin/status``, what the bot page and the dashboard poll) shows them there and the
worker busy, then both empty again once everything is answered.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from shared.celery_setup import enqueue_update
from shared.services import workers
from tests.e2e.conftest import producer_for, use_slow_model, worker_process
from tests.fakes.slow_llm import SlowLLM
from tests.fakes.telegram import FakeTelegram
from tests.support import app_env, stop_process, wait_until
from tests.web.test_admin_login import login

USERS = range(7001, 7007)


def _status(client) -> dict[str, Any]:
    response = client.get("/admin/status")
    assert response.status_code == 200, response.text
    return response.get_json()


def test_waiting_questions_and_a_busy_worker_show_live(
    app: Flask, client, celery_worker, telegram: FakeTelegram, slow_llm: SlowLLM
) -> None:
    """Six slow questions: some wait in ``llm``, the worker reports tasks running; then none."""
    use_slow_model(app, telegram, slow_llm)
    assert login(client).status_code == 302
    for user_id in USERS:
        enqueue_update(app, telegram.inject_message(user_id, "take your time"))

    waiting = wait_until(
        lambda: (s := _status(client))["queues"]["llm"] >= 1 and s, what="questions to wait"
    )
    assert waiting["bot"]["queue_depth"] == waiting["queues"]["llm"] + waiting["queues"]["updates"]
    busy = wait_until(
        lambda: [w for w in _status(client)["workers"] if w["active"] >= 1],
        what="the worker's heartbeat to report tasks running",
    )
    assert busy[0]["hostname"] == celery_worker.hostname

    # An answer carries the «Начать новый диалог» button.
    telegram.wait_for_calls(
        "sendMessage", len(USERS), lambda c: "reply_markup" in c.params, timeout=60
    )
    idle = wait_until(
        lambda: (s := _status(client))["queues"] == {"updates": 0, "llm": 0} and s,
        what="the queues to empty",
    )
    assert [w["hostname"] for w in idle["workers"]] == [celery_worker.hostname]


def test_a_worker_that_stops_cleanly_leaves_the_list_at_once(
    app: Flask, config, telegram: FakeTelegram, own_redis: str, tmp_path
) -> None:
    """Listed from its heartbeats while it runs; gone as soon as it has stopped (SIGTERM).

    Without the goodbye (Celery's worker-offline) it would stay listed until its last beat
    expired, ten seconds later.
    """
    env = app_env(
        tmp_path, config.database_url, own_redis,
        TELEGRAM_API_URL=telegram.url, WORKER_POOL="gevent", LOG_LEVEL="WARNING",
    )  # fmt: skip
    other = producer_for(app, env)

    def leaving() -> list[dict[str, Any]]:
        with other.app_context():
            return [w for w in workers.live_workers() if w["hostname"].startswith("leaving@")]

    worker = worker_process(env, "leaving", 10)
    try:
        wait_until(leaving, timeout=60, what="the worker's first heartbeat")
    finally:
        stop_process(worker)
    assert worker.returncode == 0, "a warm shutdown"
    assert leaving() == []
