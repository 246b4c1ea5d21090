"""Telegram order for the questions of one chat, across worker processes.

Two questions of one chat sent within milliseconds (a long paste the client splits, a
forwarded batch) are two tasks that two workers may take at once; whichever logged its row
first would be answered first and see the other as its history. Rows are answered in the order
they are logged (``shared.services.conversation``), so the order that matters is the logging:

- the door (webhook, listener) adds each question's ``update_id`` to the chat's *inbox*
  (``ai_router:chat:<id>:inbox``, a sorted set scored by time) as it queues it, and learns in
  the same step whether an earlier question of the chat is still there;
- only then does the task carry ``after_earlier``: before logging its row it waits (sleeping,
  a greenlet costs nothing) until no earlier ``update_id`` of the chat is left in the inbox —
  at most :func:`window` seconds, after which it goes ahead (an earlier task that crashed is
  redelivered within a lease and a sweep, and must not hold the chat forever);
- a task leaves the inbox once its row is logged, folded into the round trip that takes the
  chat's lock (``ChatLock``), or on its own when the update needs no answer.

The common case (one question of a chat at a time) costs one Redis call at the door and
nothing in the worker.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, current_app

from shared.redis import KEY_PREFIX, app_script

logger = logging.getLogger(__name__)

#: First and longest pause between two looks at the inbox while waiting (seconds).
FIRST_PAUSE, LONGEST_PAUSE = 0.02, 0.25

# KEYS[1] inbox; ARGV[1] now ms, ARGV[2] update id, ARGV[3] window ms. Returns its size.
_ENTER = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[3]))
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('ZCARD', KEYS[1])
"""
# KEYS[1] inbox; ARGV[1] oldest score that counts, ARGV[2] update id. 1: an earlier one waits.
_EARLIER = """
local own = tonumber(ARGV[2])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do
  if tonumber(id) < own then return 1 end
end
return 0
"""


def inbox_key(chat_id: int) -> str:
    """The chat's inbox key."""
    return f"{KEY_PREFIX}chat:{chat_id}:inbox"


def window(lease_seconds: int) -> float:
    """Seconds an entry counts: two leases (a crashed task's message is back within one)."""
    return 2.0 * lease_seconds


def enter(app: Flask, chat_id: int, update_id: int) -> bool:
    """At the door: note a question of the chat; whether an earlier one may still be unlogged.

    Args:
        app: The app that queues the question (its Redis, its ``LEASE_SECONDS``).
        chat_id: The chat.
        update_id: The question's update.

    Returns:
        True when the chat's inbox held another question (the task must wait its turn).
    """
    return enter_many(app, [(chat_id, update_id)])[0]


def enter_many(app: Flask, entries: list[tuple[int, int]]) -> list[bool]:
    """:func:`enter` for a batch of questions, in order, in one round trip.

    Args:
        app: The app that queues them.
        entries: ``(chat_id, update_id)`` pairs in Telegram's order.

    Returns:
        For each, whether it must wait its turn.
    """
    if not entries:
        return []
    span = int(window(app.config["AI_ROUTER"].lease_seconds) * 1000)
    script = app_script(app, _ENTER)
    pipe = app.extensions["redis"].pipeline(transaction=False)
    now = int(time.time() * 1000)
    for chat_id, update_id in entries:
        script(keys=[inbox_key(chat_id)], args=[now, update_id, span], client=pipe)
    return [int(size) > 1 for size in pipe.execute()]


def wait_for_turn(chat_id: int, update_id: int) -> float:
    """In the task, before logging: wait until no earlier question of the chat is unlogged.

    Args:
        chat_id: The chat.
        update_id: This question's update.

    Returns:
        Seconds waited (the wait gives up after :func:`window`).
    """
    earlier = app_script(current_app, _EARLIER)
    span = window(current_app.config["AI_ROUTER"].lease_seconds)
    started = time.monotonic()
    pause = FIRST_PAUSE
    while True:
        oldest = int((time.time() - span) * 1000)
        if not int(earlier(keys=[inbox_key(chat_id)], args=[oldest, update_id])):
            break
        if time.monotonic() - started >= span:
            logger.warning(
                "an earlier question of chat %s never arrived; going ahead update_id=%s",
                chat_id,
                update_id,
            )
            break
        time.sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE)
    waited = time.monotonic() - started
    if waited >= FIRST_PAUSE:
        logger.info("waited %.3f s for an earlier question update_id=%s", waited, update_id)
    return waited


def leave(chat_id: int, update_id: int) -> None:
    """Leave the inbox without taking the chat's lock (the update needs no answer).

    Args:
        chat_id: The chat.
        update_id: The update.
    """
    current_app.extensions["redis"].zrem(inbox_key(chat_id), update_id)


__all__ = ["enter", "enter_many", "inbox_key", "leave", "wait_for_turn", "window"]
