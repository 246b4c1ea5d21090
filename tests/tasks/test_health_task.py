"""A task goes through the real broker to the real worker and its result comes back."""

from __future__ import annotations

import uuid

from flask import Flask


def test_ping_round_trip(app: Flask, celery_worker) -> None:
    """Enqueued by name (as web and listener do), run by the worker, answered via the backend."""
    celery = app.extensions["celery"]
    payload = uuid.uuid4().hex
    result = celery.send_task("tasks.health.ping", args=[payload])
    assert result.get(timeout=30) == {"pong": payload}


def test_routes_put_tasks_on_their_queues(app: Flask) -> None:
    """Fast and slow work go to different queues, so commands never wait behind LLM calls."""
    celery = app.extensions["celery"]
    router = celery.amqp.router
    assert router.route({}, "tasks.updates.process_update")["queue"].name == "updates"
    assert router.route({}, "tasks.replies.generate_reply")["queue"].name == "llm"
    assert router.route({}, "tasks.health.ping")["queue"].name == "updates"


def test_worker_settings_are_safe(app: Flask) -> None:
    """JSON only, late acks with requeue on worker loss, prefetch 1, time limits, pool."""
    conf = app.extensions["celery"].conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    # one lease: the worker renews what it holds (tests/e2e/test_crash.py proves both sides)
    assert (
        conf.broker_transport_options["visibility_timeout"] == app.config["AI_ROUTER"].lease_seconds
    )
    # This process is not monkey-patched: a worker started here without --pool gevent gets
    # threads (a gevent pool would run nothing); `--pool gevent` workers are tested in e2e.
    assert conf.worker_pool == "threads" and conf.worker_concurrency == 4
