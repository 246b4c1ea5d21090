"""Inline keyboards of the bot and the typed callback data their buttons carry.

Callback data (pyTelegramBotAPI's ``CallbackData``): ``new`` (start a new dialog),
``mode:<id>``, ``model:<id>`` — the same strings as before, so buttons under old messages keep
working — ``buy`` (list the plans on sale, as ``/buy``) and ``plan:<id>`` (buy that plan).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from telebot.callback_data import CallbackData
from telebot.types import InlineKeyboardButton, InlineKeyboardMarkup

from shared.telegram.texts import t

#: The «Начать новый диалог» button (no parameters).
NEW_DIALOG = "new"
#: ``mode:<id>`` — switch the answer mode.
MODE = CallbackData("id", prefix="mode")
#: ``model:<id>`` — switch the model.
MODEL = CallbackData("id", prefix="model")
#: The «Купить тариф» button: what ``/buy`` shows.
BUY = "buy"
#: ``plan:<id>`` — send the invoice of a plan on sale.
PLAN = CallbackData("id", prefix="plan")


class Choice(Protocol):
    """Anything with an id and a name (a mode or a model, row or snapshot)."""

    id: int
    name: str


def new_dialog_keyboard(lang: str) -> InlineKeyboardMarkup:
    """The «Начать новый диалог» button shown under every answer."""
    markup = InlineKeyboardMarkup()
    markup.add(InlineKeyboardButton(t("new_dialog_button", lang), callback_data=NEW_DIALOG))
    return markup


def settings_keyboard(
    lang: str,
    modes: Iterable[Choice],
    models: Iterable[Choice],
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
        markup.add(InlineKeyboardButton(f"{tick}{mode.name}", callback_data=MODE.new(id=mode.id)))
    models = list(models)
    if len(models) > 1:
        for model in models:
            tick = "✅ " if model.id == current_model_id else ""
            markup.add(
                InlineKeyboardButton(f"{tick}🤖 {model.name}", callback_data=MODEL.new(id=model.id))
            )
    markup.add(InlineKeyboardButton(t("new_dialog_button", lang), callback_data=NEW_DIALOG))
    return markup


class Offer(Protocol):
    """A plan on sale (row or snapshot)."""

    id: int
    name: str
    price_stars: int | None
    period_days: int


def buy_keyboard(lang: str) -> InlineKeyboardMarkup:
    """The «Купить тариф» button (under a limit refusal and an expiry reminder)."""
    markup = InlineKeyboardMarkup()
    markup.add(InlineKeyboardButton(t("buy_button", lang), callback_data=BUY))
    return markup


def plans_keyboard(lang: str, offers: Iterable[Offer]) -> InlineKeyboardMarkup:
    """One button per plan on sale: its name, price in Stars and period.

    Args:
        lang: Text language.
        offers: The plans on sale.

    Returns:
        The keyboard.
    """
    markup = InlineKeyboardMarkup(row_width=1)
    for offer in offers:
        label = t(
            "plan_button", lang, name=offer.name, stars=offer.price_stars, days=offer.period_days
        )
        markup.add(InlineKeyboardButton(label, callback_data=PLAN.new(id=offer.id)))
    return markup
