"""Telegram handlers: module-level functions registered on the dispatcher bot, in priority order.

Each handler gets the message (or button press) and what ``bot.middleware.UserMiddleware``
prepared — ``user``, ``lang``, ``out`` — changes the database through ``shared.services`` and
queues its replies on ``out``; the middleware commits and sends.
"""

from __future__ import annotations

from telebot import TeleBot
from telebot.callback_data import CallbackDataFilter
from telebot.custom_filters import AdvancedCustomFilter

from bot.handlers import commands, dialog, plans, settings
from shared.telegram.keyboards import BUY, MODE, MODEL, NEW_DIALOG, PLAN


class CallbackFilter(AdvancedCustomFilter):
    """``config=FACTORY.filter()``: a button's callback data matches a ``CallbackData``."""

    key = "config"

    def check(self, query: object, config: CallbackDataFilter) -> bool:
        """Whether the query's data parses with the factory and matches the filter."""
        return config.check(query)


def register_handlers(bot: TeleBot) -> None:
    """Register every handler on a dispatcher bot (call once per bot; commands before text).

    Args:
        bot: A TeleBot built with ``threaded=False`` and ``use_class_middlewares=True``.
    """
    bot.add_custom_filter(CallbackFilter())
    bot.register_message_handler(commands.start, commands=["start"])
    bot.register_message_handler(commands.help_, commands=["help"])
    bot.register_message_handler(settings.show, commands=["settings"])
    bot.register_message_handler(dialog.new_command, commands=["new"])
    bot.register_message_handler(dialog.stop_command, commands=["stop"])
    bot.register_message_handler(plans.usage, commands=["usage"])
    bot.register_message_handler(plans.buy, commands=["buy"])
    bot.register_message_handler(plans.paid, content_types=["successful_payment"])
    bot.register_message_handler(dialog.text, content_types=["text", *dialog.QUESTION_KINDS])
    bot.register_message_handler(dialog.non_text, content_types=dialog.NON_TEXT)
    bot.register_callback_query_handler(dialog.new_button, func=lambda q: q.data == NEW_DIALOG)
    bot.register_callback_query_handler(settings.switch_mode, func=None, config=MODE.filter())
    bot.register_callback_query_handler(settings.switch_model, func=None, config=MODEL.filter())
    bot.register_callback_query_handler(plans.buy_button, func=lambda q: q.data == BUY)
    bot.register_callback_query_handler(plans.plan_button, func=None, config=PLAN.filter())
    bot.register_pre_checkout_query_handler(plans.pre_checkout, func=lambda _query: True)
