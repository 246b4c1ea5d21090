"""``GET /metrics``: what the deployment did, counted by the processes that did it, summed in Redis.

The suite's worker and the web app record into their buffers; the flusher adds them to Redis
every two seconds, so each test waits until the scrape shows what it caused.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from shared.metrics import IN_FLIGHT_PREFIX
from tests.e2e.conftest import Conversation
from tests.support import wait_until
from web import create_app

pytestmark = pytest.mark.e2e

ALICE = 601
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(client: Any, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_conversation_is_counted_end_to_end(conversation: Conversation, client: Any) -> None:
    """Updates in, the LLM call (count, latency, first token), Bot API calls, replies out."""
    conversation.say(ALICE, "/help", language_code="en")
    conversation.sent(ALICE)
    conversation.say(ALICE, "hello there", language_code="en")
    conversation.sent(ALICE, 2)

    def counted() -> Samples | None:
        samples = _scrape(client)
        wanted = (
            _value(samples, "ai_router_updates_received_total", kind="question") >= 1,
            _value(samples, "ai_router_updates_received_total", kind="command") >= 1,
            _value(samples, "ai_router_replies_delivered_total", status="ok") >= 1,
            _value(samples, "ai_router_llm_requests_total", model="Mock GPT", outcome="ok") >= 1,
            _value(samples, "ai_router_llm_latency_seconds_count", model="Mock GPT") >= 1,
            _value(samples, "ai_router_llm_time_to_first_token_seconds_count", model="Mock GPT")
            >= 1,
            _value(samples, "ai_router_telegram_calls_total", method="sendMessage", outcome="ok")
            >= 2,
        )
        return samples if all(wanted) else None

    samples = wait_until(counted, timeout=20, what="the conversation in /metrics")
    assert _value(samples, "ai_router_llm_latency_seconds_sum", model="Mock GPT") > 0
    count = _value(samples, "ai_router_llm_latency_seconds_count", model="Mock GPT")
    assert _value(samples, "ai_router_llm_latency_seconds_bucket", model="Mock GPT", le="+Inf") == (
        count
    )
    assert ("ai_router_queue_depth", (("queue", "llm"),)) in samples
    assert ("ai_router_queue_depth", (("queue", "updates"),)) in samples
    assert ("ai_router_answers_in_flight", ()) in samples


def test_refusals_and_rate_limits_are_counted(conversation: Conversation, client: Any) -> None:
    """An LLM 429 and a Telegram 429 (with its retry_after seconds) show by outcome."""
    conversation.llm.script(
        {"type": "fail", "status": 429, "retry_after": 0.2, "times": 1},
        {"type": "reply", "text": "Worth the wait."},
    )
    conversation.telegram.fail_next("sendMessage", error_code=429, retry_after=1)
    conversation.say(ALICE, "hi", language_code="en")
    assert "Worth the wait." in conversation.sent(ALICE)[0].params["text"]

    def counted() -> bool:
        samples = _scrape(client)
        return (
            _value(samples, "ai_router_llm_requests_total", model="Mock GPT", outcome="429") >= 1
            and _value(
                samples, "ai_router_telegram_calls_total", method="sendMessage", outcome="429"
            )
            >= 1
            and _value(samples, "ai_router_telegram_retry_after_seconds_total") >= 1
        )

    wait_until(counted, timeout=20, what="the 429s in /metrics")


def test_answers_in_flight_sum_every_process(app: Flask, client: Any, redis: Any) -> None:
    """Each process reports its own count (expiring); the scrape adds them up."""
    redis.set(f"{IN_FLIGHT_PREFIX}host-a:1", 3, ex=30)
    redis.set(f"{IN_FLIGHT_PREFIX}host-b:7", 4, ex=30)
    samples = _scrape(client)
    assert _value(samples, "ai_router_answers_in_flight") >= 7


def test_the_token_guards_the_endpoint(app: Flask) -> None:
    """With METRICS_TOKEN set: 401 without it or with another one, 200 with it."""
    config = dataclasses.replace(app.config["AI_ROUTER"], metrics_token="scrape-secret")
    guarded = create_app(config, {"TESTING": True})
    celery = app.extensions["celery"]
    celery.set_default()  # building an app made its Celery current; the suite's stays so
    celery.set_current()
    client = guarded.test_client()
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert _scrape(client, Authorization="Bearer scrape-secret")
