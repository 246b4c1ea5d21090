"""``tasks.replies.answer_text``: one task per text message (queue ``llm``).

The task logs the request, and settles its chat's queue unless another task already does
(``shared.services.conversation``). ``tasks.replies.generate_reply`` settles the chat of a
logged row: a reply held back by Telegram's flood limits is sent by it later (a countdown
task, so no worker slot waits), and rows queued by earlier versions come through it too.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from shared.db import db
from shared.logging import log_context
from shared.models import Request
from shared.services.conversation import (
    ReplyDeferred,
    RowFailed,
    give_up,
    handle_text,
    work_chat,
)

logger = logging.getLogger(__name__)

#: Attempts of a failing row (Telegram down, database busy) before its reply is given up.
MAX_FAILURES = 3


@shared_task(name="tasks.replies.answer_text", bind=True, max_retries=MAX_FAILURES)
def answer_text(self, update: dict, after_earlier: bool = False) -> None:
    """Answer a text message update (idempotent: a settled update is left alone).

    LLM failures are handled inside (the row becomes ``error``, the user gets the apology).
    Other failures are retried with backoff; after the last attempt the failing row gets the
    apology and is settled.

    Args:
        self: The bound task.
        update: The update as Telegram sent it.
        after_earlier: Another question of the chat was in flight at the door: log this one
            after it (``shared.services.inbox``).
    """
    message = update.get("message") or {}
    chat_id = (message.get("chat") or {}).get("id")
    with log_context(update_id=update.get("update_id"), chat_id=chat_id):
        _answer(self, update, after_earlier)


def _answer(task: Any, update: dict, after_earlier: bool) -> None:
    try:
        handle_text(update, after_earlier)
    except ReplyDeferred as exc:
        _defer(exc)
    except RowFailed as exc:
        _retry_or_give_up(task, exc.request_id, exc.cause)
    except Exception as exc:  # intake itself failed (database busy…): nothing was logged
        logger.exception("text update failed update_id=%s", update.get("update_id"))
        raise task.retry(exc=exc, countdown=2 ** (task.request.retries + 1)) from exc


@shared_task(name="tasks.replies.generate_reply", bind=True, max_retries=MAX_FAILURES)
def generate_reply(self, message_id: int) -> None:
    """Settle the chat of a logged row (a deferred reply, or a row queued by an earlier version).

    Args:
        self: The bound task.
        message_id: The row.
    """
    row = db.session.get(Request, message_id)
    chat_id = row.chat_id if row is not None else None
    db.session.close()
    if chat_id is None:
        return
    with log_context(request_id=message_id, chat_id=chat_id):
        try:
            work_chat(chat_id)
        except ReplyDeferred as exc:
            _defer(exc)
        except RowFailed as exc:
            _retry_or_give_up(self, exc.request_id, exc.cause)


def _defer(deferred: ReplyDeferred) -> None:
    """Settle the row's chat again once the pacer has room (a new task, not a retry)."""
    logger.info("reply deferred request_id=%s by %.1f s", deferred.request_id, deferred.wait)
    generate_reply.apply_async((deferred.request_id,), countdown=deferred.wait)


def _retry_or_give_up(task, request_id: int, cause: BaseException) -> None:
    """Retry the task with backoff, or give the row up after the last attempt."""
    logger.error(
        "settling failed request_id=%s attempt=%s: %s", request_id, task.request.retries + 1, cause
    )
    if task.request.retries + 1 >= MAX_FAILURES:
        try:
            give_up(request_id, cause)
        except ReplyDeferred as deferred:
            _defer(deferred)
        return
    raise task.retry(exc=cause, countdown=2 ** (task.request.retries + 1))
