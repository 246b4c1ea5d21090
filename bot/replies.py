"""Answering a logged request: LLM call, log the answer, deliver it — in dialog order, once.

Run by ``tasks.replies.generate_reply``. Safe to run twice for the same message: a row that is
no longer ``pending`` is only delivered if it was not delivered yet, and a per-dialog Redis lock
makes a dialog's requests go one at a time, oldest first, each seeing the previous answers.
"""

from __future__ import annotations

import logging

from flask import current_app
from telebot import TeleBot

from bot.dispatcher import get_bot
from bot.keyboards import new_dialog_keyboard
from bot.texts import lang_of, t
from shared.config import Config
from shared.db import db
from shared.models import Message, MessageStatus
from shared.redis import KEY_PREFIX, current_redis
from shared.services.dialogs import (
    complete_error,
    complete_ok,
    history,
    mark_delivered,
    pending_before,
)
from shared.services.llm import LLMClients, LLMError, ModelSpec, build_messages, chat
from shared.services.telegram import call_telegram, send_answer
from shared.services.users import effective_mode, effective_model

logger = logging.getLogger(__name__)

#: Seconds a dialog lock lives if its holder dies (longer than one reply can take).
DIALOG_LOCK_TIMEOUT = 360
#: Seconds a reply waits for the dialog's previous reply to finish.
DIALOG_LOCK_WAIT = 300


def _clients() -> LLMClients:
    """The process's LLM client cache, kept in the app's extensions."""
    app = current_app._get_current_object()
    clients = app.extensions.get("llm_clients")
    if clients is None:
        clients = app.extensions["llm_clients"] = LLMClients(app.config["AI_ROUTER"].llm_timeout)
    return clients


def generate_reply(message_id: int) -> None:
    """Answer a request and every earlier pending request of its dialog, in order.

    Args:
        message_id: The log row to answer.
    """
    message = db.session.get(Message, message_id)
    if message is None:
        logger.warning("reply for a missing message message_id=%s", message_id)
        return
    lock = current_redis().lock(
        f"{KEY_PREFIX}lock:dialog:{message.dialog_id}",
        timeout=DIALOG_LOCK_TIMEOUT,
        blocking_timeout=DIALOG_LOCK_WAIT,
        thread_local=False,
    )
    with lock:
        db.session.expire_all()
        ids = pending_before(message) or [message_id]
        for pending_id in ids:
            _answer(pending_id)


def _answer(message_id: int) -> None:
    """Answer one request (or only deliver an answer that was produced but not sent)."""
    message = db.session.get(Message, message_id)
    if message is None or message.chat_id is None:
        return
    bot = get_bot()
    lang = lang_of(message.user.language_code)
    if message.status == MessageStatus.PENDING:
        _produce(message, bot, lang)
        message = db.session.get(Message, message_id)
    if message.delivered_at is None and message.status in (MessageStatus.OK, MessageStatus.ERROR):
        _deliver(message, bot, lang)


def _produce(message: Message, bot: TeleBot, lang: str) -> None:
    """Ask the LLM and record the answer or the error; no DB session is held during the call."""
    config: Config = current_app.config["AI_ROUTER"]
    user = message.user
    mode, model = effective_mode(user), effective_model(user)
    if model is None:
        complete_error(message, "no enabled model is configured")
        db.session.commit()
        return
    spec = ModelSpec.from_model(model)
    messages = build_messages(
        mode.system_prompt if mode else None, history(message), message.request_text, spec
    )
    message_id, chat_id, dialog_id = message.id, message.chat_id, message.dialog_id
    db.session.commit()
    db.session.close()  # release the connection for the length of the LLM call
    try:
        call_telegram(bot.send_chat_action, chat_id, "typing")
    except Exception:  # a typing indicator is cosmetic; never fail the reply for it
        logger.warning("sendChatAction failed chat_id=%s", chat_id, exc_info=True)
    try:
        result = chat(config, _clients(), spec, messages)
    except LLMError as exc:
        logger.error("LLM gave up dialog_id=%s message_id=%s: %s", dialog_id, message_id, exc)
        complete_error(db.session.get(Message, message_id), str(exc))
        db.session.commit()
        return
    message = db.session.get(Message, message_id)
    model = db.session.get(type(model), result.model.id) or model
    complete_ok(
        message,
        result.text,
        model=model,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        latency_ms=result.latency_ms,
    )
    db.session.commit()
    logger.info(
        "answered dialog_id=%s number=%s model=%s tokens=%s/%s",
        dialog_id,
        message.number,
        result.model.name,
        result.prompt_tokens,
        result.completion_tokens,
    )


def _deliver(message: Message, bot: TeleBot, lang: str) -> None:
    """Send the answer (or the apology) and record the delivery."""
    keyboard = new_dialog_keyboard(lang)
    if message.status == MessageStatus.OK:
        send_answer(
            bot,
            message.chat_id,
            message.response_text or "",
            reply_markup=keyboard,
            reply_to_message_id=message.telegram_message_id,
        )
    else:
        key = "no_model" if message.error == "no enabled model is configured" else "llm_error"
        call_telegram(bot.send_message, message.chat_id, t(key, lang), reply_markup=keyboard)
    mark_delivered(message)
    db.session.commit()
