"""``/settings``: show the mode and model in effect, switch them with inline buttons."""

from __future__ import annotations

from telebot import TeleBot
from telebot.types import CallbackQuery, Message

from bot.handlers.common import user_of
from bot.keyboards import MODE_PREFIX, MODEL_PREFIX, settings_keyboard
from bot.texts import t
from shared.db import db
from shared.models import User
from shared.services.catalog import list_models, list_modes
from shared.services.telegram import call_telegram
from shared.services.users import choose_mode, choose_model, effective_mode, effective_model


def _render(user: User, lang: str) -> tuple[str, object]:
    mode, model = effective_mode(user), effective_model(user)
    text = t(
        "settings",
        lang,
        mode=mode.name if mode else t("not_set", lang),
        model=model.name if model else t("not_set", lang),
    )
    keyboard = settings_keyboard(
        lang,
        list_modes(),
        list_models(enabled_only=True),
        mode.id if mode else None,
        model.id if model else None,
    )
    return text, keyboard


def register(bot: TeleBot) -> None:
    """Attach the settings handlers to a bot."""

    @bot.message_handler(commands=["settings"])
    def show(message: Message) -> None:
        """Show the current mode and model with buttons to switch."""
        user, lang = user_of(message)
        text, keyboard = _render(user, lang)
        call_telegram(bot.send_message, message.chat.id, text, reply_markup=keyboard)

    @bot.callback_query_handler(
        func=lambda q: (q.data or "").startswith((MODE_PREFIX, MODEL_PREFIX))
    )
    def switch(query: CallbackQuery) -> None:
        """Apply a mode or model button, confirm with a toast, refresh the settings message."""
        user, lang = user_of(query)
        kind, _, raw_id = (query.data or "").partition(":")
        chosen = None
        if raw_id.isdigit():
            choose = choose_mode if f"{kind}:" == MODE_PREFIX else choose_model
            chosen = choose(user, int(raw_id))
        db.session.commit()
        if chosen is None:
            call_telegram(bot.answer_callback_query, query.id, t("unavailable_choice", lang))
            return
        toast_key = "mode_set" if f"{kind}:" == MODE_PREFIX else "model_set"
        call_telegram(bot.answer_callback_query, query.id, t(toast_key, lang, name=chosen.name))
        if query.message is not None:
            text, keyboard = _render(user, lang)
            call_telegram(
                bot.edit_message_text,
                text,
                query.message.chat.id,
                query.message.message_id,
                reply_markup=keyboard,
            )
