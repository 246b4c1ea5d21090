"""The rules of an incoming text request: who may ask, what gets logged, what to answer next."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from shared.models import Request, RequestStatus, User
from shared.services.dialogs import find_by_update, log_request
from shared.services.users import (
    effective_mode,
    effective_model,
    is_allowed,
    over_daily_limit,
    touch_user,
)


@dataclass(frozen=True)
class Received:
    """What became of an incoming text.

    Attributes:
        user: The sender.
        message: The log row of this update (None only for an update without id seen twice,
            which cannot happen with Telegram's updates).
        allowed: Whether the LLM will be asked (False: the row is ``denied``).
        duplicate: The update was logged before (a redelivery): nothing new was written.
        reason: Why a request was denied: ``pending``, ``blocked`` or ``limit``.
    """

    user: User
    message: Request | None
    allowed: bool
    duplicate: bool = False
    reason: str | None = None


def receive_text(
    tg_user: dict[str, Any],
    text: str,
    *,
    update_id: int | None,
    chat_id: int,
    telegram_message_id: int | None,
) -> Received:
    """Register the sender and log their request: ``pending`` if they may ask, else ``denied``.

    Denied are blocked and pending users, and users over their daily request limit.

    Every text request is one log row, refused ones included; an update seen before gives no
    new row (``duplicate``). The caller commits, then enqueues the reply for a pending row —
    again for a duplicate that is still pending, since enqueueing may be what failed the first
    time and the reply task is idempotent — or sends the refusal.

    Args:
        tg_user: Telegram's ``User`` as a dict.
        text: The request.
        update_id: Telegram's update id.
        chat_id: The chat to answer in.
        telegram_message_id: The user's message.

    Returns:
        What happened.
    """
    user = touch_user(tg_user)
    reason = None
    if not is_allowed(user):
        reason = str(user.status)
    elif over_daily_limit(user, current_app.config["AI_ROUTER"].timezone):
        reason = "limit"
    allowed = reason is None
    message = log_request(
        user,
        text,
        update_id=update_id,
        chat_id=chat_id,
        telegram_message_id=telegram_message_id,
        mode=effective_mode(user),
        model=effective_model(user),
        status=RequestStatus.PENDING if allowed else RequestStatus.DENIED,
    )
    if message is None and update_id is not None:
        return Received(
            user=user, message=find_by_update(update_id), allowed=allowed, duplicate=True
        )
    return Received(user=user, message=message, allowed=allowed, reason=reason)
