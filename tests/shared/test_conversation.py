"""The answering pipeline's rules without a worker: intake decisions and delivery idempotency."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from shared.db import db
from shared.extensions import generations
from shared.models import Request, RequestStatus, UserStatus
from shared.services.conversation import ChatLock, Decision, Incoming, deliver, intake
from shared.services.settings import set_setting
from shared.services.users import create_user
from tests.fakes.telegram import FakeTelegram

CHAT = 901


def _incoming(update_id: int, text: str = "hello") -> Incoming:
    sender = {"id": CHAT, "is_bot": False, "first_name": "Bo", "language_code": "en"}
    return Incoming(update_id=update_id, chat_id=CHAT, message_id=5, text=text, sender=sender)


@pytest.fixture()
def ctx(app: Flask, telegram: FakeTelegram) -> Iterator[FakeTelegram]:
    """An app context with the fake Bot API's token set and the chat known to the fake."""
    with app.app_context():
        set_setting("telegram_bot_token", telegram.token)
        db.session.commit()
        telegram.inject_message(CHAT, "hi")
        yield telegram


def test_intake_answers_refuses_and_ignores(ctx: FakeTelegram) -> None:
    """Active → answer; redelivery of a pending row → answer again; settled → ignore."""
    first = intake(_incoming(1))
    assert first.decision == Decision.ANSWER
    assert intake(_incoming(1)).decision == Decision.ANSWER  # still pending: finish it
    row = db.session.get(Request, first.request_id)
    row.status, row.response_text = RequestStatus.OK, "hi"
    db.session.commit()
    deliver(first.request_id)
    assert intake(_incoming(1)).decision == Decision.IGNORE
    assert db.session.query(Request).count() == 1


def test_a_blocked_user_is_refused_with_the_reason(ctx: FakeTelegram) -> None:
    """The row is ``denied`` with the rule; the refusal goes out once, however often asked."""
    create_user(CHAT, status=UserStatus.BLOCKED)
    db.session.commit()
    outcome = intake(_incoming(2))
    assert outcome.decision == Decision.REFUSE
    deliver(outcome.request_id)
    deliver(outcome.request_id)
    row = db.session.get(Request, outcome.request_id)
    assert (row.status, row.error_kind, row.delivered_parts) == ("denied", "blocked", 1)
    assert len([c for c in ctx.calls("sendMessage") if c.ok]) == 1


def test_a_retry_sends_only_the_missing_parts(ctx: FakeTelegram) -> None:
    """Parts Telegram accepted before are not sent again."""
    outcome = intake(_incoming(3))
    row = db.session.get(Request, outcome.request_id)
    row.status = RequestStatus.OK
    row.response_text = "\n\n".join(f"part {i} " + "w " * 1500 for i in range(3))
    row.delivered_parts = 1  # an earlier attempt got the first part through
    db.session.commit()
    deliver(outcome.request_id)
    texts = [c.params["text"] for c in ctx.calls("sendMessage") if c.ok]
    assert len(texts) == 2 and texts[0].startswith("part 1") and texts[1].startswith("part 2")
    row = db.session.get(Request, outcome.request_id)
    assert row.delivered_parts == 3 and row.delivered_at is not None


def test_chat_lock_is_released_only_when_clean(app: Flask) -> None:
    """A task that finds the chat taken marks it dirty; the holder must look again first."""
    with app.app_context():
        holder, latecomer = ChatLock(CHAT), ChatLock(CHAT)
        assert holder.acquire()
        assert not latecomer.acquire()  # marks the chat dirty
        assert not holder.release_if_clean()  # kept: someone queued meanwhile
        assert not latecomer.acquire()
        assert not holder.release_if_clean()
        assert holder.release_if_clean()  # clean now: released
        assert latecomer.acquire()
        holder.release()  # not the holder any more: nothing happens
        assert not ChatLock(CHAT).acquire()
        latecomer.release()
        assert ChatLock(CHAT).acquire()


def test_the_fast_path_takes_the_chat_and_claims_the_row_in_one_step(app: Flask) -> None:
    """acquire_and_claim: -1 and a dirty chat when held; else the claim, once, with /stop seen."""
    with app.app_context():
        holder, latecomer = ChatLock(CHAT), ChatLock(CHAT)
        assert holder.acquire_and_claim(1) == 1
        assert latecomer.acquire_and_claim(2) == -1  # held: marked dirty, nothing claimed
        assert not holder.release_if_clean()
        assert holder.release_if_clean()
        assert latecomer.acquire_and_claim(2) == 1  # row 2 was not claimed by the refusal
        latecomer.release()
        third = ChatLock(CHAT)
        assert third.acquire_and_claim(1) == 0  # row 1's call belongs to its first claimer
        third.release()
        generations.stop(3)  # a /stop that came before the call
        stopped = ChatLock(CHAT + 1)
        assert stopped.acquire_and_claim(3) == 2
