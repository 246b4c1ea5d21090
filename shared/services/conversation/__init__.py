"""The answering pipeline of a text message: intake → answering → delivery, in chat order.

One task per text message (``tasks.replies.answer_text``) calls :func:`handle_text`:

1. :func:`~shared.services.conversation.intake.intake` logs the request and decides (answer,
   refuse, ignore) in one unit of work;
2. :func:`work_chat` takes the chat's Redis lock without waiting. The holder settles the chat's
   open rows oldest first — :func:`~shared.services.conversation.answering.answer` for pending
   ones, then :func:`~shared.services.conversation.delivery.deliver` — so the answers of one chat
   never overtake each other, while different chats run fully in parallel. A task that finds the
   lock taken simply returns: its row is already committed, and the holder looks for open rows
   again *after* releasing the lock, so nothing is left behind and nothing bounces.

A failure while settling a row raises :class:`RowFailed` naming the row; the task retries, and
after its last attempt :func:`give_up` settles that row with an apology.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from redis.exceptions import LockNotOwnedError
from sqlalchemy import select

from shared.db import db
from shared.extensions import redis_store
from shared.logging import redact
from shared.models import ErrorKind, Request, RequestStatus
from shared.models.types import utcnow
from shared.redis import KEY_PREFIX
from shared.services.conversation.answering import answer
from shared.services.conversation.delivery import deliver
from shared.services.conversation.intake import Decision, Incoming, Intake, intake

logger = logging.getLogger(__name__)

#: Seconds a chat lock lives without renewal (renewed after every settled row). Longer than
#: one LLM answer with retries and fallback can take.
CHAT_LOCK_TIMEOUT = 360
#: Open rows older than this are not picked up by the queue any more (left for the admin).
QUEUE_WINDOW = timedelta(hours=1)

__all__ = [
    "Decision",
    "Incoming",
    "Intake",
    "RowFailed",
    "answer",
    "deliver",
    "give_up",
    "handle_text",
    "intake",
    "work_chat",
]


class RowFailed(RuntimeError):
    """Settling a row failed (Telegram or the database); the task retries.

    Args:
        request_id: The row that failed.
        cause: What failed.
    """

    def __init__(self, request_id: int, cause: BaseException) -> None:
        super().__init__(f"request {request_id}: {type(cause).__name__}: {cause}")
        self.request_id = request_id
        self.cause = cause


def handle_text(update: dict[str, Any]) -> Intake | None:
    """Answer a text message: log it, then settle its chat's queue unless another task does.

    Args:
        update: The raw update.

    Returns:
        The intake outcome, or None for an update without a text message.

    Raises:
        RowFailed: When a row of the chat could not be settled (retry later).
    """
    incoming = Incoming.from_update(update)
    if incoming is None:
        return None
    outcome = intake(incoming)
    if outcome.decision != Decision.IGNORE:
        work_chat(outcome.chat_id)
    return outcome


def next_open(chat_id: int) -> int | None:
    """The chat's oldest row whose reply is not settled yet (within :data:`QUEUE_WINDOW`)."""
    try:
        return db.session.scalar(
            select(Request.id)
            .where(
                Request.chat_id == chat_id,
                Request.delivered_at.is_(None),
                Request.request_at >= utcnow() - QUEUE_WINDOW,
            )
            .order_by(Request.id)
            .limit(1)
        )
    finally:
        db.session.close()


def settle(request_id: int) -> None:
    """Answer a row if it is pending, then deliver its reply.

    Args:
        request_id: The row.

    Raises:
        RowFailed: When answering or delivering failed.
    """
    try:
        answer(request_id)
        deliver(request_id)
    except Exception as exc:
        db.session.rollback()
        raise RowFailed(request_id, exc) from exc


def work_chat(chat_id: int) -> None:
    """Settle the chat's open rows in order, unless another task holds the chat.

    Args:
        chat_id: The chat.

    Raises:
        RowFailed: When a row could not be settled (the lock is released first).
    """
    lock = redis_store.client.lock(
        f"{KEY_PREFIX}lock:chat:{chat_id}", timeout=CHAT_LOCK_TIMEOUT, thread_local=False
    )
    while True:
        if not lock.acquire(blocking=False):
            return  # the holder settles our row too: it looks again after releasing
        try:
            while (request_id := next_open(chat_id)) is not None:
                settle(request_id)
                lock.reacquire()
        finally:
            try:
                lock.release()
            except LockNotOwnedError:
                logger.warning("chat lock expired before release chat_id=%s", chat_id)
        if next_open(chat_id) is None:
            return


def give_up(request_id: int, error: BaseException) -> None:
    """Last resort after the task's retries: the row fails and the user gets the apology.

    An answer that was produced but could never be delivered counts as failed too (its text
    stays in the row for the admin); a refusal stays a refusal. If even the apology cannot be
    sent, the reply is settled anyway so the chat's queue moves on.

    Args:
        request_id: The row that kept failing.
        error: What kept failing (recorded, redacted, for the admin).
    """
    db.session.rollback()
    try:
        row = db.session.get(Request, request_id)
        if row is None or row.delivered_at is not None:
            return
        if row.status in (RequestStatus.PENDING, RequestStatus.OK):
            row.status = RequestStatus.ERROR
            row.error_kind = ErrorKind.GAVE_UP
            row.error = redact(f"gave up: {type(error).__name__}: {error}")[:2000]
            row.delivered_parts = 0
        db.session.commit()
    finally:
        db.session.close()
    try:
        deliver(request_id)
    except Exception:  # Telegram itself may be what fails: settle, so the chat moves on
        logger.exception("could not deliver the apology request_id=%s", request_id)
        try:
            row = db.session.get(Request, request_id)
            if row is not None and row.delivered_at is None:
                row.delivered_at = utcnow()
                db.session.commit()
        finally:
            db.session.close()
