"""``tasks.replies.generate_reply``: answer a logged request with the LLM (queue ``llm``)."""

from __future__ import annotations

import logging

from celery import shared_task

from bot.replies import generate_reply as answer

logger = logging.getLogger(__name__)


@shared_task(name="tasks.replies.generate_reply", bind=True, max_retries=3)
def generate_reply(self, message_id: int) -> None:
    """Answer message ``message_id`` (idempotent: an answered, delivered row is left alone).

    LLM failures are handled inside (the user gets an apology, the row ``error``); what reaches
    here is a Telegram or infrastructure failure, retried with backoff.

    Args:
        self: The bound task.
        message_id: The log row.
    """
    try:
        answer(message_id)
    except Exception as exc:
        logger.exception("reply failed message_id=%s", message_id)
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1)) from exc
