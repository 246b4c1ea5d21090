"""Answering a logged request: LLM call, log the answer, deliver it — in dialog order, once.

Run by ``tasks.replies.generate_reply``. Safe to run twice for the same message: a row that is
no longer ``pending`` is only delivered if it was not delivered yet, and parts of a long answer
already sent are not sent again. One worker at a time answers a dialog (a Redis lock taken
without waiting): it answers every pending request of the dialog, oldest first, each seeing the
previous answers; a task that finds the dialog busy raises :class:`DialogBusy` and is retried
shortly, so no worker thread sits waiting for another user's dialog.
"""

from __future__ import annotations

import logging

from flask import current_app
from redis.exceptions import LockNotOwnedError
from redis.lock import Lock

from bot.dispatcher import get_bot
from bot.keyboards import new_dialog_keyboard
from bot.texts import lang_of, t
from shared.config import Config
from shared.db import db
from shared.logging import redact
from shared.models import LLMModel, Request, RequestStatus
from shared.redis import KEY_PREFIX, current_redis
from shared.services.crypto import SecretUnreadable
from shared.services.dialogs import (
    complete_error,
    complete_ok,
    history,
    mark_delivered,
    pending_in_dialog,
)
from shared.services.llm import LLMClients, LLMError, ModelSpec, build_messages, chat
from shared.services.telegram import call_telegram, send_answer
from shared.services.users import effective_mode, effective_model

logger = logging.getLogger(__name__)

#: Seconds a dialog lock lives without renewal (renewed after every answered request).
DIALOG_LOCK_TIMEOUT = 360
#: Seconds the record of already-sent parts of an answer is kept.
SENT_PARTS_TTL = 24 * 3600
NO_MODEL = "no enabled model is configured"


class DialogBusy(RuntimeError):
    """Another worker is answering this dialog right now; retry the task a little later."""


def _clients() -> LLMClients:
    """The process's LLM client cache, kept in the app's extensions."""
    app = current_app._get_current_object()
    clients = app.extensions.get("llm_clients")
    if clients is None:
        clients = app.extensions["llm_clients"] = LLMClients(app.config["AI_ROUTER"].llm_timeout)
    return clients


def generate_reply(message_id: int) -> None:
    """Answer a request, and every other pending request of its dialog, in order.

    Args:
        message_id: The log row to answer.

    Raises:
        DialogBusy: When another worker holds the dialog (the caller retries).
    """
    message = db.session.get(Request, message_id)
    if message is None:
        logger.warning("reply for a missing message message_id=%s", message_id)
        return
    dialog_id = message.dialog_id
    db.session.commit()  # no transaction open while talking to Redis
    lock: Lock = current_redis().lock(
        f"{KEY_PREFIX}lock:dialog:{dialog_id}", timeout=DIALOG_LOCK_TIMEOUT, thread_local=False
    )
    if not lock.acquire(blocking=False):
        raise DialogBusy(f"dialog {dialog_id} is being answered")
    try:
        while ids := pending_in_dialog(dialog_id):
            for pending_id in ids:
                _answer(pending_id)
                lock.reacquire()
        _answer(message_id)  # delivers an answer whose delivery failed before
    finally:
        try:
            lock.release()
        except LockNotOwnedError:
            logger.warning("dialog lock expired before release dialog_id=%s", dialog_id)


def _answer(message_id: int) -> None:
    """Answer one request (or only deliver an answer that was produced but not sent)."""
    db.session.expire_all()
    message = db.session.get(Request, message_id)
    if message is None or message.chat_id is None:
        return
    if message.status == RequestStatus.PENDING:
        _produce(message)
        message = db.session.get(Request, message_id)
    if message.delivered_at is None and message.status in (RequestStatus.OK, RequestStatus.ERROR):
        _deliver(message_id)


def _produce(message: Request) -> None:
    """Ask the LLM and record the answer or the error; no DB session is held during the call."""
    config: Config = current_app.config["AI_ROUTER"]
    user = message.user
    mode, model = effective_mode(user), effective_model(user)
    if model is None:
        complete_error(message, NO_MODEL)
        db.session.commit()
        return
    try:
        spec = ModelSpec.from_model(model)
    except SecretUnreadable as exc:
        complete_error(message, f"{model.name}: {exc}")
        db.session.commit()
        return
    messages = build_messages(
        mode.system_prompt if mode else None, history(message), message.request_text, spec
    )
    message_id, chat_id, dialog_id = message.id, message.chat_id, message.dialog_id
    db.session.commit()
    db.session.close()  # release the connection for the length of the LLM call
    try:
        call_telegram(get_bot().send_chat_action, chat_id, "typing")
    except Exception:  # a typing indicator is cosmetic; never fail the reply for it
        logger.warning("sendChatAction failed chat_id=%s", chat_id)
    try:
        result = chat(config, _clients(), spec, messages)
    except LLMError as exc:
        logger.error("LLM gave up dialog_id=%s message_id=%s: %s", dialog_id, message_id, exc)
        complete_error(db.session.get(Request, message_id), str(exc))
        db.session.commit()
        return
    message = db.session.get(Request, message_id)
    complete_ok(
        message,
        result.text,
        model=db.session.get(LLMModel, result.model.id) or model,
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


def _deliver(message_id: int) -> None:
    """Send the answer (or the apology) and record the delivery; no session is held meanwhile.

    Parts already sent by an earlier, interrupted attempt are counted in Redis and skipped.
    """
    message = db.session.get(Request, message_id)
    lang = lang_of(message.user.language_code)
    chat_id, reply_to = message.chat_id, message.telegram_message_id
    ok, text, error = message.status == RequestStatus.OK, message.response_text, message.error
    db.session.commit()
    bot, keyboard = get_bot(), new_dialog_keyboard(lang)
    if ok:
        redis = current_redis()
        sent_key = f"{KEY_PREFIX}sent_parts:{message_id}"

        def part_sent(index: int) -> None:
            redis.set(sent_key, index + 1, ex=SENT_PARTS_TTL)

        send_answer(
            bot,
            chat_id,
            text or "",
            reply_markup=keyboard,
            reply_to_message_id=reply_to,
            skip=int(redis.get(sent_key) or 0),
            on_part_sent=part_sent,
        )
    else:
        key = "no_model" if error == NO_MODEL else "llm_error"
        call_telegram(bot.send_message, chat_id, t(key, lang), reply_markup=keyboard)
    message = db.session.get(Request, message_id)
    if message is not None:  # deleted meanwhile (e.g. the user was removed): nothing to mark
        mark_delivered(message)
        db.session.commit()


def give_up(message_id: int, error: BaseException) -> None:
    """Last resort after the task's retries: the row becomes ``error``, the user gets an apology.

    An answer that was produced but could never be delivered counts as failed too (its text
    stays in the row for the admin).

    Args:
        message_id: The log row.
        error: What kept failing (recorded, redacted, for the admin).
    """
    db.session.rollback()
    message = db.session.get(Request, message_id)
    if message is None or message.delivered_at is not None:
        return
    if message.status in (RequestStatus.PENDING, RequestStatus.OK):
        message.status = RequestStatus.ERROR
        message.error = redact(f"gave up: {type(error).__name__}: {error}")[:2000]
        db.session.commit()
    try:
        _deliver(message_id)  # the apology, since the row is now an error
    except Exception:  # Telegram itself may be what fails; the row already says error
        logger.exception("could not deliver the apology message_id=%s", message_id)
