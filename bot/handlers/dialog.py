"""The conversation: text requests, ``/new`` and the «Начать новый диалог» button, non-text."""

from __future__ import annotations

import logging

from flask import current_app
from telebot import TeleBot
from telebot.types import CallbackQuery, Message

from bot.handlers.common import user_of
from bot.keyboards import NEW_DIALOG
from bot.texts import lang_of, t
from shared.celery_setup import REPLY_TASK, enqueue
from shared.db import db
from shared.models import Request as LogRow
from shared.models import RequestStatus
from shared.services.conversation import receive_text
from shared.services.dialogs import end_dialog, mark_delivered
from shared.services.telegram import call_telegram

logger = logging.getLogger(__name__)

#: Message kinds answered with "text only for now".
NON_TEXT = [
    "audio", "document", "animation", "photo", "sticker", "video", "video_note", "voice",
    "location", "contact", "venue", "poll", "dice",
]  # fmt: skip


def received_id(message: Message) -> int | None:
    """The update id ``bot.dispatcher.dispatch`` attached to the message."""
    return getattr(message, "update_id", None)


def register(bot: TeleBot) -> None:
    """Attach the dialog handlers to a bot (after commands, so commands win)."""

    @bot.message_handler(commands=["new"])
    def new_command(message: Message) -> None:
        """End the current dialog; the next message opens a new one."""
        user, lang = user_of(message)
        end_dialog(user)
        db.session.commit()
        call_telegram(bot.send_message, message.chat.id, t("new_dialog", lang))

    @bot.callback_query_handler(func=lambda q: q.data == NEW_DIALOG)
    def new_button(query: CallbackQuery) -> None:
        """The «Начать новый диалог» button: same as ``/new``, plus the callback answer."""
        user, lang = user_of(query)
        end_dialog(user)
        db.session.commit()
        call_telegram(bot.answer_callback_query, query.id, t("new_dialog_toast", lang))
        if query.message is not None:
            call_telegram(bot.send_message, query.message.chat.id, t("new_dialog", lang))

    @bot.message_handler(content_types=["text"])
    def text(message: Message) -> None:
        """Log the request and queue the LLM reply, or refuse a user without access."""
        received = receive_text(
            message.from_user.to_dict(),
            message.text or "",
            update_id=received_id(message),
            chat_id=message.chat.id,
            telegram_message_id=message.message_id,
        )
        row = received.message
        row_id, status = (row.id, row.status) if row is not None else (None, None)
        db.session.commit()  # nothing stays open while Telegram is called below
        if row_id is None or (received.duplicate and status != RequestStatus.PENDING):
            logger.info("duplicate update ignored update_id=%s", received_id(message))
            return
        if status == RequestStatus.PENDING:
            enqueue(current_app._get_current_object(), REPLY_TASK, row_id)
            return
        lang = lang_of(message.from_user.language_code)
        call_telegram(bot.send_message, message.chat.id, t(f"denied_{received.reason}", lang))
        mark_delivered(db.session.get(LogRow, row_id))
        db.session.commit()

    @bot.message_handler(content_types=NON_TEXT)
    def non_text(message: Message) -> None:
        """Politely say that only text is understood for now."""
        _, lang = user_of(message)
        call_telegram(
            bot.send_message,
            message.chat.id,
            t("text_only", lang),
            reply_to_message_id=message.message_id,
        )
