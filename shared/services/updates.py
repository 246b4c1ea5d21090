"""Once-only handling of Telegram updates (webhook retries and broker redelivery happen)."""

from __future__ import annotations

from shared.redis import KEY_PREFIX, current_redis

#: How long a handled update id is remembered (Telegram redelivers within hours at most).
CLAIM_TTL = 24 * 3600


def claim_update(update_id: int) -> bool:
    """Claim an update for handling.

    Args:
        update_id: Telegram's update id.

    Returns:
        True for the first claim; False when the update was claimed before.
    """
    return bool(current_redis().set(f"{KEY_PREFIX}update:{update_id}", "1", nx=True, ex=CLAIM_TTL))


def release_update(update_id: int) -> None:
    """Forget a claim after a failure, so the retry of the same update may run."""
    current_redis().delete(f"{KEY_PREFIX}update:{update_id}")
