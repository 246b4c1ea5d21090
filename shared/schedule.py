"""Celery beat, embedded in the bot listener, once per deployment: the periodic plan check.

The schedule (:func:`beat_schedule`) is Celery's (``beat_schedule``); :func:`run_beat` runs
Celery's own beat scheduler (``celery.beat.Scheduler``: due entries are published by task name,
as ``celery beat`` does) in a thread of every listener process (``python -m bot``, which
``make run`` and the compose file start). A Redis lock (:data:`BEAT_LOCK_KEY`) lets one
scheduler tick at a time across the deployment — however many listeners run, each check is
queued once — and another takes over within :data:`LOCK_SECONDS` when its holder dies. This
costs no process of its own (a standalone ``celery beat`` is ≈ 58 MiB) and cannot be
started twice by mistake.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from celery.beat import Scheduler
from flask import Flask

from shared.config import Config
from shared.redis import KEY_PREFIX

logger = logging.getLogger(__name__)

#: Expires ended plans and sends reminders (``tasks.plans.check_plans``).
CHECK_PLANS_TASK = "tasks.plans.check_plans"
#: The fast queue: Telegram updates, commands, button presses, periodic jobs.
UPDATES_QUEUE = "updates"
#: Held by the one scheduler that ticks.
BEAT_LOCK_KEY = f"{KEY_PREFIX}beat:lead"
#: The lock's lifetime; the holder renews it at every tick (at least every third of it).
LOCK_SECONDS = 30
#: The first run of each entry is due at once (a restarted listener checks right away).
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def beat_schedule(config: Config) -> dict[str, dict[str, Any]]:
    """Celery beat's schedule: the plan check every ``PLAN_CHECK_SECONDS`` on the fast queue.

    Args:
        config: The configuration.

    Returns:
        A mapping for ``Celery.conf.beat_schedule``. A check that waited longer than its
        interval in the queue expires (the next one does its work).
    """
    return {
        "check-plans": {
            "task": CHECK_PLANS_TASK,
            "schedule": float(config.plan_check_seconds),
            "options": {"queue": UPDATES_QUEUE, "expires": float(config.plan_check_seconds)},
        }
    }


def run_beat(app: Flask, stop: threading.Event) -> None:
    """Tick Celery's beat scheduler while this process holds the beat lock, until ``stop``.

    Never raises: a Redis or broker outage is logged and retried after a pause.

    Args:
        app: The core app (its Celery app publishes; its Redis holds the lock).
        stop: Set to end the loop (the lock is released then).
    """
    config: Config = app.config["AI_ROUTER"]
    celery = app.extensions["celery"]
    celery.conf.beat_schedule = beat_schedule(config)
    scheduler: Scheduler | None = None
    lock = app.extensions["redis"].lock(
        BEAT_LOCK_KEY, timeout=LOCK_SECONDS, blocking=False, thread_local=False
    )
    while not stop.is_set():
        wait = LOCK_SECONDS / 3
        try:
            if lock.owned():
                lock.extend(LOCK_SECONDS, replace_ttl=True)
            elif lock.acquire(blocking=False):
                logger.info("this process runs the periodic jobs (beat)")
                scheduler = _scheduler(celery)
            else:
                scheduler = None  # another process ticks; take over if its lock lapses
            if scheduler is not None:
                with app.app_context():
                    wait = min(wait, scheduler.tick())
        except Exception:  # noqa: BLE001 - Redis or the broker away: try again shortly
            logger.warning("beat tick failed", exc_info=True)
        stop.wait(max(wait, 0.2))
    try:
        if lock.owned():
            lock.release()
    except Exception:  # noqa: BLE001 - Redis away: the lock lapses by itself
        logger.debug("could not release the beat lock", exc_info=True)


def _scheduler(celery: Any) -> Scheduler:
    """Celery's in-memory beat scheduler over the app's schedule, every entry due at once."""
    scheduler = Scheduler(app=celery, lazy=False)
    for entry in scheduler.schedule.values():
        entry.last_run_at = _LONG_AGO
    return scheduler


def start_beat(app: Flask, stop: threading.Event) -> threading.Thread:
    """Run :func:`run_beat` in a daemon thread.

    Args:
        app: The core app.
        stop: Ends the thread.

    Returns:
        The started thread.
    """
    thread = threading.Thread(target=run_beat, args=(app, stop), name="beat", daemon=True)
    thread.start()
    return thread
