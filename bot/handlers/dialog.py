"""``/new`` and «Начать новый диалог», ``/stop``, text that reached the fast queue, non-text."""

from __future__ import annotations

import logging

from flask import current_app
from telebot.types import CallbackQuery, Message

from bot.middleware import Outbox
from shared.celery_setup import TEXT_TASK, enqueue
from shared.models import User
from shared.services.conversation import stop_chat
from shared.services.dialogs import end_dialog
from shared.telegram.texts import t

logger = logging.getLogger(__name__)

#: Message kinds answered with "text only for now".
NON_TEXT = [
    "audio", "document", "animation", "photo", "sticker", "video", "video_note", "voice",
    "location", "contact", "venue", "poll", "dice",
]  # fmt: skip


def new_command(message: Message, user: User, lang: str, out: Outbox) -> None:
    """End the current dialog; the next message opens a new one."""
    end_dialog(user)
    out.send(message.chat.id, t("new_dialog", lang))


def new_button(query: CallbackQuery, user: User, lang: str, out: Outbox) -> None:
    """The «Начать новый диалог» button: same as ``/new``, plus the toast."""
    end_dialog(user)
    out.toast(query.id, t("new_dialog_toast", lang))
    if query.message is not None:
        out.send(query.message.chat.id, t("new_dialog", lang))


def stop_command(message: Message, lang: str, out: Outbox) -> None:
    """End the answer being written; what was written arrives as the answer (``stopped``).

    Args:
        message: The ``/stop`` message.
        lang: The user's text language.
        out: Where replies are queued.
    """
    if not stop_chat(message.chat.id):
        out.send(message.chat.id, t("nothing_to_stop", lang))


def text(message: Message) -> None:
    """A question that came through the fast queue (e.g. queued by an older version).

    Questions belong on the LLM queue, one task per message: hand it over unchanged.
    """
    update = {"update_id": getattr(message, "update_id", None), "message": message.json}
    enqueue(current_app._get_current_object(), TEXT_TASK, update)


def non_text(message: Message, lang: str, out: Outbox) -> None:
    """Politely say that only text is understood for now."""
    out.send(message.chat.id, t("text_only", lang), reply_to_message_id=message.message_id)
