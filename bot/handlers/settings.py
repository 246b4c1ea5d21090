"""``/settings``: show the mode and model in effect, switch them with inline buttons."""

from __future__ import annotations

from telebot.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.middleware import Outbox
from shared.extensions import runtime
from shared.models import User
from shared.models.types import row_id
from shared.services.users import choose_mode, choose_model, model_of, models_for
from shared.telegram.keyboards import MODE, MODEL, settings_keyboard
from shared.telegram.texts import t


def render(user: User, lang: str) -> tuple[str, InlineKeyboardMarkup]:
    """The settings message of a user: mode and model in effect, and the switch buttons.

    Args:
        user: The user.
        lang: Text language.

    Returns:
        The text and the keyboard.
    """
    snapshot = runtime.get()
    mode, model = snapshot.mode(user.mode_id), model_of(user, snapshot)
    text = t(
        "settings",
        lang,
        mode=mode.name if mode else t("not_set", lang),
        model=model.name if model else t("not_set", lang),
    )
    keyboard = settings_keyboard(
        lang,
        snapshot.modes.values(),
        models_for(user, snapshot),
        mode.id if mode else None,
        model.id if model else None,
    )
    return text, keyboard


def show(message: Message, user: User, lang: str, out: Outbox) -> None:
    """Show the current mode and model with buttons to switch."""
    text, keyboard = render(user, lang)
    out.send(message.chat.id, text, reply_markup=keyboard)


def switch_mode(query: CallbackQuery, user: User, lang: str, out: Outbox) -> None:
    """Apply a mode button (a forged or stale id is refused like a deleted mode)."""
    mode_id = row_id(MODE.parse(query.data)["id"])
    chosen = choose_mode(user, mode_id) if mode_id is not None else None
    _switch(query, user, lang, out, chosen, "mode_set")


def switch_model(query: CallbackQuery, user: User, lang: str, out: Outbox) -> None:
    """Apply a model button (only enabled models of the user's plan; a forged id is refused)."""
    model_id = row_id(MODEL.parse(query.data)["id"])
    chosen = choose_model(user, model_id) if model_id is not None else None
    _switch(query, user, lang, out, chosen, "model_set")


def _switch(
    query: CallbackQuery, user: User, lang: str, out: Outbox, chosen: object, toast: str
) -> None:
    """Confirm a switch with a toast and refresh the settings message (unless nothing changed).

    A press on the option already in effect changes nothing: no edit is sent (Telegram counts
    edits like messages, and refuses a no-op one with "message is not modified").
    """
    if chosen is None:
        out.toast(query.id, t("unavailable_choice", lang))
        return
    out.toast(query.id, t(toast, lang, name=chosen.name))
    message = query.message
    if message is None:
        return
    text, keyboard = render(user, lang)
    shown = (getattr(message, "json", None) or {}).get("reply_markup")  # as Telegram sent it
    if getattr(message, "text", None) == text and shown == keyboard.to_dict():
        return
    out.edit(message.chat.id, message.message_id, text, keyboard)
