"""Delivery: ONE path for answers, apologies and refusals, with one idempotency record.

A reply is computed from a :class:`ReplyView` of its row (:func:`reply_parts`): the answer split
into message-sized parts for ``ok``, an apology for ``error``, a refusal for ``denied`` — in the
user's language, the «Начать новый диалог» button under the last part. The row's
``delivered_parts`` counts the parts Telegram accepted and ``delivered_at`` marks the reply
settled, so a retry sends exactly what is missing and never repeats what was sent.

The fast path builds the view in memory (nothing is read back); a retry builds it from the row
(:func:`outbox_for`). Both send through :func:`send`.

A chat that can never be reached (the user blocked the bot, the chat is gone) settles the reply
as undeliverable instead of retrying forever.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from telebot.apihelper import ApiTelegramException

from shared.db import db
from shared.extensions import telegram
from shared.models import ErrorKind, Request, RequestStatus, User
from shared.services.dialogs import record_delivery
from shared.telegram.client import OutgoingPart, answer_parts
from shared.telegram.keyboards import new_dialog_keyboard
from shared.telegram.texts import lang_of, t

logger = logging.getLogger(__name__)

#: The text the user gets for each kind of refusal or failure.
TEXT_OF_KIND = {
    ErrorKind.BLOCKED: "denied_blocked",
    ErrorKind.PENDING: "denied_pending",
    ErrorKind.LIMIT: "denied_limit",
    ErrorKind.NO_MODEL: "no_model",
    ErrorKind.MODEL_KEY: "llm_error",
    ErrorKind.LLM: "llm_error",
    ErrorKind.GAVE_UP: "llm_error",
}
#: Bot API error codes after which a chat will not accept messages (blocked, deleted, gone).
UNREACHABLE = (403,)


@dataclass(frozen=True)
class ReplyView:
    """What a reply depends on: the row's outcome and where it goes.

    Attributes:
        status: ``ok``, ``error`` or ``denied``.
        response_text: The answer (for ``ok``).
        error_kind: The refusal or failure (for ``denied`` and ``error``).
        lang: The user's text language.
        reply_to: The user's message the reply answers.
    """

    status: RequestStatus
    response_text: str | None
    error_kind: ErrorKind | None
    lang: str
    reply_to: int | None


@dataclass(frozen=True)
class Outbox:
    """A row's reply, ready to send.

    Attributes:
        request_id: The row.
        chat_id: Where it goes.
        parts: The messages, in order.
        already_sent: Parts Telegram accepted before.
    """

    request_id: int
    chat_id: int
    parts: list[OutgoingPart]
    already_sent: int = 0


def reply_parts(view: ReplyView) -> list[OutgoingPart]:
    """The messages that answer a row in its current state.

    Args:
        view: The row's outcome.

    Returns:
        The parts (the answer split and rendered; or one apology or refusal).
    """
    keyboard = new_dialog_keyboard(view.lang)
    if view.status == RequestStatus.OK:
        return answer_parts(
            view.response_text or "", reply_markup=keyboard, reply_to_message_id=view.reply_to
        )
    kind = view.error_kind or ErrorKind.LLM
    denied = view.status == RequestStatus.DENIED
    return [
        OutgoingPart(
            text=t(TEXT_OF_KIND[kind], view.lang),
            reply_markup=None if denied else keyboard,
            reply_to_message_id=view.reply_to if denied else None,
        )
    ]


def outbox_for(request_id: int) -> Outbox | None:
    """Read what is left to send of a row's reply (one short unit of work).

    Args:
        request_id: The row.

    Returns:
        The outbox, or None when the row is gone, still pending, or already settled.
    """
    try:
        row = db.session.execute(
            db.select(Request, User.language_code)
            .join(User, User.id == Request.user_id)
            .where(Request.id == request_id)
        ).first()
        if row is None:
            return None
        request, language_code = row
        if request.delivered_at is not None or request.chat_id is None:
            return None
        if request.status == RequestStatus.PENDING:
            return None
        view = ReplyView(
            request.status,
            request.response_text,
            request.error_kind,
            lang_of(language_code),
            request.telegram_message_id,
        )
        return Outbox(request_id, request.chat_id, reply_parts(view), request.delivered_parts)
    finally:
        db.session.close()


def _record(request_id: int, parts: int, *, settled: bool, note: str | None = None) -> None:
    """Write the delivery record in its own short unit of work."""
    try:
        record_delivery(request_id, parts, settled=settled, note=note)
        db.session.commit()
    finally:
        db.session.close()


def send(outbox: Outbox) -> None:
    """Send what is missing of a reply and record each part as Telegram accepts it.

    Args:
        outbox: The reply.

    Raises:
        ApiTelegramException: When Telegram keeps failing (the caller retries later; parts
            already accepted are recorded and will not be sent again).
    """
    total = len(outbox.parts)

    def sent(index: int) -> None:
        _record(outbox.request_id, index + 1, settled=index + 1 == total)

    try:
        telegram.send_parts(outbox.chat_id, outbox.parts, skip=outbox.already_sent, on_sent=sent)
    except ApiTelegramException as exc:
        if exc.error_code not in UNREACHABLE:
            raise
        logger.warning("chat unreachable, reply dropped request_id=%s: %s", outbox.request_id, exc)
        _record(outbox.request_id, outbox.already_sent, settled=True, note=f"undeliverable: {exc}")
        return
    if outbox.already_sent >= total:  # everything was sent before; only the mark was missing
        _record(outbox.request_id, total, settled=True)


def deliver(request_id: int) -> None:
    """Send what is missing of a row's reply, read from the row.

    Args:
        request_id: The row (``pending`` rows and settled ones are left alone).

    Raises:
        ApiTelegramException: When Telegram keeps failing.
    """
    outbox = outbox_for(request_id)
    if outbox is not None:
        send(outbox)
