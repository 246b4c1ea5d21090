"""``/start`` and ``/help``."""

from __future__ import annotations

from telebot import TeleBot
from telebot.types import Message

from bot.handlers.common import user_of
from bot.texts import t
from shared.models import UserStatus
from shared.services.telegram import call_telegram


def register(bot: TeleBot) -> None:
    """Attach the command handlers to a bot."""

    @bot.message_handler(commands=["start"])
    def start(message: Message) -> None:
        """Greet and register the user (active or pending per the ``registration`` setting)."""
        user, lang = user_of(message)
        key = {
            UserStatus.ACTIVE: "start",
            UserStatus.PENDING: "start_pending",
            UserStatus.BLOCKED: "denied_blocked",
        }[user.status]
        name = message.from_user.first_name or message.from_user.username or ""
        call_telegram(bot.send_message, message.chat.id, t(key, lang, name=name))

    @bot.message_handler(commands=["help"])
    def help_(message: Message) -> None:
        """List the commands."""
        _, lang = user_of(message)
        call_telegram(bot.send_message, message.chat.id, t("help", lang))
