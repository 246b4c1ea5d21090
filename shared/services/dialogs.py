"""Dialogs and the message log: numbering, idempotent request rows, history for the LLM.

Invariants kept here (and nowhere else):
- a user has at most one open private dialog, a group at most one per forum topic (0 outside
  topics), shared by its members; ``/new`` ends it and the next request opens another;
- messages of a dialog are numbered 1, 2, 3 … by an atomic increment on the dialog row;
- one Telegram ``update_id`` gives at most one row (the unique index decides races).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import bindparam, func, insert, select, update

from shared.db import db
from shared.llm import ChatResult, ModelSpec, Turn
from shared.models import Dialog, ErrorKind, LLMModel, Request, RequestStatus, User
from shared.models.types import utcnow
from shared.services.users import Sender

logger = logging.getLogger(__name__)


_DIALOGS = Dialog.__table__
_REQUESTS = Request.__table__
#: Number the next request of the user's open dialog: one statement, the dialog id with it.
_NEXT_NUMBER = (
    update(_DIALOGS)
    .where(
        _DIALOGS.c.user_id == bindparam("uid"),
        _DIALOGS.c.ended_at.is_(None),
        _DIALOGS.c.chat_id.is_(None),
    )
    .values(last_message_number=_DIALOGS.c.last_message_number + 1)
    .returning(_DIALOGS.c.id, _DIALOGS.c.last_message_number)
)
#: The same for a group's dialog (per forum topic).
_NEXT_GROUP_NUMBER = (
    update(_DIALOGS)
    .where(
        _DIALOGS.c.chat_id == bindparam("chat"),
        _DIALOGS.c.thread_id == bindparam("thread"),
        _DIALOGS.c.ended_at.is_(None),
    )
    .values(last_message_number=_DIALOGS.c.last_message_number + 1)
    .returning(_DIALOGS.c.id, _DIALOGS.c.last_message_number)
)
_OPEN_DIALOG = insert(_DIALOGS).returning(_DIALOGS.c.id)
_INSERT_REQUEST = insert(_REQUESTS).returning(_REQUESTS.c.id)
_RECORD_ANSWER = (
    update(_REQUESTS)
    .where(_REQUESTS.c.id == bindparam("rid"), _REQUESTS.c.status == bindparam("pending"))
    .values(
        response_text=bindparam("response_text"),
        response_at=bindparam("response_at"),
        status=bindparam("status"),
        error=None,
        error_kind=None,
        model_id=bindparam("model_id"),
        model_name=bindparam("model_name"),
        prompt_tokens=bindparam("prompt_tokens"),
        completion_tokens=bindparam("completion_tokens"),
        cost_usd=bindparam("cost_usd"),
        latency_ms=bindparam("latency_ms"),
    )
)
_RECORD_SETTLED = (
    update(_REQUESTS)
    .where(_REQUESTS.c.id == bindparam("rid"))
    .values(delivered_parts=bindparam("parts"), delivered_at=bindparam("at"))
)


def next_number(
    user_id: int, mode_id: int | None, chat_id: int | None = None, thread_id: int | None = None
) -> tuple[int, int]:
    """Number a new request in the open dialog, opening a dialog if there is none.

    The dialog is the user's private one, or — with ``chat_id`` — the group's for the topic.

    The counter is incremented atomically on the dialog row, so numbers run 1, 2, 3 … without
    gaps; the partial unique index on open dialogs makes two concurrent first messages of a
    user fail one of them (``IntegrityError``, the caller retries) instead of opening two.

    Args:
        user_id: The user's row id.
        mode_id: Their chosen mode (recorded on a newly opened dialog).
        chat_id: A group's chat id (None: the user's private dialog).
        thread_id: The group's forum topic (None or 0: outside topics).

    Returns:
        ``(dialog_id, number)``.

    Raises:
        IntegrityError: When a concurrent request opened the dialog first.
    """
    conn = db.session.connection()
    thread = (thread_id or 0) if chat_id is not None else None
    if chat_id is None:
        row = conn.execute(_NEXT_NUMBER, {"uid": user_id}).first()
    else:
        row = conn.execute(_NEXT_GROUP_NUMBER, {"chat": chat_id, "thread": thread}).first()
    if row is not None:
        return row.id, row.last_message_number
    values = {
        "user_id": user_id if chat_id is None else None,  # a group's dialog is nobody's own
        "mode_id": mode_id,
        "started_at": utcnow(),
        "last_message_number": 1,
        "chat_id": chat_id,
        "thread_id": thread,
    }
    dialog_id = conn.execute(_OPEN_DIALOG, values).scalar_one()
    logger.info("opened dialog_id=%s user_id=%s chat_id=%s", dialog_id, user_id, chat_id)
    return dialog_id, 1


def end_dialog(user: User, chat_id: int | None = None, thread_id: int | None = None) -> int | None:
    """End the open dialog, if any: the next request starts a new, empty one.

    Args:
        user: The user (their private dialog).
        chat_id: A group (its dialog for the topic is ended instead; any member may).
        thread_id: The group's forum topic (None or 0: outside topics).

    Returns:
        The id of the dialog that was ended, or None.
    """
    now = utcnow()
    if chat_id is None:
        which = (Dialog.user_id == user.id, Dialog.chat_id.is_(None))
    else:
        which = (Dialog.chat_id == chat_id, Dialog.thread_id == (thread_id or 0))
    ended = db.session.scalars(
        update(Dialog)
        .where(*which, Dialog.ended_at.is_(None))
        .values(ended_at=now)
        .returning(Dialog.id)
    ).all()
    db.session.flush()
    return ended[0] if ended else None


@dataclass(frozen=True)
class LoggedRequest:
    """The values of a row :func:`log_request` wrote (a detached, read-only view)."""

    id: int
    dialog_id: int
    number: int
    user_id: int
    update_id: int | None
    chat_id: int | None
    telegram_message_id: int | None
    request_text: str
    request_at: datetime
    mode_name: str | None
    model_id: int | None
    model_name: str | None
    status: RequestStatus
    error_kind: ErrorKind | None
    error: str | None
    response_at: datetime | None
    delivered_parts: int
    thread_id: int | None = None
    attachment: dict | None = None
    attachment_text: str | None = None


@dataclass(frozen=True)
class Logged:
    """Where the row of an update stands (what a redelivery needs to know).

    Attributes:
        id: The row.
        status: Its status.
        delivered: Whether its reply is settled.
    """

    id: int
    status: RequestStatus
    delivered: bool


def find_by_update(update_id: int) -> Logged | None:
    """The log row made for a Telegram update, if any (three columns, no entity loaded)."""
    row = (
        db.session.connection()
        .execute(
            select(_REQUESTS.c.id, _REQUESTS.c.status, _REQUESTS.c.delivered_at).where(
                _REQUESTS.c.update_id == update_id
            )
        )
        .first()
    )
    return Logged(row.id, RequestStatus(row.status), row.delivered_at is not None) if row else None


def log_request(
    user: User | Sender,
    text: str,
    *,
    update_id: int | None,
    chat_id: int | None,
    telegram_message_id: int | None,
    mode_name: str | None,
    model_id: int | None,
    model_name: str | None,
    status: RequestStatus = RequestStatus.PENDING,
    error_kind: ErrorKind | None = None,
    error: str | None = None,
    request_at: datetime | None = None,
    thread_id: int | None = None,
    attachment: dict | None = None,
    group_chat_id: int | None = None,
) -> LoggedRequest:
    """Write the log row of one user request in the user's open dialog (flushed, not committed).

    The dialog's counter is incremented atomically, so numbers run 1, 2, 3 … without gaps. A
    second row for the same ``update_id`` fails with ``IntegrityError`` at the flush; the
    caller rolls back and reads the first one (:func:`find_by_update`).

    Args:
        user: Who asked.
        text: The request text.
        update_id: Telegram's update id (the idempotency key).
        chat_id: Where to answer.
        telegram_message_id: The user's message, to reply to.
        mode_name: The mode in effect (snapshotted).
        model_id: The model that will answer.
        model_name: Its name (snapshotted).
        status: ``pending`` for a request to answer; ``denied`` for a refusal; ``error`` for a
            request that cannot be answered at all (no model).
        error_kind: Why it is refused or failed.
        error: The rule or the failure, for the admin.
        request_at: When it was asked (default: now).
        thread_id: The forum topic the answer goes to.
        attachment: What came with the message (``attachments.describe``).
        group_chat_id: The group whose shared dialog the row joins (None: the user's own).

    Returns:
        The new row's values (written with one INSERT; no entity is kept in the session).

    Raises:
        IntegrityError: When this update was logged before.
    """
    dialog_id, number = next_number(user.id, user.mode_id, group_chat_id, thread_id)
    now = request_at or utcnow()
    values = {
        "dialog_id": dialog_id,
        "number": number,
        "user_id": user.id,
        "update_id": update_id,
        "chat_id": chat_id,
        "telegram_message_id": telegram_message_id,
        "request_text": text,
        "request_at": now,
        "mode_name": mode_name,
        "model_id": model_id,
        "model_name": model_name,
        "status": status,
        "error_kind": error_kind,
        "error": error,
        "response_at": now if status == RequestStatus.ERROR else None,
        "delivered_parts": 0,
        "thread_id": thread_id,
        "attachment": attachment,
    }
    request_id = db.session.connection().execute(_INSERT_REQUEST, values).scalar_one()
    logger.debug(  # the row itself is the record; INFO has one line per answer
        "logged request dialog_id=%s number=%s update_id=%s status=%s",
        dialog_id,
        number,
        update_id,
        status,
    )
    return LoggedRequest(id=request_id, **values)


def history(dialog_id: int, number: int) -> list[Turn]:
    """The answered turns of a dialog before request ``number``, oldest first.

    Only ``ok`` and ``stopped`` rows with an answer count (a stopped answer is what the user
    saw): refused or failed requests are not part of the conversation. Each turn carries its
    attachment (and a document's text) for ``conversation.attachments`` to shape.

    Args:
        dialog_id: The dialog.
        number: The request being answered.

    Returns:
        Earlier turns in order.
    """
    rows = (
        db.session.connection()
        .execute(
            select(
                _REQUESTS.c.request_text,
                _REQUESTS.c.response_text,
                _REQUESTS.c.attachment,
                _REQUESTS.c.attachment_text,
            )
            .where(
                _REQUESTS.c.dialog_id == dialog_id,
                _REQUESTS.c.number < number,
                _REQUESTS.c.status.in_((RequestStatus.OK, RequestStatus.STOPPED)),
            )
            .order_by(_REQUESTS.c.number)
        )
        .all()
    )
    # a turn stopped before its first word has no answer to show the model (some providers
    # refuse an empty assistant message)
    return [Turn(row[0], row[1], row[2], row[3]) for row in rows if row[1]]


def record_answer(request_id: int, result: ChatResult) -> bool:
    """Record the LLM's answer with usage and cost, if the row is still pending.

    An answer stopped by the user (``finish_reason == "stopped"``) is recorded as ``stopped``
    with what was written.

    One UPDATE, no read: the hot path of every answer.

    Args:
        request_id: The row.
        result: The answer; ``result.model`` is the model that answered (maybe the fallback).

    Returns:
        Whether the row was pending (False: someone else recorded it, or it was deleted).
    """
    model = result.model
    done = db.session.connection().execute(
        _RECORD_ANSWER,
        {
            "rid": request_id,
            "pending": RequestStatus.PENDING,
            "response_text": result.text,
            "response_at": utcnow(),
            "status": (
                RequestStatus.STOPPED if result.finish_reason == "stopped" else RequestStatus.OK
            ),
            "model_id": model.id,
            "model_name": model.name,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "cost_usd": cost_usd(model, result.prompt_tokens, result.completion_tokens),
            "latency_ms": result.latency_ms,
        },
    )
    return bool(done.rowcount)


def record_failure(
    request_id: int, error: str, *, kind: ErrorKind, latency_ms: int | None = None
) -> bool:
    """Record that a pending request could not be answered.

    Args:
        request_id: The row.
        error: What went wrong, for the admin (never shown to the user).
        kind: Which failure it is (picks the apology).
        latency_ms: Time spent trying, if known.

    Returns:
        Whether the row was pending.
    """
    done = db.session.connection().execute(
        update(_REQUESTS)
        .where(_REQUESTS.c.id == request_id, _REQUESTS.c.status == RequestStatus.PENDING)
        .values(
            status=RequestStatus.ERROR,
            error_kind=kind,
            error=error[:2000],
            response_at=utcnow(),
            latency_ms=latency_ms,
        )
    )
    return bool(done.rowcount)


def record_delivery(request_id: int, parts: int, *, settled: bool, note: str | None = None) -> None:
    """Record how many parts of a reply Telegram accepted, and whether the reply is settled.

    Args:
        request_id: The row.
        parts: Parts accepted so far.
        settled: The reply is complete (or can never be delivered).
        note: Appended to the row's error for the admin (e.g. "undeliverable: 403 …").
    """
    if settled and not note:  # the hot path: one prebuilt statement
        db.session.connection().execute(
            _RECORD_SETTLED, {"rid": request_id, "parts": parts, "at": utcnow()}
        )
        return
    values: dict[str, object] = {"delivered_parts": parts}
    if settled:
        values["delivered_at"] = utcnow()
    if note:
        values["error"] = func.coalesce(_REQUESTS.c.error + "; ", "") + note
    db.session.connection().execute(
        update(_REQUESTS).where(_REQUESTS.c.id == request_id).values(**values)
    )


def cost_usd(
    model: LLMModel | ModelSpec, prompt_tokens: int | None, completion_tokens: int | None
) -> Decimal | None:
    """Price of one call from the model's per-million-token prices.

    Args:
        model: The model with its prices.
        prompt_tokens: Input tokens.
        completion_tokens: Output tokens.

    Returns:
        USD, or None when usage is unknown.
    """
    if prompt_tokens is None and completion_tokens is None:
        return None
    million = Decimal(1_000_000)
    return (
        Decimal(prompt_tokens or 0) * Decimal(model.input_price_per_1m or 0)
        + Decimal(completion_tokens or 0) * Decimal(model.output_price_per_1m or 0)
    ) / million
