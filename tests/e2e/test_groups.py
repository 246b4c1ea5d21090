"""Groups and forum topics, end to end: addressed messages only, one dialog per topic.

The fake Bot API's bot is ``@ai_router_test_bot`` named «AI Router Test»; the group is a
forum supergroup registered with the fake, so its messages carry a real ``Chat`` object.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from shared.db import db
from shared.models import Dialog, ErrorKind, Group, GroupStatus, RequestStatus
from shared.services.groups import set_status
from tests.e2e.conftest import Conversation
from tests.support import wait_until

ALICE, BOB = 6101, 6102
TEAM = -1001234567890
BOT = "@ai_router_test_bot"


@pytest.fixture()
def team(conversation: Conversation) -> int:
    """A forum supergroup «Team» known to the fake."""
    conversation.telegram.add_group(TEAM, "Team", forum=True)
    return TEAM


def _in_team(call: Any) -> bool:
    return str(call.params.get("chat_id")) == str(TEAM)


def _replies(conversation: Conversation, count: int) -> list[Any]:
    return conversation.telegram.wait_for_calls("sendMessage", count, _in_team, timeout=30)


def _group_rows(conversation: Conversation) -> list[Any]:
    return conversation.rows(ALICE) + conversation.rows(BOB)


def test_only_messages_addressed_to_the_bot_are_answered(
    conversation: Conversation, team: int
) -> None:
    """Chatter is ignored at the door; a mention, a reply to the bot and its name are not."""
    conversation.say(ALICE, "lunch at noon?", chat_id=team)
    conversation.say(BOB, "/new@some_other_bot", chat_id=team)
    conversation.say(ALICE, f"{BOT} what is 2+2?", chat_id=team, thread_id=7)
    (first,) = _replies(conversation, 1)
    assert first.params["message_thread_id"] == 7
    assert first.params["reply_parameters"]["message_id"] > 0  # quoting the question
    request = conversation.llm.chat_requests()[-1]["body"]
    assert request["messages"][-1]["content"] == "what is 2+2?"  # the address taken out

    bot_message = first.result["message_id"]
    conversation.say(BOB, "and 3+3?", chat_id=team, thread_id=7, reply_to_message_id=bot_message)
    conversation.say(ALICE, "AI Router Test, and 4+4?", chat_id=team, thread_id=7)
    _replies(conversation, 3)
    contents = [m["content"] for m in conversation.llm.chat_requests()[-1]["body"]["messages"]]
    assert contents[-5:] == [
        "what is 2+2?",
        contents[-4],
        "and 3+3?",
        contents[-2],
        "and 4+4?",
    ]  # one dialog shared by the topic's members
    rows = sorted(_group_rows(conversation), key=lambda r: r.id)
    assert [(r.user_id != rows[0].user_id, r.number) for r in rows] == [
        (False, 1),
        (True, 2),
        (False, 3),
    ]  # each request logged under its sender
    assert len({r.dialog_id for r in rows}) == 1
    assert all(r.chat_id == team and r.thread_id == 7 for r in rows)
    assert len(conversation.llm.chat_requests()) == 3  # the chatter cost nothing


def test_each_forum_topic_has_its_own_dialog(conversation: Conversation, team: int) -> None:
    """Topic 7 and topic 9 do not see each other; /new in a topic ends that topic's dialog."""
    conversation.say(ALICE, f"{BOT} remember 42", chat_id=team, thread_id=7)
    _replies(conversation, 1)
    conversation.say(ALICE, f"{BOT} what did I say?", chat_id=team, thread_id=9)
    (_first, second) = _replies(conversation, 2)
    assert second.params["message_thread_id"] == 9
    assert len(conversation.llm.chat_requests()[-1]["body"]["messages"]) == 1 + _system(
        conversation
    )
    conversation.say(BOB, "/new", chat_id=team, thread_id=7)
    third = _replies(conversation, 3)[-1]
    assert third.params["message_thread_id"] == 7  # the command's reply goes to its topic
    conversation.say(ALICE, f"{BOT} and now?", chat_id=team, thread_id=9)
    _replies(conversation, 4)
    with conversation.app.app_context():
        dialogs = db.session.scalars(
            select(Dialog).where(Dialog.chat_id == team).order_by(Dialog.id)
        ).all()
        open_ = sorted((d.thread_id, d.ended_at is None) for d in dialogs)
    assert open_ == [(7, False), (9, True)]  # topic 7 ended by /new, topic 9 still open
    # the group's dialogs are nobody's own: Alice has none, though she opened both
    assert conversation.dialogs(ALICE) == []


def _system(conversation: Conversation) -> int:
    """1 when the default mode has a system prompt (the first message), else 0."""
    first = conversation.llm.chat_requests()[0]["body"]["messages"][0]
    return 1 if first["role"] == "system" else 0


def test_a_blocked_group_is_refused_and_the_admin_sees_it(
    conversation: Conversation, team: int
) -> None:
    """The group is registered by its first request; blocked, everyone in it is refused."""
    conversation.say(ALICE, f"{BOT} hi", chat_id=team)
    _replies(conversation, 1)
    with conversation.app.app_context():
        group = db.session.scalar(select(Group).where(Group.chat_id == team))
        assert group.title == "Team" and group.is_forum and group.kind == "supergroup"
        set_status(group, GroupStatus.BLOCKED)
        db.session.commit()
    conversation.say(BOB, f"{BOT} hello?", chat_id=team, language_code="en")
    (_first, refusal) = _replies(conversation, 2)
    assert "turned the bot off in this group" in refusal.params["text"]
    (row,) = conversation.rows(BOB)
    assert row.status == RequestStatus.DENIED and row.error_kind == ErrorKind.GROUP_BLOCKED
    assert len(conversation.llm.chat_requests()) == 1


def test_access_is_the_senders_own(conversation: Conversation, team: int) -> None:
    """A blocked user is refused in the group while another member is answered."""
    conversation.say(BOB, "/start")  # registers Bob
    conversation.sent(BOB)
    with conversation.app.app_context():
        from shared.models import User, UserStatus

        bob = db.session.scalar(select(User).where(User.telegram_id == BOB))
        bob.status = UserStatus.BLOCKED
        db.session.commit()
    conversation.say(BOB, f"{BOT} hi", chat_id=team, language_code="en")
    conversation.say(ALICE, f"{BOT} hi", chat_id=team)
    _replies(conversation, 2)
    wait_until(lambda: len(_group_rows(conversation)) == 2, what="both rows")
    statuses = {r.user_id: r.status for r in _group_rows(conversation)}
    assert sorted(statuses.values()) == sorted([RequestStatus.DENIED, RequestStatus.OK])
    assert len(conversation.llm.chat_requests()) == 1


def test_a_photo_in_a_topic_mentioning_the_bot(conversation: Conversation, team: int) -> None:
    """A captioned photo that mentions the bot: answered in its topic, caption cleaned."""
    conversation.say(ALICE, f"{BOT} hi", chat_id=team, thread_id=3)  # a plain first turn
    _replies(conversation, 1)
    conversation.deliver(
        conversation.telegram.inject_photo(
            BOB, b"\xff\xd8" + b"p" * 500, caption=f"{BOT} what is this?", chat_id=team,
            thread_id=3, language_code="en",
        )
    )  # fmt: skip
    (_first, reply) = _replies(conversation, 2)
    assert reply.params["message_thread_id"] == 3
    (row,) = conversation.rows(BOB)
    assert row.request_text == "what is this?" and row.error_kind == ErrorKind.NO_VISION


def test_deleting_a_member_keeps_the_groups_dialog(conversation: Conversation, team: int) -> None:
    """The shared dialog is nobody's own: deleting Alice deletes her rows, not Bob's."""
    conversation.say(ALICE, f"{BOT} first", chat_id=team)
    _replies(conversation, 1)
    conversation.say(BOB, f"{BOT} second", chat_id=team)
    _replies(conversation, 2)
    wait_until(lambda: len(_group_rows(conversation)) == 2, what="both rows")
    with conversation.app.app_context():
        from shared.models import User

        db.session.delete(db.session.scalar(select(User).where(User.telegram_id == ALICE)))
        db.session.commit()
    (row,) = _group_rows(conversation)
    assert row.request_text == "second" and row.number == 2
    with conversation.app.app_context():
        assert db.session.scalar(select(Dialog).where(Dialog.chat_id == team)) is not None
