"""Once-only handling of Telegram updates (webhook retries and broker redelivery happen).

An update is claimed while a worker handles it and remembered as done afterwards; the replies a
handler queued are counted as Telegram accepts them (``…:sent``), so a retry after a crash or a
5xx runs the handler again but sends only the replies that are missing.
"""

from __future__ import annotations

import secrets

from shared.extensions import leases
from shared.redis import KEY_PREFIX, current_redis
from shared.services.leases import lease_seconds

#: How long a handled update id is remembered (Telegram redelivers within hours at most).
DONE_TTL = 24 * 3600


def _key(update_id: int) -> str:
    return f"{KEY_PREFIX}update:{update_id}"


def claim_update(update_id: int) -> bool:
    """Claim an update for handling, until :func:`finish_update` or :func:`release_update`.

    The claim is a lease (``shared.services.leases``): renewed while this process lives, it
    lapses within ``LEASE_SECONDS`` if the process dies — before the broker hands the task to
    another worker — so a crashed worker's update is handled again, not lost.

    Args:
        update_id: Telegram's update id.

    Returns:
        True for the first claim; False while it is being handled or after it was handled.
    """
    key, token = _key(update_id), f"processing:{secrets.token_hex(8)}"
    if not current_redis().set(key, token, nx=True, ex=lease_seconds()):
        return False
    leases.hold(key, token)
    return True


def finish_update(update_id: int) -> None:
    """Remember that an update was fully handled, so a redelivery is skipped."""
    leases.drop(_key(update_id))
    current_redis().set(_key(update_id), "done", ex=DONE_TTL)


def release_update(update_id: int) -> None:
    """Forget a claim after a failure, so the retry of the same update may run."""
    leases.drop(_key(update_id))
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
