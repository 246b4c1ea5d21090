"""Telegram's refusals and failures end to end.

A 403 marks the user unreachable; other 4xx are not retried; a command whose replies failed
half-way sends only what is missing when it is retried.
"""

from __future__ import annotations

import pytest

from shared.extensions import telegram as bot_api
from shared.telegram.client import ChatUnreachable
from tests.e2e.conftest import Conversation
from tests.support import wait_until

pytestmark = pytest.mark.e2e

CAROL = 701
BLOCKED = "Forbidden: bot was blocked by the user"


def _settled(conversation: Conversation, user: int, count: int) -> bool:
    rows = conversation.rows(user)
    return len(rows) == count and all(row.delivered_at is not None for row in rows)


def test_a_403_makes_the_user_unreachable_until_they_write(conversation: Conversation) -> None:
    """Blocked: no retry, ``reachable: false``, nothing sent; writing again makes it true."""
    conversation.telegram.fail_next("sendMessage", error_code=403, description=BLOCKED)
    conversation.say(CAROL, "hi")
    wait_until(lambda: _settled(conversation, CAROL, 1), timeout=30, what="the reply settled")
    assert len(conversation.telegram.calls("sendMessage")) == 1, "a 403 is never retried"
    (row,) = conversation.rows(CAROL)
    assert f"undeliverable: 403 {BLOCKED}" in row.error
    assert conversation.user(CAROL).reachable is False

    with conversation.app.app_context(), pytest.raises(ChatUnreachable):
        bot_api.send_message(CAROL, "anything")  # every worker refuses before calling Telegram
    assert len(conversation.telegram.calls("sendMessage")) == 1

    conversation.say(CAROL, "I am back")
    conversation.sent(CAROL, 2)
    assert conversation.user(CAROL).reachable is True
    assert conversation.telegram.messages(CAROL), "the new answer arrived"


def test_other_refusals_are_logged_and_not_retried(conversation: Conversation) -> None:
    """A 400 other than bad HTML: settled once, with Telegram's description, no retry."""
    conversation.telegram.fail_next(
        "sendMessage", error_code=400, description="Bad Request: message thread not found"
    )
    conversation.say(CAROL, "hi")
    wait_until(lambda: _settled(conversation, CAROL, 1), timeout=30, what="the reply settled")
    assert len(conversation.telegram.calls("sendMessage")) == 1
    (row,) = conversation.rows(CAROL)
    assert "undeliverable: 400 Bad Request: message thread not found" in row.error
    assert conversation.user(CAROL).reachable is True


def test_a_retried_command_sends_only_the_missing_replies(conversation: Conversation) -> None:
    """The button's toast went out, its message failed (5xx): the retry sends the message only."""
    conversation.say(CAROL, "hi")
    (answer,) = conversation.sent(CAROL)
    conversation.telegram.fail_next("sendMessage", error_code=502, times=4)  # every attempt
    conversation.press(CAROL, answer.result["message_id"], "new")
    wait_until(
        lambda: any(c.ok for c in conversation.telegram.calls("sendMessage")[1:]),
        timeout=30,
        what="the retried reply",
    )
    sent = [c for c in conversation.telegram.calls("sendMessage")[1:] if c.ok]
    assert len(sent) == 1 and "Начат новый диалог" in sent[0].params["text"]
    toasts = conversation.telegram.calls("answerCallbackQuery")
    assert len(toasts) == 1 and toasts[0].ok, "the toast was not sent twice"
    assert len(conversation.dialogs(CAROL)) == 1
