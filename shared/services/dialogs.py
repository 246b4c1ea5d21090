"""Dialogs and the message log: numbering, idempotent request rows, history for the LLM.

Invariants kept here (and nowhere else):
- a user has at most one open dialog; ``/new`` ends it and the next request opens another;
- messages of a dialog are numbered 1, 2, 3 … by an atomic increment on the dialog row;
- one Telegram ``update_id`` gives at most one row (the unique index decides races).
"""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from shared.db import db
from shared.llm import ChatResult, ModelSpec, Turn
from shared.models import Dialog, ErrorKind, LLMModel, Request, RequestStatus, User
from shared.models.types import utcnow
from shared.services.users import Refusal

logger = logging.getLogger(__name__)


def current_dialog(user: User) -> Dialog:
    """Return the user's open dialog, opening a new one if there is none.

    Args:
        user: The user (their chosen mode is recorded on a newly opened dialog).

    Returns:
        The open dialog (flushed, so it has an id).
    """
    dialog = db.session.scalar(
        select(Dialog)
        .where(Dialog.user_id == user.id, Dialog.ended_at.is_(None))
        .order_by(Dialog.id.desc())
        .limit(1)
    )
    if dialog is None:
        dialog = Dialog(user_id=user.id, mode_id=user.mode_id)
        db.session.add(dialog)
        db.session.flush()
        logger.info("opened dialog_id=%s user_id=%s", dialog.id, user.id)
    return dialog


def end_dialog(user: User) -> int | None:
    """End the user's open dialog, if any: the next request starts a new, empty one.

    Args:
        user: The user.

    Returns:
        The id of the dialog that was ended, or None.
    """
    now = utcnow()
    ended = db.session.scalars(
        update(Dialog)
        .where(Dialog.user_id == user.id, Dialog.ended_at.is_(None))
        .values(ended_at=now)
        .returning(Dialog.id)
    ).all()
    db.session.flush()
    return ended[0] if ended else None


def find_by_update(update_id: int) -> Request | None:
    """The log row made for a Telegram update, if any."""
    return db.session.scalar(select(Request).where(Request.update_id == update_id))


def log_request(
    user: User,
    text: str,
    *,
    update_id: int | None,
    chat_id: int | None,
    telegram_message_id: int | None,
    mode_name: str | None,
    model_id: int | None,
    model_name: str | None,
    refusal: Refusal | None = None,
) -> Request | None:
    """Write the log row of one user request in the user's open dialog.

    Args:
        user: Who asked.
        text: The request text.
        update_id: Telegram's update id (the idempotency key).
        chat_id: Where to answer.
        telegram_message_id: The user's message, to reply to.
        mode_name: The mode in effect (snapshotted).
        model_id: The model that will answer.
        model_name: Its name (snapshotted).
        refusal: Why the request is refused (the row is ``denied``), or None (``pending``).

    Returns:
        The new row, or None when this update was logged before (a redelivery).
    """
    if update_id is not None and find_by_update(update_id) is not None:
        return None
    dialog = current_dialog(user)
    try:
        with db.session.begin_nested():
            number = db.session.scalar(
                update(Dialog)
                .where(Dialog.id == dialog.id)
                .values(last_message_number=Dialog.last_message_number + 1)
                .returning(Dialog.last_message_number)
            )
            message = Request(
                dialog_id=dialog.id,
                number=number,
                user_id=user.id,
                update_id=update_id,
                chat_id=chat_id,
                telegram_message_id=telegram_message_id,
                request_text=text,
                request_at=utcnow(),
                mode_name=mode_name,
                model_id=model_id,
                model_name=model_name,
                status=RequestStatus.PENDING if refusal is None else RequestStatus.DENIED,
                error_kind=refusal.kind if refusal else None,
                error=refusal.detail if refusal else None,
            )
            db.session.add(message)
    except IntegrityError:
        if update_id is not None and find_by_update(update_id) is not None:
            return None
        raise
    logger.info(
        "logged request dialog_id=%s number=%s update_id=%s status=%s",
        dialog.id,
        number,
        update_id,
        message.status,
    )
    return message


def history(message: Request) -> list[Turn]:
    """The answered turns of the message's dialog before it, oldest first.

    Only ``ok`` rows count: refused or failed requests are not part of the conversation.

    Args:
        message: The request being answered.

    Returns:
        Earlier turns in order.
    """
    rows = db.session.execute(
        select(Request.request_text, Request.response_text)
        .where(
            Request.dialog_id == message.dialog_id,
            Request.number < message.number,
            Request.status == RequestStatus.OK,
        )
        .order_by(Request.number)
    ).all()
    return [Turn(request, response or "") for request, response in rows]


def complete_ok(message: Request, result: ChatResult) -> None:
    """Record the LLM's answer with usage and cost.

    Args:
        message: The request row.
        result: The answer; ``result.model`` is the model that answered (maybe the fallback).
    """
    model = result.model
    message.response_text = result.text
    message.response_at = utcnow()
    message.status = RequestStatus.OK
    message.error = None
    message.error_kind = None
    message.model_id = model.id
    message.model_name = model.name
    message.prompt_tokens = result.prompt_tokens
    message.completion_tokens = result.completion_tokens
    message.cost_usd = cost_usd(model, result.prompt_tokens, result.completion_tokens)
    message.latency_ms = result.latency_ms
    db.session.flush()


def complete_error(
    message: Request, error: str, *, kind: ErrorKind, latency_ms: int | None = None
) -> None:
    """Record that the request could not be answered.

    Args:
        message: The request row.
        error: What went wrong, for the admin (never shown to the user).
        kind: Which failure it is (picks the apology).
        latency_ms: Time spent trying, if known.
    """
    message.status = RequestStatus.ERROR
    message.error_kind = kind
    message.error = error[:2000]
    message.response_at = utcnow()
    message.latency_ms = latency_ms
    db.session.flush()


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
