"""Inline keyboards of the bot and the callback data they carry.

Callback data: ``new`` (start a new dialog), ``mode:<id>``, ``model:<id>``.
"""

from __future__ import annotations

from telebot.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.texts import t
from shared.models import LLMModel, Mode

NEW_DIALOG = "new"
MODE_PREFIX = "mode:"
MODEL_PREFIX = "model:"


def new_dialog_keyboard(lang: str) -> InlineKeyboardMarkup:
    """The «Начать новый диалог» button shown under every answer."""
    markup = InlineKeyboardMarkup()
    markup.add(InlineKeyboardButton(t("new_dialog_button", lang), callback_data=NEW_DIALOG))
    return markup


def settings_keyboard(
    lang: str,
    modes: list[Mode],
    models: list[LLMModel],
    current_mode_id: int | None,
    current_model_id: int | None,
) -> InlineKeyboardMarkup:
    """Buttons to switch mode and model; the current choices are ticked.

    Args:
        lang: Text language.
        modes: Modes to offer.
        models: Models the user may use (enabled ones); a single model gets no buttons.
        current_mode_id: The mode in effect.
        current_model_id: The model in effect.

    Returns:
        The keyboard.
    """
    markup = InlineKeyboardMarkup(row_width=1)
    for mode in modes:
        tick = "✅ " if mode.id == current_mode_id else ""
        markup.add(
            InlineKeyboardButton(f"{tick}{mode.name}", callback_data=f"{MODE_PREFIX}{mode.id}")
        )
    if len(models) > 1:
        for model in models:
            tick = "✅ " if model.id == current_model_id else ""
            markup.add(
                InlineKeyboardButton(
                    f"{tick}🤖 {model.name}", callback_data=f"{MODEL_PREFIX}{model.id}"
                )
            )
    markup.add(InlineKeyboardButton(t("new_dialog_button", lang), callback_data=NEW_DIALOG))
    return markup
