"""Well-formed but hostile updates through the webhook: ignored or refused, never fatal.

The bodies parse as updates (an integer ``update_id``), so the webhook queues them and a real
worker handles them: kinds the bot does not serve, messages missing their chat or sender,
ids of the wrong type or beyond any column, and forged button data. None may crash a task into
retries, write a log row, change a setting, or reach a chat other than the presser's; the bot
goes on answering real users.
"""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from shared.db import db
from shared.models import User
from shared.services.settings import get_setting
from tests.e2e.conftest import Conversation
from tests.e2e.test_ingress import HEADER, webhook_secret  # noqa: F401 - the fixture
from tests.support import wait_until

pytestmark = pytest.mark.e2e

EVE = 666
CAROL = 667
_PRIVATE = {"id": EVE, "type": "private", "first_name": "Eve"}
_EVE = {"id": EVE, "is_bot": False, "first_name": "Eve"}
_BOT = {"id": 1, "is_bot": True, "first_name": "Bot"}


def _message(**fields: object) -> dict:
    return {"message_id": 1, "date": 1, "chat": _PRIVATE, "from": _EVE, "text": "hi", **fields}


def _press(data: str, **fields: object) -> dict:
    query = {"id": "q1", "from": _EVE, "chat_instance": "1", "data": data, **fields}
    query.setdefault("message", {**_message(), "from": _BOT})
    return query


HOSTILE = {
    "edited_message": {"edited_message": _message(text="edited")},
    "channel_post": {"channel_post": _message(chat={"id": -100, "type": "channel"})},
    "unknown_kind": {"something_new": {"text": "hello"}},
    "no_chat": {"message": {k: v for k, v in _message().items() if k != "chat"}},
    "no_sender": {"message": {k: v for k, v in _message().items() if k != "from"}},
    "string_ids": {"message": _message(chat={"id": "x"}, **{"from": {"id": "y"}})},
    "huge_ids": {"message": _message(chat={"id": 2**70}, **{"from": {"id": 2**70}})},
    "text_not_string": {"message": _message(text=12345)},
    "text_object": {"message": _message(text={"$ne": 1})},
    "garbage_button": {"callback_query": _press("garbage")},
    "mode_button_bad_id": {"callback_query": _press("mode:999999999999999999999")},
    "model_button_not_int": {"callback_query": _press("model:DROP TABLE users")},
    "long_button": {"callback_query": _press("mode:" + "9" * 10_000)},
    "button_without_message": {"callback_query": _press("mode:1", message=None)},
    "button_of_another_chat": {
        "callback_query": _press(
            "new_dialog", message={**_message(chat={"id": CAROL, "type": "private"}), "from": _BOT}
        )
    },
}  # fmt: skip
#: Dropped at the door (``shared.telegram.updates.problem``); the others reach a task.
MALFORMED = {
    "no_chat", "no_sender", "string_ids", "huge_ids", "text_not_string", "text_object",
    "long_button", "button_without_message",
}  # fmt: skip


def test_hostile_updates_are_ignored_and_the_bot_carries_on(
    app: Flask,
    client,
    conversation: Conversation,
    webhook_secret: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each is accepted (200, Telegram must not resend it), harms nothing, and the bot answers.

    No task fails on them: a failure is logged at ERROR (the worker runs in this process, so
    its log records are captured here).
    """
    caplog.set_level(logging.INFO)
    with app.app_context():
        registration = get_setting("registration")
    ids = {name: number for number, name in enumerate(HOSTILE, start=9_000_000)}
    for name, body in HOSTILE.items():
        number = ids[name]
        response = client.post(
            "/telegram/webhook",
            json={"update_id": number, **body},
            headers={HEADER: webhook_secret},
        )
        assert response.status_code == 200, name
    conversation.say(CAROL, "a real question")
    conversation.sent(CAROL)
    # The queues drain (nothing retried forever) and nothing reached anyone else.
    redis = app.extensions["redis"]
    wait_until(lambda: sum(int(redis.llen(q)) for q in ("updates", "llm")) == 0, what="the queues")
    chats = {str(c.params.get("chat_id")) for c in conversation.telegram.calls("sendMessage")}
    assert chats <= {str(CAROL), str(EVE)}
    assert not [c for c in conversation.telegram.calls() if str(c.params.get("chat_id")) == "-100"]
    assert [row.request_text for row in conversation.rows(CAROL)] == ["a real question"]
    assert conversation.rows(EVE) == []
    failures = [r.getMessage()[:300] for r in caplog.records if r.levelno >= logging.ERROR]
    assert not failures, failures
    dropped = {
        int(r.getMessage().split("update_id=")[1].split(":")[0])
        for r in caplog.records
        if r.getMessage().startswith("dropped a malformed update")
    }
    assert dropped == {ids[name] for name in MALFORMED}
    with app.app_context():
        assert get_setting("registration") == registration
        assert db.session.query(User).filter(User.telegram_id > 2**62).count() == 0
