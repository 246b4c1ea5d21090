"""Telegram handlers: thin functions that call ``shared.services`` and answer.

:func:`register_handlers` attaches all of them to a bot, in priority order (commands before
free text).
"""

from __future__ import annotations

from telebot import TeleBot

from bot.handlers import commands, dialog, settings


def register_handlers(bot: TeleBot) -> None:
    """Register every handler on a bot (call once per bot).

    Args:
        bot: A TeleBot built with ``threaded=False``.
    """
    commands.register(bot)
    settings.register(bot)
    dialog.register(bot)
