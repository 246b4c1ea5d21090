"""Slowing down password guessing on the admin login form (counters in Redis).

After :data:`MAX_FAILURES` failed logins for one username from one address, or
:data:`MAX_FAILURES_PER_ADDRESS` from one address for any names, within :data:`WINDOW` seconds,
further attempts from that address are refused until the window passes. Counting per address
(not per username alone) means nobody can lock the real admin out from elsewhere.
"""

from __future__ import annotations

from shared.redis import KEY_PREFIX, current_redis

MAX_FAILURES = 5
MAX_FAILURES_PER_ADDRESS = 20
WINDOW = 15 * 60


def _keys(username: str, address: str) -> list[tuple[str, int]]:
    return [
        (f"{KEY_PREFIX}login_fail:ip:{address}", MAX_FAILURES_PER_ADDRESS),
        (f"{KEY_PREFIX}login_fail:user_ip:{username.strip().lower()}:{address}", MAX_FAILURES),
    ]


def retry_after(username: str, address: str) -> int:
    """Seconds until a login may be tried again; 0 when attempts are allowed.

    Args:
        username: The name typed.
        address: The client's IP address.

    Returns:
        The wait in seconds.
    """
    redis = current_redis()
    wait = 0
    for key, limit in _keys(username, address):
        count = redis.get(key)
        if count and int(count) >= limit:
            wait = max(wait, int(redis.ttl(key)))
    return wait


def record_failure(username: str, address: str) -> None:
    """Count a failed login for the address and the username."""
    redis = current_redis()
    for key, _limit in _keys(username, address):
        count = redis.incr(key)
        if count == 1:
            redis.expire(key, WINDOW)


def record_success(username: str, address: str) -> None:
    """Forget the failures once the right password was given."""
    current_redis().delete(*(key for key, _limit in _keys(username, address)))
