"""The pyTelegramBotAPI dispatcher: one ``TeleBot(threaded=False)`` per bot token per process.

Handlers are registered once, when the bot for a token is first built; Celery tasks then feed
raw updates to :func:`dispatch`, which runs the matching handler synchronously in the task's
thread (and app context), so exceptions reach the task.
"""

from __future__ import annotations

import threading

from flask import Flask, current_app
from telebot import TeleBot
from telebot.types import Update

from bot.handlers import register_handlers
from shared.services.settings import get_setting
from shared.services.telegram import BotNotConfigured, configure_api_url

_BOTS_KEY = "telebots"
_LOCK_KEY = "telebots_lock"


def bot_token() -> str:
    """The bot token from the admin setting (seeded from ``TELEGRAM_BOT_TOKEN``).

    Returns:
        The token.

    Raises:
        BotNotConfigured: When no token is set.
    """
    token = get_setting("telegram_bot_token")
    if not token:
        raise BotNotConfigured("no bot token: set it in the admin settings or TELEGRAM_BOT_TOKEN")
    return token


def build_bot(token: str) -> TeleBot:
    """Build a synchronous TeleBot with all handlers registered.

    Args:
        token: The bot token.

    Returns:
        The bot; it makes no request until used.
    """
    bot = TeleBot(token, threaded=False, validate_token=False)
    register_handlers(bot)
    return bot


def get_bot(app: Flask | None = None) -> TeleBot:
    """The process's bot for the current token (built on first use, rebuilt if the token changes).

    Args:
        app: The Flask app; the current one when None.

    Returns:
        The bot.

    Raises:
        BotNotConfigured: When no token is set.
    """
    app = app or current_app._get_current_object()
    token = bot_token()
    lock = app.extensions.setdefault(_LOCK_KEY, threading.Lock())
    with lock:
        configure_api_url(app.config["AI_ROUTER"].telegram_api_url)
        bots: dict[str, TeleBot] = app.extensions.setdefault(_BOTS_KEY, {})
        bot = bots.get(token)
        if bot is None:
            bot = bots[token] = build_bot(token)
        return bot


def dispatch(raw_update: dict) -> None:
    """Run the handler that matches a raw Telegram update.

    The update id is attached to the message or callback (``.update_id``) because handlers get
    those objects, not the update, and the message log uses it as its idempotency key.

    Args:
        raw_update: The update as Telegram sent it.

    Raises:
        BotNotConfigured: When no token is set.
    """
    bot = get_bot()
    update = Update.de_json(raw_update)
    for event in (update.message, update.edited_message, update.callback_query):
        if event is not None:
            event.update_id = update.update_id
    bot.process_new_updates([update])
