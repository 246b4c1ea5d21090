"""Delivery: ONE path for answers, apologies and refusals, with one idempotency record.

The reply of a row is computed from the row alone (:func:`reply_parts`): the answer split into
message-sized parts for ``ok``, an apology for ``error``, a refusal for ``denied`` — in the
user's language, the «Начать новый диалог» button under the last part. The row's
``delivered_parts`` counts the parts Telegram accepted and ``delivered_at`` marks the reply
settled, so a retry sends exactly what is missing and never repeats what was sent.

A chat that can never be reached (the user blocked the bot, the chat is gone) settles the reply
as undeliverable instead of retrying forever.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from telebot.apihelper import ApiTelegramException

from shared.db import db
from shared.extensions import telegram
from shared.models import ErrorKind, Request, RequestStatus
from shared.models.types import utcnow
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
    already_sent: int


def reply_parts(row: Request) -> list[OutgoingPart]:
    """The messages that answer a row in its current state.

    Args:
        row: A row that is ``ok``, ``error`` or ``denied``.

    Returns:
        The parts (the answer split and rendered; or one apology or refusal).
    """
    lang = lang_of(row.user.language_code if row.user else None)
    keyboard = new_dialog_keyboard(lang)
    if row.status == RequestStatus.OK:
        return answer_parts(
            row.response_text or "",
            reply_markup=keyboard,
            reply_to_message_id=row.telegram_message_id,
        )
    kind = row.error_kind or ErrorKind.LLM
    denied = row.status == RequestStatus.DENIED
    return [
        OutgoingPart(
            text=t(TEXT_OF_KIND[kind], lang),
            reply_markup=None if denied else keyboard,
            reply_to_message_id=row.telegram_message_id if denied else None,
        )
    ]


def _outbox(request_id: int) -> Outbox | None:
    """Read what is left to send of a row's reply (one short unit of work)."""
    try:
        row = db.session.get(Request, request_id)
        if row is None or row.delivered_at is not None or row.chat_id is None:
            return None
        if row.status == RequestStatus.PENDING:
            return None
        return Outbox(request_id, row.chat_id, reply_parts(row), row.delivered_parts)
    finally:
        db.session.close()


def _mark(request_id: int, sent: int, *, settled: bool, note: str | None = None) -> None:
    """Record ``sent`` parts accepted (and the reply settled) in one short unit of work."""
    try:
        row = db.session.get(Request, request_id)
        if row is None:
            return
        row.delivered_parts = sent
        if settled:
            row.delivered_at = utcnow()
        if note:
            row.error = f"{row.error}; {note}" if row.error else note
        db.session.commit()
    finally:
        db.session.close()


def deliver(request_id: int) -> None:
    """Send what is missing of a row's reply and record each part as Telegram accepts it.

    Args:
        request_id: The row (``pending`` rows and settled ones are left alone).

    Raises:
        ApiTelegramException: When Telegram keeps failing (the caller retries later; parts
            already accepted are recorded and will not be sent again).
    """
    outbox = _outbox(request_id)
    if outbox is None:
        return
    total = len(outbox.parts)

    def sent(index: int) -> None:
        _mark(request_id, index + 1, settled=index + 1 == total)

    try:
        telegram.send_parts(outbox.chat_id, outbox.parts, skip=outbox.already_sent, on_sent=sent)
    except ApiTelegramException as exc:
        if exc.error_code not in UNREACHABLE:
            raise
        logger.warning("chat unreachable, reply dropped request_id=%s: %s", request_id, exc)
        _mark(request_id, outbox.already_sent, settled=True, note=f"undeliverable: {exc}")
        return
    if outbox.already_sent >= total:  # everything was sent before; only the mark was missing
        _mark(request_id, total, settled=True)
