"""The chat inbox: a question waits for the chat's earlier ones to be logged, within a bound."""

from __future__ import annotations

import threading
import time

from flask import Flask

from shared.services import inbox


def test_a_later_question_waits_for_the_earlier_one_to_leave(app: Flask) -> None:
    """The door flags the second question; it waits until the first is logged (left)."""
    redis = app.extensions["redis"]
    assert inbox.enter(app, 77, 1001) is False, "alone in the inbox: no wait"
    assert inbox.enter(app, 77, 1002) is True
    with app.app_context():
        assert inbox.wait_for_turn(77, 1001) < inbox.FIRST_PAUSE, "the earliest never waits"

        def log_the_first() -> None:
            time.sleep(0.3)
            with app.app_context():
                inbox.leave(77, 1001)

        threading.Thread(target=log_the_first).start()
        waited = inbox.wait_for_turn(77, 1002)
        assert waited >= 0.2
        assert redis.zrange(inbox.inbox_key(77), 0, -1) == ["1002"]


def test_an_earlier_question_that_never_comes_stops_counting(app: Flask) -> None:
    """An entry older than the window (its task died for good) no longer holds the chat."""
    redis = app.extensions["redis"]
    lease = app.config["AI_ROUTER"].lease_seconds
    stale = (time.time() - inbox.window(lease) - 1) * 1000
    redis.zadd(inbox.inbox_key(78), {"2001": stale})
    assert inbox.enter(app, 78, 2002) is False, "the stale entry was dropped"
    redis.zadd(inbox.inbox_key(78), {"2001": stale})
    with app.app_context():
        assert inbox.wait_for_turn(78, 2002) < inbox.FIRST_PAUSE


def test_a_batch_enters_in_order_in_one_round_trip(app: Flask) -> None:
    """The listener's batch: the second question of a chat waits, other chats do not."""
    from shared.celery_setup import enter_questions

    def question(update_id: int, chat_id: int, text: str = "hi") -> dict:
        sender = {"id": chat_id, "is_bot": False, "first_name": "A"}
        chat = {"id": chat_id, "type": "private"}
        message = {"message_id": update_id, "date": 1, "chat": chat, "from": sender, "text": text}
        return {"update_id": update_id, "message": message}

    batch = [
        question(3001, 79),
        question(3002, 80),
        question(3003, 79),
        question(3004, 79, "/start"),
    ]
    assert enter_questions(app, batch) == {3001: False, 3002: False, 3003: True}
    assert app.extensions["redis"].zrange(inbox.inbox_key(79), 0, -1) == ["3001", "3003"]
