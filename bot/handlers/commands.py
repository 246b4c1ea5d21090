"""``/start`` and ``/help``."""

from __future__ import annotations

from telebot.types import Message

from bot.middleware import Outbox
from shared.models import User, UserStatus
from shared.telegram.texts import t

#: The greeting for each status of the user.
GREETING = {
    UserStatus.ACTIVE: "start",
    UserStatus.PENDING: "start_pending",
    UserStatus.BLOCKED: "denied_blocked",
}


def start(message: Message, user: User, lang: str, out: Outbox) -> None:
    """Greet and register the user (active or pending per the ``registration`` setting)."""
    name = message.from_user.first_name or message.from_user.username or ""
    out.send(message.chat.id, t(GREETING[user.status], lang, name=name))


def help_(message: Message, lang: str, out: Outbox) -> None:
    """List the commands."""
    out.send(message.chat.id, t("help", lang))
