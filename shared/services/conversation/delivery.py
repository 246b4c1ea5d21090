"""Delivery: ONE path for answers, apologies and refusals, with one idempotency record.

A reply is computed from a :class:`ReplyView` of its row (:func:`reply_parts`): the answer split
into message-sized parts for ``ok``, an apology for ``error``, a refusal for ``denied`` — in the
user's language, the «Начать новый диалог» button under the last part. The row's
``delivered_parts`` counts the parts Telegram accepted and ``delivered_at`` marks the reply
settled, so a retry sends exactly what is missing and never repeats what was sent.

The fast path builds the view in memory (nothing is read back); a retry builds it from the row
(:func:`outbox_for`). Both send through :func:`send`.

A chat that can never be reached (Telegram's 403: the user blocked the bot, the account is
gone) marks the user unreachable (nothing more is sent until they write again) and settles the
reply as undeliverable at once. Any other refusal of Telegram's (4xx but 429) is logged with
its description and settled the same way: repeating it cannot help. 429s never get here (the
pacer books again); 5xx and network errors raise, and the task retries.

Every send is paced (``shared.telegram.pacer``); an answer whose slot is far away raises
:class:`~shared.telegram.client.SendDeferred` from :func:`send` with the parts sent so far
recorded, and a later task sends the rest.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app
from telebot.types import InlineKeyboardMarkup

from shared import metrics
from shared.db import db
from shared.extensions import runtime, telegram
from shared.models import ErrorKind, Request, RequestStatus, User
from shared.services import payments
from shared.services.conversation import attachments
from shared.services.dialogs import record_delivery
from shared.services.quotas import LimitHit
from shared.services.users import close_unreachable, mark_unreachable
from shared.telegram.client import ChatUnreachable, OutgoingPart, answer_parts
from shared.telegram.errors import TelegramApiError
from shared.telegram.keyboards import buy_keyboard, new_dialog_keyboard
from shared.telegram.texts import lang_of, local_time, t
from shared.timers import Cancellable

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
    ErrorKind.GROUP_BLOCKED: "denied_group",
    ErrorKind.TRANSCRIPTION: "transcription_error",
    ErrorKind.FILE: "file_error",
    ErrorKind.UNSUPPORTED_FILE: "unsupported_file",
    ErrorKind.NO_VOICE: "no_voice",
}
#: Failures whose apology replies to the user's message (it names what went wrong with it).
REPLYING = frozenset({ErrorKind.TRANSCRIPTION, ErrorKind.FILE, ErrorKind.UNSUPPORTED_FILE})
#: Refusals whose text names a limit or a model (``attachments.refusal_text``).
ATTACHMENT_REFUSALS = frozenset({ErrorKind.NO_VISION, ErrorKind.TOO_LONG, ErrorKind.TOO_LARGE})
#: Bot API error codes after which a chat will not accept messages (blocked, deleted, gone).
UNREACHABLE = (403,)
#: The answer must keep growing this long before its first draft (seconds): an answer that
#: arrives in one burst (a fast model, a short answer) costs no draft.
DRAFT_FIRST_AFTER = 0.03
#: A draft is updated at most this often (seconds); the pacer may skip more of them.
DRAFT_EVERY = 0.5
#: ...and only when at least this many characters are new (the first one always goes).
DRAFT_MIN_NEW = 24
#: A draft shows at most this much of the end of the answer (Telegram allows 4096).
DRAFT_MAX = 4000


@dataclass(frozen=True)
class ReplyView:
    """What a reply depends on: the row's outcome and where it goes.

    Attributes:
        status: ``ok``, ``stopped``, ``error`` or ``denied``.
        response_text: The answer (for ``ok``; what was written for ``stopped``).
        error_kind: The refusal or failure (for ``denied`` and ``error``).
        lang: The user's text language.
        reply_to: The user's message the reply answers.
        error: The row's ``error`` (a plan limit's refusal names the limit and its reset).
        preface: Markdown shown before the answer (a trimmed file's note).
        transcript: A recording's transcript, quoted in messages of its own before the answer.
        attachment: The row's attachment (an attachment refusal names its limit).
        model_name: The model that would answer (a photo refusal names it).
    """

    status: RequestStatus
    response_text: str | None
    error_kind: ErrorKind | None
    lang: str
    reply_to: int | None
    error: str | None = None
    preface: str | None = None
    transcript: str | None = None
    attachment: dict[str, Any] | None = None
    model_name: str | None = None


@dataclass(frozen=True)
class Outbox:
    """A row's reply, ready to send.

    Attributes:
        request_id: The row.
        chat_id: Where it goes.
        parts: The messages, in order.
        already_sent: Parts Telegram accepted before.
        status: The row's status (what the metrics count once the reply is delivered).
        thread_id: The forum topic it goes to (None: the chat itself).
    """

    request_id: int
    chat_id: int
    parts: list[OutgoingPart]
    already_sent: int = 0
    status: RequestStatus = RequestStatus.OK
    thread_id: int | None = None


def reply_parts(view: ReplyView) -> list[OutgoingPart]:
    """The messages that answer a row in its current state.

    Args:
        view: The row's outcome.

    Returns:
        The parts (the answer split and rendered; or one apology or refusal).
    """
    keyboard = new_dialog_keyboard(view.lang)
    preface = f"{view.preface}\n\n" if view.preface else ""
    quoted = attachments.transcript_parts(view.transcript, view.reply_to) if view.transcript else []
    reply_to = None if quoted else view.reply_to  # the quote already replies to the voice
    if view.status == RequestStatus.OK:
        return quoted + answer_parts(
            preface + (view.response_text or ""),
            reply_markup=keyboard,
            reply_to_message_id=reply_to,
        )
    if view.status == RequestStatus.STOPPED:  # what was written, and that it was stopped
        text = (view.response_text or "").rstrip()
        note = t("stopped", view.lang)
        return quoted + answer_parts(
            preface + (f"{text}\n\n_{note}_" if text else f"_{note}_"),
            reply_markup=keyboard,
            reply_to_message_id=reply_to,
        )
    kind = view.error_kind or ErrorKind.LLM
    denied = view.status == RequestStatus.DENIED
    if kind == ErrorKind.LIMIT:
        text, markup = limit_refusal(view.error, view.lang)
        return [OutgoingPart(text=text, reply_markup=markup, reply_to_message_id=view.reply_to)]
    if kind in ATTACHMENT_REFUSALS:
        text = attachments.refusal_text(
            kind,
            view.attachment,
            view.model_name,
            view.error,
            view.lang,
            current_app.config["AI_ROUTER"],
        )
        return [OutgoingPart(text=text, reply_to_message_id=view.reply_to)]
    return [
        OutgoingPart(
            text=t(TEXT_OF_KIND[kind], view.lang),
            reply_markup=None if denied else keyboard,
            reply_to_message_id=view.reply_to if denied or kind in REPLYING else None,
        )
    ]


def limit_refusal(error: str | None, lang: str) -> tuple[str, InlineKeyboardMarkup | None]:
    """The refusal of a request over a plan limit: which limit, when it resets, and «Buy».

    Args:
        error: The row's ``error`` (:meth:`~shared.services.quotas.LimitHit.to_error`); an
            older row's plain text gives the generic daily-limit refusal.
        lang: Text language.

    Returns:
        The text, and the «Купить тариф» button when a plan is on sale (else None).
    """
    hit = LimitHit.parse(error)
    if hit is None:
        text = t(TEXT_OF_KIND[ErrorKind.LIMIT], lang)
    else:
        resets = local_time(hit.resets_at, current_app.config["AI_ROUTER"].timezone)
        text = t(f"limit_{hit.limit}", lang, limit=hit.value, resets=resets)
    return text, buy_keyboard(lang) if payments.offers(runtime.get()) else None


class DraftPreview:
    """Shows an answer growing in a private chat while the model writes (``sendMessageDraft``).

    Called with the whole text so far each time a read of the stream added to it (never for
    a read that finished the answer). The first draft goes once the text has kept growing for
    :data:`DRAFT_FIRST_AFTER`, so an answer that arrives in one burst costs no draft; then at
    most one per :data:`DRAFT_EVERY` seconds, and only when enough new text arrived; the pacer
    skips drafts when the chat's or the bot's lane has no spare room, so a busy lane keeps only
    the newest text and no draft ever waits. The first draft cancels the pending "typing…".
    If a draft fails in any way (Telegram refuses it, Redis is away), the preview stops and
    "typing…" stays: a preview never costs the answer.

    Args:
        chat_id: The private chat.
        draft_id: The id of this answer's draft (the row id: non-zero and unique).
        typing: The delayed "typing…" to cancel once text shows.
    """

    def __init__(self, chat_id: int, draft_id: int, typing: Cancellable) -> None:
        self.chat_id = chat_id
        self.draft_id = draft_id
        self.shown = 0
        self.sent = 0
        self._typing = typing
        self._next_at: float | None = None
        self._off = False

    def __call__(self, text: str) -> None:
        """Consider showing the text so far.

        Args:
            text: The answer so far (a retried call starts again from its first chunk).
        """
        now = time.monotonic()
        if self._off or not text.strip():
            return
        if self._next_at is None:  # the first text starts the clock
            self._next_at = now + DRAFT_FIRST_AFTER
            return
        if now < self._next_at:
            return
        if self.sent and abs(len(text) - self.shown) < DRAFT_MIN_NEW:
            return
        self._next_at = now + DRAFT_EVERY
        preview = text if len(text) <= DRAFT_MAX else "…" + text[-(DRAFT_MAX - 1) :]
        try:
            shown = telegram.send_message_draft(self.chat_id, self.draft_id, preview)
        except Exception as exc:  # noqa: BLE001 - a preview must never fail the answer
            logger.info("drafts off for chat_id=%s: %s: %s", self.chat_id, type(exc).__name__, exc)
            self._off = True
            return
        if shown:
            if not self.sent:
                self._typing.cancel()
            self.sent += 1
            self.shown = len(text)


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
        lang = lang_of(language_code)
        view = ReplyView(
            request.status,
            request.response_text,
            request.error_kind,
            lang,
            request.telegram_message_id,
            request.error,
            preface=attachments.preface(request.attachment, lang),
            transcript=attachments.transcript_of(request.attachment, request.request_text),
            attachment=request.attachment,
            model_name=request.model_name,
        )
        return Outbox(
            request_id,
            request.chat_id,
            reply_parts(view),
            request.delivered_parts,
            view.status,
            request.thread_id,
        )
    finally:
        db.session.close()


def _record(request_id: int, parts: int, *, settled: bool, note: str | None = None) -> None:
    """Write the delivery record in its own short unit of work."""
    try:
        record_delivery(request_id, parts, settled=settled, note=note)
        db.session.commit()
    finally:
        db.session.close()


def _unreachable(outbox: Outbox, done: int, reason: str, note: str) -> None:
    """Mark the chat unreachable and settle the reply, in one unit of work."""
    try:
        mark_unreachable(outbox.chat_id, reason)
        record_delivery(outbox.request_id, done, settled=True, note=note)
        db.session.commit()
    finally:
        db.session.close()
    close_unreachable(outbox.chat_id)


def send(outbox: Outbox) -> None:
    """Send what is missing of a reply and record each part as Telegram accepts it.

    Args:
        outbox: The reply.

    Raises:
        TelegramApiError: When Telegram keeps failing with 5xx (the caller retries later;
            parts already accepted are recorded and will not be sent again).
        BotApiUnavailable: When the Bot API cannot be reached (the same).
        SendDeferred: When the flood limits put the next part far away (the same).
    """
    total = len(outbox.parts)
    done = outbox.already_sent

    def sent(index: int) -> None:
        nonlocal done
        done = index + 1
        _record(outbox.request_id, done, settled=done == total)
        if done == total:
            metrics.inc(metrics.REPLIES_DELIVERED, status=outbox.status.value)

    try:
        telegram.send_parts(
            outbox.chat_id,
            outbox.parts,
            skip=outbox.already_sent,
            on_sent=sent,
            thread_id=outbox.thread_id,
        )
    except ChatUnreachable as exc:
        _record(outbox.request_id, done, settled=True, note=f"undeliverable: {exc}")
        metrics.inc(metrics.REPLIES_DELIVERED, status="undeliverable")
        return
    except TelegramApiError as exc:
        if exc.error_code == 429 or exc.error_code >= 500:
            raise
        note = f"undeliverable: {exc.error_code} {exc.description}"
        if exc.error_code in UNREACHABLE:
            _unreachable(outbox, done, exc.description or "", note)
        else:
            logger.warning("telegram refused the reply request_id=%s: %s", outbox.request_id, note)
            _record(outbox.request_id, done, settled=True, note=note)
        metrics.inc(metrics.REPLIES_DELIVERED, status="undeliverable")
        return
    if outbox.already_sent >= total:  # everything was sent before; only the mark was missing
        _record(outbox.request_id, total, settled=True)


def deliver(request_id: int) -> None:
    """Send what is missing of a row's reply, read from the row.

    Args:
        request_id: The row (``pending`` rows and settled ones are left alone).

    Raises:
        TelegramApiError: When Telegram keeps failing.
    """
    outbox = outbox_for(request_id)
    if outbox is not None:
        send(outbox)
