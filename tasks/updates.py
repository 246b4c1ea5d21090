"""``tasks.updates.process_update``: run the bot's handlers for one raw update (queue ``updates``).

Commands, button presses and non-text messages come here; questions for the LLM go to
``tasks.replies.answer_text`` instead (the ingress routes them).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from bot.dispatcher import dispatch
from shared.logging import log_context
from shared.services.updates import claim_update, finish_update, release_update
from shared.telegram.client import BotNotConfigured, SendDeferred

logger = logging.getLogger(__name__)


@shared_task(name="tasks.updates.process_update", bind=True, max_retries=3)
def process_update(self, update: dict) -> None:
    """Dispatch an update to its handler, once per ``update_id``.

    A failure releases the claim and retries with backoff, so a transient Telegram or database
    error does not lose the update; a redelivered update that was fully handled is skipped. A
    reply held back by the flood limits runs the update again when the pacer has room.

    Args:
        self: The bound task.
        update: The update as Telegram sent it.
    """
    with log_context(update_id=update.get("update_id")):
        _process(self, update)


def _process(task: Any, update: dict) -> None:
    update_id = update.get("update_id")
    if update_id is not None and not claim_update(update_id):
        logger.info("update already handled update_id=%s", update_id)
        return
    try:
        dispatch(update)
        if update_id is not None:
            finish_update(update_id)
    except BotNotConfigured:
        logger.error("update dropped: no bot token is configured update_id=%s", update_id)
    except SendDeferred as exc:  # flood limits: not a failure, try again when there is room
        if update_id is not None:
            release_update(update_id)
        raise task.retry(exc=exc, countdown=exc.wait, max_retries=None) from exc
    except Exception as exc:
        if update_id is not None:
            release_update(update_id)
        logger.exception("update failed update_id=%s", update_id)
        raise task.retry(exc=exc, countdown=2**task.request.retries) from exc
