"""The two doors for updates: the webhook endpoint and the polling listener, both to one task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from bot.listener import Listener
from shared.celery_setup import enqueue_update
from shared.config import PROJECT_ROOT
from shared.db import db
from shared.services import bot_control
from shared.services.settings import set_setting
from tests.e2e.conftest import Conversation, producer_for
from tests.support import app_env, free_port, stop_process, wait_until

pytestmark = pytest.mark.e2e

BOB = 602
SECRET = "s3cret-token_ABC"
HEADER = "X-Telegram-Bot-Api-Secret-Token"


@pytest.fixture()
def webhook_secret(app: Flask) -> str:
    """The bot in webhook mode, with the secret the listener stored when it registered."""
    with app.app_context():
        set_setting("webhook_url", "https://bot.example.com/telegram/webhook")
        set_setting("webhook_secret", SECRET)
        db.session.commit()
        bot_control.set_desired(bot_control.WEBHOOK)
    return SECRET


def test_webhook_with_wrong_secret_is_refused_and_not_enqueued(
    client, conversation: Conversation, webhook_secret: str
) -> None:
    """Wrong or missing secret: 403 and nothing runs; the right secret: 200 and an answer."""
    wrong = conversation.telegram.inject_message(BOB, "intruder")
    assert client.post("/telegram/webhook", json=wrong, headers={HEADER: "nope"}).status_code == 403
    assert client.post("/telegram/webhook", json=wrong).status_code == 403

    right = conversation.telegram.inject_message(BOB, "hello via webhook")
    response = client.post("/telegram/webhook", json=right, headers={HEADER: webhook_secret})
    assert response.status_code == 200 and response.get_json() == {"ok": True}
    conversation.sent(BOB)
    assert [row.request_text for row in conversation.rows(BOB)] == ["hello via webhook"]
    assert len(conversation.llm.chat_requests()) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'"text"',
        b'{"update_id": "1"}',
        b'{"message": {"text": "no update id"}}',
        b'{"update_id": 1, "message": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001,
        b'{"update_id": 1, "message": {"text": "' + bytes([0xFF, 0xFE]) + b'"}}',
    ],
    ids=["text", "array", "string", "id-string", "no-id", "deeply-nested", "not-utf8"],
)
def test_webhook_rejects_a_body_that_is_not_an_update(
    client, app: Flask, webhook_secret: str, body: bytes
) -> None:
    """A body that is not an update is a 400, never a 5xx, and nothing is queued."""
    redis = app.extensions["redis"]
    response = client.post(
        "/telegram/webhook",
        data=body,
        headers={HEADER: webhook_secret, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert sum(int(redis.llen(q)) for q in ("updates", "llm")) == 0


def test_webhook_refuses_a_huge_body(client, webhook_secret: str) -> None:
    """Over 1 MiB: 413 before anything is parsed."""
    body = b'{"update_id": 1, "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = client.post(
        "/telegram/webhook",
        data=body,
        headers={HEADER: webhook_secret, "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_webhook_answers_503_when_the_queue_is_down(
    tmp_path: Path, database_url: str, webhook_secret: str
) -> None:
    """If the update cannot be queued, Telegram is told to retry (5xx), not 200.

    The web app runs as its own process (as in production) with Redis pointing at a socket
    nobody listens on, so the broker really is down for it.
    """
    port = free_port()
    env = dict(os.environ)
    env.update(app_env(tmp_path, database_url, f"unix://{tmp_path / 'down.sock'}"))
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--port", str(port)],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{base}/healthz", timeout=2).status_code == 503)
        response = requests.post(
            f"{base}/telegram/webhook", json={"update_id": 1}, headers={HEADER: webhook_secret},
            timeout=30,
        )  # fmt: skip
    finally:
        stop_process(process)
    assert response.status_code == 503


@pytest.fixture()
def listener(app: Flask) -> Iterator[Listener]:
    """A listener running in a thread of the test process (``python -m bot`` runs the same)."""
    stop = threading.Event()
    instance = Listener(app, stop, poll_timeout=1)
    thread = threading.Thread(target=instance.run, name="listener", daemon=True)
    thread.start()
    yield instance
    stop.set()
    thread.join(30)
    assert not thread.is_alive()


def test_polling_listener_brings_messages_to_the_bot(
    app: Flask, conversation: Conversation, listener: Listener
) -> None:
    """Desired mode polling: the listener long-polls, the user gets the answer, offset acked."""
    with app.app_context():
        bot_control.set_desired(bot_control.POLLING)
    conversation.telegram.wait_for_polling(timeout=30)
    update = conversation.telegram.inject_message(BOB, "hello via polling")
    conversation.sent(BOB)
    conversation.telegram.wait_for_call(
        "getUpdates", lambda c: int(c.params.get("offset", 0)) > update["update_id"]
    )
    commands = conversation.telegram.wait_for_call("setMyCommands")
    assert [c["command"] for c in commands.params["commands"]] == [
        "start",
        "help",
        "settings",
        "new",
        "usage",
        "buy",
        "stop",
    ]

    def running() -> dict | None:
        with app.app_context():
            status = bot_control.bot_status()
        return status if status["state"] == "running" and status["last_update_at"] else None

    status = wait_until(running, what="heartbeat with the last update")
    assert status["desired"] == "polling"


def test_webhook_mode_registers_and_serves_updates(
    app: Flask, conversation: Conversation, listener: Listener
) -> None:
    """Desired mode webhook: setWebhook with a secret; Telegram's POSTs reach the real web app."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with app.app_context():
            set_setting("webhook_url", f"http://127.0.0.1:{port}/telegram/webhook")
            db.session.commit()
            bot_control.set_desired(bot_control.WEBHOOK)
        registered = conversation.telegram.wait_for_call("setWebhook", timeout=30)
        assert registered.params["url"].endswith("/telegram/webhook")
        assert len(registered.params["secret_token"]) >= 32
        conversation.telegram.inject_message(BOB, "hello via webhook mode")
        conversation.sent(BOB)
        assert conversation.telegram.deliveries[0].status_code == 200

        with app.app_context():
            bot_control.set_desired(bot_control.STOPPED)
        conversation.telegram.wait_for_call("deleteWebhook", timeout=30)
        late = conversation.telegram.inject_message(BOB, "after stop")
        response = app.test_client().post(
            "/telegram/webhook", json=late, headers={HEADER: registered.params["secret_token"]}
        )
        assert response.status_code == 403, "a stopped bot takes no webhook updates"
    finally:
        server.shutdown()


def test_webhook_mode_needs_a_url(app: Flask) -> None:
    """Starting webhook mode without a webhook URL is refused with a clear message."""
    with app.app_context(), pytest.raises(bot_control.BotControlError, match="webhook URL"):
        bot_control.set_desired(bot_control.WEBHOOK)


def test_only_one_listener_polls(app: Flask, conversation: Conversation) -> None:
    """Two listeners up, desired mode polling: one polls, the other stands by (a Redis lock)."""
    stops = [threading.Event(), threading.Event()]
    listeners = [Listener(app, stop, poll_timeout=1) for stop in stops]
    threads = [threading.Thread(target=item.run, daemon=True) for item in listeners]
    with app.app_context():
        bot_control.set_desired(bot_control.POLLING)
    for thread in threads:
        thread.start()
    try:
        conversation.telegram.wait_for_polling(timeout=30)
        wait_until(
            lambda: any(item.status.last_error and "standing by" in item.status.last_error
                        for item in listeners),
            what="the second listener to stand by",
        )  # fmt: skip
        conversation.telegram.inject_message(BOB, "exactly one poller")
        conversation.sent(BOB)
        conflicts = [c for c in conversation.telegram.calls("getUpdates") if c.status == 409]
        assert conflicts == [], "two getUpdates long polls ran at the same time"
        assert len(conversation.rows(BOB)) == 1
    finally:
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(30)


def test_a_queued_update_carries_its_id_not_its_text_in_the_headers(
    app: Flask, config, telegram, own_redis: str, tmp_path: Path
) -> None:
    """The task message names the update (for Flower and the logs) without a copy of it."""
    env = app_env(tmp_path, config.database_url, own_redis, TELEGRAM_API_URL=telegram.url)
    producer = producer_for(app, env)
    update = telegram.inject_message(BOB, "a private question " * 20)
    enqueue_update(producer, update)
    (raw,) = producer.extensions["redis"].lrange("llm", 0, -1)
    headers = json.loads(raw)["headers"]
    assert headers["argsrepr"] == f"(<update {update['update_id']}>)"
    assert "private question" not in json.dumps(headers)
