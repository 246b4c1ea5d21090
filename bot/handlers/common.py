"""Helpers shared by the handlers: who is talking, in which language."""

from __future__ import annotations

from telebot.types import CallbackQuery, Message

from bot.texts import lang_of
from shared.db import db
from shared.models import User
from shared.services.users import touch_user


def user_of(event: Message | CallbackQuery) -> tuple[User, str]:
    """Register or refresh the sender of a message or button press and pick their language.

    Every command and button press updates the user's activity this way.

    Args:
        event: The message or callback query.

    Returns:
        The user and the text language.
    """
    user = touch_user(event.from_user.to_dict())
    db.session.commit()
    return user, lang_of(event.from_user.language_code)
