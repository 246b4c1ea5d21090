"""``tasks.replies.generate_reply``: answer a logged request with the LLM (queue ``llm``)."""

from __future__ import annotations

import logging

from celery import shared_task

from bot.replies import DialogBusy, give_up
from bot.replies import generate_reply as answer

logger = logging.getLogger(__name__)

#: Retries of an infrastructure failure (Telegram down, database busy) before giving up.
MAX_FAILURES = 3
#: Retries while another worker answers the same dialog (about 10 minutes of 2 s waits).
MAX_BUSY_RETRIES = 300


@shared_task(name="tasks.replies.generate_reply", bind=True, max_retries=MAX_BUSY_RETRIES)
def generate_reply(self, message_id: int, failures: int = 0) -> None:
    """Answer message ``message_id`` (idempotent: an answered, delivered row is left alone).

    LLM failures are handled inside (apology, ``error`` row). A busy dialog is retried shortly
    without holding a worker thread; other failures are retried with backoff, and after the last
    one the row is marked ``error`` and the user gets the apology.

    Args:
        self: The bound task.
        message_id: The log row.
        failures: Failed attempts so far (busy retries do not count).
    """
    try:
        answer(message_id)
    except DialogBusy as exc:
        raise self.retry(exc=exc, countdown=2) from exc
    except Exception as exc:
        logger.exception("reply failed message_id=%s attempt=%s", message_id, failures + 1)
        if failures + 1 >= MAX_FAILURES:
            give_up(message_id, exc)
            return
        raise self.retry(
            exc=exc, countdown=2 ** (failures + 1), args=[message_id, failures + 1]
        ) from exc
