"""Intake: who is asking, may they ask, and the log row of the request — one unit of work.

:func:`intake` registers (or refreshes) the sender, decides, writes the ``requests`` row, and
commits once. The decision:

- ``ANSWER``: the row is ``pending`` (or answered but not yet delivered): the LLM answers it;
- ``REFUSE``: the row is ``denied`` and its refusal is not yet delivered;
- ``IGNORE``: the update was handled before and its reply is settled (a redelivery).

A redelivered update finds its row by ``update_id`` and gets the decision of the row's state,
so a retry finishes what the first attempt left (the refusal whose send failed included).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

from flask import current_app

from shared.db import db
from shared.extensions import runtime
from shared.models import Request, RequestStatus
from shared.services.dialogs import find_by_update, log_request
from shared.services.users import access_refusal, touch_user

logger = logging.getLogger(__name__)


class Decision(enum.StrEnum):
    """What to do with an incoming request."""

    ANSWER = "answer"
    REFUSE = "refuse"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Incoming:
    """A text message for the LLM, taken from a raw Telegram update.

    Attributes:
        update_id: Telegram's update id (the idempotency key of the row).
        chat_id: The chat to answer in.
        message_id: The user's message (the answer replies to it).
        text: The request.
        sender: Telegram's ``User`` object of the sender.
    """

    update_id: int | None
    chat_id: int
    message_id: int | None
    text: str
    sender: dict[str, Any]

    @classmethod
    def from_update(cls, update: dict[str, Any]) -> Incoming | None:
        """Read a text message out of an update.

        Args:
            update: The update as Telegram sent it.

        Returns:
            The request, or None when the update holds no text message with a sender.
        """
        message = update.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("text"), str):
            return None
        sender, chat = message.get("from"), message.get("chat")
        if not isinstance(sender, dict) or not isinstance(chat, dict) or "id" not in sender:
            return None
        return cls(
            update_id=update.get("update_id"),
            chat_id=int(chat["id"]),
            message_id=message.get("message_id"),
            text=message["text"],
            sender=sender,
        )


@dataclass(frozen=True)
class Intake:
    """The outcome of :func:`intake`.

    Attributes:
        decision: What happens next.
        request_id: The log row (None only for ``IGNORE`` without a row).
        chat_id: The chat whose queue the row joined.
    """

    decision: Decision
    request_id: int | None
    chat_id: int


def _decision_for(row: Request) -> Decision:
    """The decision for a row that exists (a redelivered update)."""
    if row.delivered_at is not None:
        return Decision.IGNORE
    return Decision.REFUSE if row.status == RequestStatus.DENIED else Decision.ANSWER


def intake(incoming: Incoming) -> Intake:
    """Register the sender and log the request, deciding whether the LLM answers; commit once.

    Args:
        incoming: The text message.

    Returns:
        The decision with the row's id.
    """
    try:
        if incoming.update_id is not None:
            existing = find_by_update(incoming.update_id)
            if existing is not None:
                outcome = Intake(_decision_for(existing), existing.id, incoming.chat_id)
                logger.info("update seen before update_id=%s", incoming.update_id)
                return outcome
        snapshot = runtime.get()
        user = touch_user(incoming.sender, snapshot=snapshot)
        refusal = access_refusal(user, snapshot, current_app.config["AI_ROUTER"].timezone)
        mode, model = snapshot.mode(user.mode_id), snapshot.model(user.model_id)
        row = log_request(
            user,
            incoming.text,
            update_id=incoming.update_id,
            chat_id=incoming.chat_id,
            telegram_message_id=incoming.message_id,
            mode_name=mode.name if mode else None,
            model_id=model.id if model else None,
            model_name=model.name if model else None,
            refusal=refusal,
        )
        if row is None:  # a concurrent copy of this update logged it first
            row = find_by_update(incoming.update_id)
            outcome = Intake(_decision_for(row), row.id, incoming.chat_id)
        else:
            decision = Decision.ANSWER if refusal is None else Decision.REFUSE
            outcome = Intake(decision, row.id, incoming.chat_id)
        db.session.commit()
        return outcome
    finally:
        db.session.close()
