"""The Celery workers' heartbeats: which workers live right now, and what they are doing.

Every worker sends Celery's ``worker-heartbeat`` event every 2 s (worker events stay on when
task events are off; ``--without-heartbeat`` turns them off). ``shared.celery_setup`` hooks
Celery's ``heartbeat_sent`` signal to write, at each beat, the worker's entry: its hostname in
the sorted set ``ai_router:workers`` scored by when the beat expires (:func:`heartbeat_ttl`),
and its figures in the hash ``ai_router:workers:beats``. The beat runs on the worker's own event
loop, so a worker that is killed or hangs stops beating and drops off the list within that
expiry; one that stops cleanly removes itself (:func:`forget_worker`).

Reading is one round trip whatever else Redis holds (expired entries are dropped in it): it
never waits on a worker, unlike a broadcast ``ping``, which waits for its whole timeout for
replies that may never come.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

from shared.models.types import utcnow
from shared.redis import KEY_PREFIX, current_redis

logger = logging.getLogger(__name__)

#: Hostnames scored by when their last beat expires (epoch seconds).
WORKERS_KEY = f"{KEY_PREFIX}workers"
#: Hostname → the last beat's figures (JSON).
BEATS_KEY = f"{KEY_PREFIX}workers:beats"
#: The shortest life of a heartbeat key, in seconds (Celery beats every 2 s by default).
MIN_TTL = 10


def heartbeat_ttl(interval: float) -> int:
    """How long one heartbeat keeps a worker listed: three missed beats, at least :data:`MIN_TTL`.

    Args:
        interval: Seconds between two heartbeats of the worker.

    Returns:
        The key's expiry in seconds.
    """
    return max(MIN_TTL, math.ceil(interval * 3))


def record_heartbeat(
    hostname: str, *, pid: int, active: int, processed: int, interval: float
) -> None:
    """Publish one worker's heartbeat (called at each beat; needs an app context).

    Args:
        hostname: The worker's node name (``worker1@host``).
        pid: Its process id.
        active: Tasks it is running now.
        processed: Tasks it has started since it started.
        interval: Seconds until its next beat.

    Raises:
        redis.RedisError: When Redis cannot be reached.
    """
    beat = {
        "hostname": hostname,
        "pid": pid,
        "active": active,
        "processed": processed,
        "seen_at": utcnow().isoformat(),
    }
    pipe = current_redis().pipeline()
    pipe.zadd(WORKERS_KEY, {hostname: time.time() + heartbeat_ttl(interval)})
    pipe.hset(BEATS_KEY, hostname, json.dumps(beat))
    pipe.execute()


def forget_worker(hostname: str) -> None:
    """Take a worker off the list at once (it is shutting down cleanly).

    Args:
        hostname: The worker's node name.

    Raises:
        redis.RedisError: When Redis cannot be reached.
    """
    pipe = current_redis().pipeline()
    pipe.zrem(WORKERS_KEY, hostname)
    pipe.hdel(BEATS_KEY, hostname)
    pipe.execute()


def live_workers() -> list[dict[str, Any]]:
    """The workers that beat recently, by hostname.

    Returns:
        One ``{"hostname", "pid", "active", "processed", "seen_at"}`` per worker whose last
        heartbeat has not expired.

    Raises:
        redis.RedisError: When Redis cannot be reached.
    """
    now = time.time()
    pipe = current_redis().pipeline()
    pipe.zrangebyscore(WORKERS_KEY, now, "+inf")
    pipe.zrangebyscore(WORKERS_KEY, "-inf", now)
    pipe.zremrangebyscore(WORKERS_KEY, "-inf", now)
    pipe.hgetall(BEATS_KEY)
    alive, expired, _removed, beats = pipe.execute()
    if expired:
        current_redis().hdel(BEATS_KEY, *expired)  # rare: a worker died without a goodbye
    workers = []
    for hostname in sorted(alive):
        raw = beats.get(hostname)
        if raw is None:
            continue
        try:
            workers.append(json.loads(raw))
        except ValueError:
            logger.warning("ignoring an unreadable worker heartbeat: %r", raw[:200])
    return workers
