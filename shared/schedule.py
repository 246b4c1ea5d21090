"""What Celery beat runs (``beat_app``), kept free of the app's imports so beat stays small.

Tasks are named, never imported: beat only publishes their messages to the broker.
"""

from __future__ import annotations

from typing import Any

from shared.config import Config

#: Expires ended plans and sends reminders (``tasks.plans.check_plans``).
CHECK_PLANS_TASK = "tasks.plans.check_plans"
#: The fast queue: Telegram updates, commands, button presses, periodic jobs.
UPDATES_QUEUE = "updates"


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
