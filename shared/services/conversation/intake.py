"""Intake: who is asking, may they ask, and the log row of the request — one unit of work.

:func:`intake` registers (or refreshes) the sender, decides, writes the ``requests`` row, and
commits once. The decision:

- ``ANSWER``: the row is ``pending`` (or answered, or failed, but not yet delivered);
- ``REFUSE``: the row is ``denied`` and its refusal is not yet delivered;
- ``IGNORE``: the update was handled before and its reply is settled (a redelivery).

For a new row the same unit of work prepares everything the rest needs in memory — a
:class:`Ticket` with the LLM prompt (the dialog's history is read here) or the refusal — and
whether older replies of the chat are still open, so the common case reads nothing back later.

A redelivered update finds its row by ``update_id`` and gets the decision of the row's state
(no ticket: the queue reads the row), so a retry finishes what the first attempt left.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from shared.db import db
from shared.extensions import runtime
from shared.llm import ModelSpec
from shared.models import ErrorKind, GroupStatus, Request, RequestStatus
from shared.models.types import utcnow
from shared.runtime import Snapshot
from shared.services import groups, quotas
from shared.services.conversation import attachments
from shared.services.conversation.answering import Prompt, build_prompt
from shared.services.conversation.delivery import ReplyView
from shared.services.dialogs import Logged, find_by_update, log_request, record_failure
from shared.services.plans import PlanSpec, effective_plan, model_for
from shared.services.quotas import LimitHit, Limits
from shared.services.users import Refusal, access_refusal, register_sender
from shared.telegram.texts import lang_of

logger = logging.getLogger(__name__)

#: Open rows older than this are not picked up by a chat's queue any more (left for the admin).
QUEUE_WINDOW = timedelta(hours=1)


class Decision(enum.StrEnum):
    """What to do with an incoming request."""

    ANSWER = "answer"
    REFUSE = "refuse"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Incoming:
    """A question for the LLM, taken from a raw Telegram update.

    Attributes:
        update_id: Telegram's update id (the idempotency key of the row).
        chat_id: The chat to answer in.
        message_id: The user's message (the answer replies to it).
        text: The request: the text or the caption (in a group, without the bot's address).
        sender: Telegram's ``User`` object of the sender.
        chat: Telegram's ``Chat`` object (a group is registered from it).
        thread_id: The forum topic the message was sent in (None outside topics).
        attachment: What came with it (``attachments.describe``), or None for text.
    """

    update_id: int | None
    chat_id: int
    message_id: int | None
    text: str
    sender: dict[str, Any]
    chat: dict[str, Any] = dataclasses.field(default_factory=dict)
    thread_id: int | None = None
    attachment: dict[str, Any] | None = None

    @property
    def in_group(self) -> bool:
        """Whether the message was sent in a group or supergroup."""
        return groups.is_group(self.chat)

    @classmethod
    def from_update(
        cls, update: dict[str, Any], bot: groups.BotIdentity | None = None
    ) -> Incoming | None:
        """Read a question out of an update: text, or a photo, voice, audio or document.

        Args:
            update: The update as Telegram sent it.
            bot: The bot's identity, to take its address out of a group message.

        Returns:
            The request, or None when the update holds no question with a sender (or one
            whose ids are not integers, or a text that is empty once NUL bytes are removed:
            no database stores them in text).
        """
        message = update.get("message")
        if not isinstance(message, dict):
            return None
        sender, chat = message.get("from"), message.get("chat")
        if not isinstance(sender, dict) or not isinstance(chat, dict):
            return None
        ids = (sender.get("id"), chat.get("id"), update.get("update_id"))
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            return None
        attachment = None
        if isinstance(message.get("text"), str):
            text = message["text"]
        else:
            attachment = attachments.describe(message, current_app.config["AI_ROUTER"])
            if attachment is None:
                return None
            text = message.get("caption") if isinstance(message.get("caption"), str) else ""
        text = text.replace("\x00", "")
        if bot is not None and groups.is_group(chat):
            text = groups.strip_address(text, bot) or (text if attachment is None else "")
        if attachment is not None and attachment["kind"] in attachments.SPOKEN:
            # the request becomes the transcript; a caption goes to the model beside it
            attachment = {**attachment, "caption": text} if text.strip() else attachment
            text = ""
        if not text.strip() and attachment is None:
            return None
        message_id = message.get("message_id")
        return cls(
            update_id=update["update_id"],
            chat_id=chat["id"],
            message_id=message_id if isinstance(message_id, int) else None,
            text=text,
            sender=sender,
            chat=chat,
            thread_id=groups.topic_of(message),
            attachment=attachment,
        )


@dataclass(frozen=True)
class Ticket:
    """A new row's work, prepared in intake's unit of work.

    Attributes:
        request_id: The row.
        chat_id: The chat.
        prompt: The LLM prompt for a pending row, else None.
        reply: The reply's view for a row that needs no LLM (refused, or failed at once);
            for a pending row, its language and the message to reply to (status ``pending``).
        thread_id: The forum topic the reply goes to.
    """

    request_id: int
    chat_id: int
    prompt: Prompt | None
    reply: ReplyView
    thread_id: int | None = None


@dataclass(frozen=True)
class Intake:
    """The outcome of :func:`intake`.

    Attributes:
        decision: What happens next.
        request_id: The log row.
        chat_id: The chat whose queue the row joined.
        ticket: The prepared work of a new row settled at once (None for a redelivered update
            and for a row queued behind an open reply: the chat's holder prepares it).
        older_open: Whether older replies of the chat were still open at intake.
    """

    decision: Decision
    request_id: int | None
    chat_id: int
    ticket: Ticket | None = None
    older_open: bool = True


def _decision_for(row: Logged) -> Decision:
    """The decision for a row that exists (a redelivered update)."""
    if row.delivered:
        return Decision.IGNORE
    return Decision.REFUSE if row.status == RequestStatus.DENIED else Decision.ANSWER


_REQUESTS = Request.__table__
_OLDER_OPEN = (
    select(_REQUESTS.c.id)
    .where(
        _REQUESTS.c.chat_id == bindparam("chat"),
        _REQUESTS.c.delivered_at.is_(None),
        _REQUESTS.c.id < bindparam("rid"),
        _REQUESTS.c.request_at >= bindparam("since"),
    )
    .limit(1)
)


def older_open(chat_id: int, request_id: int) -> bool:
    """Whether the chat has replies older than ``request_id`` that are not settled yet."""
    params = {"chat": chat_id, "rid": request_id, "since": utcnow() - QUEUE_WINDOW}
    return db.session.connection().execute(_OLDER_OPEN, params).first() is not None


def intake(incoming: Incoming) -> Intake:
    """Register the sender, check access and limits, log the request and prepare its work.

    Two short units of work: the sender's refresh, then — after the limits were checked in
    Redis, with no connection held (SQLite under gevent shares one among all greenlets) — the
    row, committed once. A quota reservation is given back if the row is never committed (the
    task's retry reserves again).

    Args:
        incoming: The text message.

    Returns:
        The decision with the row's id (and, for a new row, its ticket).
    """
    reserved: list[tuple[int, int, datetime]] = []
    try:
        for attempt in range(2):
            try:
                outcome = _log_new(incoming, reserved)
                db.session.commit()
                failed = (
                    outcome.ticket is not None
                    and outcome.ticket.reply.status == RequestStatus.ERROR
                )
                for user_id, name, at in reserved if failed else ():
                    quotas.settle(user_id, name, at, 0, None)  # no LLM call: nothing spent
                reserved.clear()
                return outcome
            except IntegrityError:
                # The update was logged before (a redelivery, or a concurrent copy), or a
                # concurrent first message of the user opened the dialog: look, then retry.
                db.session.rollback()
                existing = find_by_update(incoming.update_id)
                if existing is None or existing.status != RequestStatus.PENDING:
                    for user_id, name, at in reserved:  # a pending copy settles it itself
                        quotas.release(user_id, name, at)
                reserved.clear()
                if existing is not None:
                    logger.info("update seen before update_id=%s", incoming.update_id)
                    return Intake(_decision_for(existing), existing.id, incoming.chat_id)
                if attempt:
                    raise
        raise AssertionError("unreachable")
    finally:
        for user_id, name, at in reserved:  # the row was never committed
            quotas.release(user_id, name, at)
        db.session.close()


def _log_new(incoming: Incoming, reserved: list[tuple[int, int, datetime]]) -> Intake:
    """Write the row of a new request and prepare its ticket.

    Args:
        incoming: The text message.
        reserved: Gets ``(user_id, update_id, at)`` of a quota reservation made here.
    """
    snapshot = runtime.get()
    user = register_sender(incoming.sender, snapshot=snapshot, private=not incoming.in_group)
    refusal = access_refusal(user)
    if incoming.in_group and groups.register_group(incoming.chat) == GroupStatus.BLOCKED:
        refusal = refusal or Refusal(ErrorKind.GROUP_BLOCKED, "the group is blocked")
    now = utcnow()
    plan = effective_plan(snapshot, user.plan_id, user.plan_expires_at, now)
    mode, model = snapshot.mode(user.mode_id), model_for(snapshot, plan, user.model_id)
    refusal = refusal or _attachment_refusal(incoming, model, snapshot, plan)
    limits = Limits.of(plan, user.daily_request_limit)
    if refusal is None and not limits.unlimited:
        db.session.commit()  # the sender's refresh: no connection is held across Redis calls
        chosen = model
        hit, model, fresh = _reserve(incoming, user.id, limits, plan, model, now, snapshot)
        if hit is not None:
            refusal = Refusal(ErrorKind.LIMIT, hit.to_error())
        elif model is not chosen and (
            refusal := _attachment_refusal(incoming, model, snapshot, plan)
        ):
            if fresh:  # the plan's fallback cannot take it (a photo, a model that cannot see)
                quotas.release(user.id, incoming.update_id, now)
        elif fresh:
            reserved.append((user.id, incoming.update_id, now))
    row = log_request(
        user,
        incoming.text,
        update_id=incoming.update_id,
        chat_id=incoming.chat_id,
        telegram_message_id=incoming.message_id,
        mode_name=mode.name if mode else None,
        model_id=model.id if model else None,
        model_name=model.name if model else None,
        status=RequestStatus.PENDING if refusal is None else RequestStatus.DENIED,
        error_kind=refusal.kind if refusal else None,
        error=refusal.detail if refusal else None,
        request_at=now,
        thread_id=incoming.thread_id,
        attachment=incoming.attachment,
        group_chat_id=incoming.chat_id if incoming.in_group else None,
    )
    decision = Decision.REFUSE if refusal is not None else Decision.ANSWER
    if older_open(incoming.chat_id, row.id):
        # Queued behind an open reply: the chat's holder settles it from the database, so
        # its prompt is built then (building it here too would be thrown away).
        return Intake(decision, row.id, incoming.chat_id, None, True)
    lang = lang_of(incoming.sender.get("language_code"))
    prompt: Prompt | None = None
    if refusal is None:
        built = build_prompt(row, user, snapshot, metered=not limits.unlimited)
        if isinstance(built, Prompt):
            prompt = built
        else:
            kind, error = built
            record_failure(row.id, error, kind=kind)
            row = dataclasses.replace(row, status=RequestStatus.ERROR, error_kind=kind)
    reply = ReplyView(
        row.status,
        None,
        row.error_kind,
        lang,
        incoming.message_id,
        row.error,
        attachment=incoming.attachment,
        model_name=row.model_name,
    )
    ticket = Ticket(row.id, incoming.chat_id, prompt, reply, incoming.thread_id)
    return Intake(decision, row.id, incoming.chat_id, ticket, older_open=False)


def _attachment_refusal(
    incoming: Incoming, model: ModelSpec | None, snapshot: Snapshot, plan: PlanSpec | None
) -> Refusal | None:
    """Why the model cannot take what came with the message (before any download), or None."""
    if incoming.attachment is None:
        return None
    config = current_app.config["AI_ROUTER"]
    kind = attachments.refusal(incoming.attachment, model, snapshot, config)
    if kind is None:
        return None
    return Refusal(kind, attachments.refusal_detail(kind, incoming.attachment, snapshot, plan))


def _reserve(
    incoming: Incoming,
    user_id: int,
    limits: Limits,
    plan: PlanSpec | None,
    model: ModelSpec | None,
    at: datetime,
    snapshot: Snapshot,
) -> tuple[LimitHit | None, ModelSpec | None, bool]:
    """Reserve the request's share of the user's limits; a plan's fallback past its dollars.

    The reservation is named after the update (the row does not exist yet).

    Returns:
        ``(None, model, fresh)`` when the request may be answered — by the plan's fallback if
        the dollar limit was reached — where ``fresh`` is False for a redelivered update whose
        reservation was already held; else ``(the limit it hit, model, False)``.
    """
    name = incoming.update_id
    extra = attachments.prompt_tokens(incoming.attachment, model)
    first = quotas.reserve(
        user_id, name, limits, quotas.estimate(model, incoming.text, extra), at=at
    )
    if first is None or isinstance(first, quotas.Held):
        return None, model, first is None
    fallback_id = plan.fallback_model_id if plan is not None else None
    fallback = snapshot.models.get(fallback_id) if fallback_id is not None else None
    if first.limit != "cost_usd_per_month" or fallback is None or fallback == model:
        return first, model, False
    second = quotas.reserve(
        user_id,
        name,
        limits,
        quotas.estimate(
            fallback, incoming.text, attachments.prompt_tokens(incoming.attachment, fallback)
        ),
        at=at,
        ignore_cost=True,
    )
    if second is not None and not isinstance(second, quotas.Held):
        return second, model, False
    logger.info("update_id=%s answered by the plan's fallback %s", name, fallback.name)
    return None, fallback, second is None
