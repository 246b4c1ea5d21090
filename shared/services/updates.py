"""Once-only handling of Telegram updates (webhook retries and broker redelivery happen).

An update is claimed while a worker handles it and remembered as done afterwards; the replies a
handler queued are counted as Telegram accepts them (``…:sent``), so a retry after a crash or a
5xx runs the handler again but sends only the replies that are missing.
"""

from __future__ import annotations

from shared.redis import KEY_PREFIX, current_redis

#: How long a handled update id is remembered (Telegram redelivers within hours at most).
DONE_TTL = 24 * 3600
#: How long a claim protects an update being handled. If the worker dies meanwhile, the claim
#: lapses before the broker redelivers the task (visibility timeout), so the update is handled.
PROCESSING_TTL = 600


def _key(update_id: int) -> str:
    return f"{KEY_PREFIX}update:{update_id}"


def claim_update(update_id: int) -> bool:
    """Claim an update for handling (a short-lived claim until :func:`finish_update`).

    Args:
        update_id: Telegram's update id.

    Returns:
        True for the first claim; False while it is being handled or after it was handled.
    """
    return bool(current_redis().set(_key(update_id), "processing", nx=True, ex=PROCESSING_TTL))


def finish_update(update_id: int) -> None:
    """Remember that an update was fully handled, so a redelivery is skipped."""
    current_redis().set(_key(update_id), "done", ex=DONE_TTL)


def release_update(update_id: int) -> None:
    """Forget a claim after a failure, so the retry of the same update may run."""
    current_redis().delete(_key(update_id))


def replies_sent(update_id: int) -> int:
    """How many replies to an update Telegram already accepted (an earlier attempt's).

    Args:
        update_id: Telegram's update id.

    Returns:
        The count (0 for a first attempt).
    """
    return int(current_redis().get(_key(update_id) + ":sent") or 0)


def count_reply(update_id: int) -> None:
    """Record that one more reply to an update was accepted (a retry skips it).

    Args:
        update_id: Telegram's update id.
    """
    key = _key(update_id) + ":sent"
    redis = current_redis()
    redis.incr(key)
    redis.expire(key, DONE_TTL)
