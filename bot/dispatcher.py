"""The worker's dispatcher: one ``TeleBot(threaded=False)`` with the handlers, per process.

It never calls Telegram itself (handlers answer through ``shared.extensions.telegram``), so it
needs no token: it is built once and routes raw updates to handlers synchronously, in the
task's thread and app context, so exceptions reach the task.
"""

from __future__ import annotations

import threading

from flask import current_app
from telebot import TeleBot
from telebot.types import Update

from bot.handlers import register_handlers
from bot.middleware import UserMiddleware

#: A placeholder in the token's format: the dispatcher makes no API call with it.
DISPATCH_TOKEN = "0:dispatcher"
_LOCK = threading.Lock()


def build_dispatcher() -> TeleBot:
    """Build the dispatcher bot with its middleware and every handler.

    Returns:
        The bot; it makes no request.
    """
    bot = TeleBot(DISPATCH_TOKEN, threaded=False, validate_token=False, use_class_middlewares=True)
    bot.setup_middleware(UserMiddleware())
    register_handlers(bot)
    return bot


def dispatcher() -> TeleBot:
    """The current app's dispatcher (built on first use).

    Returns:
        The bot.
    """
    bot = current_app.extensions.get("dispatcher")
    if bot is None:
        with _LOCK:
            bot = current_app.extensions.get("dispatcher")
            if bot is None:
                bot = current_app.extensions["dispatcher"] = build_dispatcher()
    return bot


def dispatch(raw_update: dict) -> None:
    """Run the handler that matches a raw Telegram update.

    The update id is attached to the message or button press (``.update_id``) because handlers
    get those objects, not the update.

    Args:
        raw_update: The update as Telegram sent it.
    """
    update = Update.de_json(raw_update)
    events = (update.message, update.edited_message, update.callback_query)
    for event in (*events, update.pre_checkout_query):
        if event is not None:
            event.update_id = update.update_id
    dispatcher().process_new_updates([update])
