"""Nothing scarce is held while slow things happen, and no reply is lost to a failed send."""

from __future__ import annotations

import time

from shared.db import db
from shared.models import UserStatus
from shared.services.users import create_user
from tests.e2e.conftest import Conversation
from tests.support import wait_until

ALICE = 601


def test_no_database_connection_is_held_during_the_llm_call(conversation: Conversation) -> None:
    """While the model takes its time, the worker holds no pooled database connection."""
    conversation.llm.script({"type": "delay", "seconds": 3})
    conversation.say(ALICE, "take your time")
    conversation.sent(ALICE, method="sendChatAction")  # the LLM call starts right after this
    with conversation.app.app_context():
        pool = db.engine.pool
        samples = []
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            samples.append(pool.checkedout())
            time.sleep(0.05)
    assert not conversation.telegram.calls("sendMessage"), "the LLM call was still in progress"
    assert max(samples) == 0, f"connections checked out during the LLM call: {samples}"
    conversation.sent(ALICE)


def test_a_refusal_whose_send_failed_is_sent_by_the_retry(conversation: Conversation) -> None:
    """The first attempt to refuse fails at Telegram; the retry still refuses, exactly once."""
    with conversation.app.app_context():
        create_user(ALICE, status=UserStatus.BLOCKED)
        db.session.commit()
    conversation.telegram.fail_next("sendMessage", error_code=502, times=4)  # one whole attempt
    conversation.say(ALICE, "let me in")
    calls = wait_until(
        lambda: [c for c in conversation.telegram.calls("sendMessage") if c.ok],
        timeout=60,
        what="the refusal to be sent",
    )
    assert len(calls) == 1 and "Доступ к боту закрыт" in calls[0].params["text"]
    row = wait_until(
        lambda: (r := conversation.rows(ALICE)) and r[0].delivered_at and r[0],
        what="the refusal to be recorded as delivered",
    )
    assert row.status == "denied" and row.error_kind == "blocked"
    assert not conversation.llm.chat_requests()
