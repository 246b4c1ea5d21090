"""``/new`` and «Начать новый диалог», ``/stop``, questions from the fast queue, the rest."""

from __future__ import annotations

import logging

from flask import current_app
from telebot.types import CallbackQuery, Message

from bot.middleware import Outbox
from shared.celery_setup import QUESTION_CONTENT, TEXT_TASK, enqueue
from shared.models import User
from shared.services import groups
from shared.services.conversation import stop_chat
from shared.services.dialogs import end_dialog
from shared.telegram.texts import t

logger = logging.getLogger(__name__)

#: Message kinds answered with "I cannot read this kind of message yet".
NON_TEXT = [
    "animation", "sticker", "video", "video_note", "location", "contact", "venue", "poll", "dice",
]  # fmt: skip
#: Message kinds that are questions (they belong on the LLM queue, like text).
QUESTION_KINDS = list(QUESTION_CONTENT)


def new_command(message: Message, user: User, lang: str, out: Outbox) -> None:
    """End the current dialog (a group's, for its topic); the next message opens a new one."""
    end_dialog(user, *groups.dialog_place(message.json))
    out.send(message.chat.id, t("new_dialog", lang))


def new_button(query: CallbackQuery, user: User, lang: str, out: Outbox) -> None:
    """The «Начать новый диалог» button: same as ``/new``, plus the toast."""
    place = groups.dialog_place(getattr(query.message, "json", None) or {})
    end_dialog(user, *place)
    out.toast(query.id, t("new_dialog_toast", lang))
    if query.message is not None:
        out.send(query.message.chat.id, t("new_dialog", lang))


def stop_command(message: Message, user: User, lang: str, out: Outbox) -> None:
    """End the answer being written; what was written arrives as the answer (``stopped``).

    In a group only the sender's own answer is stopped.

    Args:
        message: The ``/stop`` message.
        user: The sender.
        lang: The user's text language.
        out: Where replies are queued.
    """
    in_group = message.chat.type in groups.GROUP_TYPES
    if not stop_chat(message.chat.id, user.id if in_group else None):
        out.send(message.chat.id, t("nothing_to_stop", lang))


def text(message: Message) -> None:
    """A question that came through the fast queue (e.g. queued by an older version).

    Text, photos, voice, audio and documents alike.

    Questions belong on the LLM queue, one task per message: hand it over unchanged.
    """
    update = {"update_id": getattr(message, "update_id", None), "message": message.json}
    enqueue(current_app._get_current_object(), TEXT_TASK, update)


def non_text(message: Message, lang: str, out: Outbox) -> None:
    """Politely say which kinds of message are understood."""
    out.send(message.chat.id, t("text_only", lang), reply_to_message_id=message.message_id)
