"""The shape of the updates the bot serves, checked once at the door (webhook and listener).

Telegram sends well-formed updates; a forged one that parses as JSON with an integer
``update_id`` (anyone who learns the webhook secret, or a buggy proxy) must not reach a task
that would fail on it and be retried. :func:`problem` checks what the handlers rely on for the
kinds they serve (``message`` — with ``successful_payment`` —, ``callback_query``,
``pre_checkout_query``): the ids are integers a database column can
hold, the sender and chat carry the fields the Bot API always sends, text, captions and button
data are strings (button data at most 64 bytes, Telegram's own limit), and a photo, voice
message, audio or document has a file id and integer sizes. Kinds the bot does not serve
pass unchecked; their task ignores them.

Pure and cheap: a few dictionary lookups per update, no objects built.
"""

from __future__ import annotations

from typing import Any

#: Ids are stored in 64-bit signed columns.
MAX_ID = 2**63 - 1
#: Telegram's limit on ``callback_data``.
MAX_CALLBACK_DATA_BYTES = 64


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -MAX_ID <= value <= MAX_ID


def _user_problem(user: Any) -> str | None:
    if not isinstance(user, dict):
        return "no sender"
    if not _is_id(user.get("id")) or user["id"] <= 0:
        return "sender id"
    if not isinstance(user.get("first_name"), str) or not isinstance(user.get("is_bot"), bool):
        return "sender fields"
    return None


def _chat_problem(chat: Any) -> str | None:
    if not isinstance(chat, dict) or not _is_id(chat.get("id")):
        return "chat id"
    if not isinstance(chat.get("type"), str):
        return "chat type"
    return None


def _message_problem(message: Any, *, sender_required: bool) -> str | None:
    if not isinstance(message, dict):
        return "not an object"
    if not _is_id(message.get("message_id")) or not _is_id(message.get("date")):
        return "message id or date"
    problem = _chat_problem(message.get("chat"))
    if problem:
        return problem
    if "from" in message or sender_required:
        problem = _user_problem(message.get("from"))
        if problem:
            return problem
    if "text" in message and not isinstance(message["text"], str):
        return "text"
    if "caption" in message and not isinstance(message["caption"], str):
        return "caption"
    if "message_thread_id" in message and not _is_id(message["message_thread_id"]):
        return "message_thread_id"
    problem = _attachment_problem(message) or _addressing_problem(message)
    if problem:
        return problem
    if "successful_payment" in message:
        payment = message["successful_payment"]
        if not isinstance(payment, dict) or "from" not in message:
            return "successful_payment"
        if not isinstance(payment.get("telegram_payment_charge_id"), str) or not _is_id(
            payment.get("total_amount")
        ):
            return "successful_payment fields"
    return None


def _file_problem(file: Any) -> bool:
    """Whether a file object lacks what the pipeline reads (an id; sizes that are integers)."""
    if not isinstance(file, dict) or not isinstance(file.get("file_id"), str):
        return True
    return any(
        key in file and not _is_id(file[key])
        for key in ("file_size", "width", "height", "duration")
    )


def _attachment_problem(message: dict[str, Any]) -> str | None:
    """A photo, voice message, audio or document the pipeline could not read."""
    if "photo" in message:
        photo = message["photo"]
        if not isinstance(photo, list) or not photo or any(_file_problem(p) for p in photo):
            return "photo"
    for kind in ("voice", "audio", "document"):
        if kind not in message:
            continue
        file = message[kind]
        if _file_problem(file) or any(
            key in file and not isinstance(file[key], str) for key in ("file_name", "mime_type")
        ):
            return kind
    return None


def _entities_problem(entities: Any) -> bool:
    """Whether message entities are not a list of objects whose ``user`` is an object."""
    if not isinstance(entities, list):
        return True
    return any(
        not isinstance(entity, dict) or ("user" in entity and not isinstance(entity["user"], dict))
        for entity in entities
    )


def _addressing_problem(message: dict[str, Any]) -> str | None:
    """What a group's addressing rules read: entities, and the message replied to."""
    for key in ("entities", "caption_entities"):
        if key in message and _entities_problem(message[key]):
            return key
    if "reply_to_message" in message:
        reply = message["reply_to_message"]
        if not isinstance(reply, dict) or ("from" in reply and not isinstance(reply["from"], dict)):
            return "reply_to_message"
    return None


def _pre_checkout_problem(query: Any) -> str | None:
    if not isinstance(query, dict) or not isinstance(query.get("id"), str):
        return "query id"
    problem = _user_problem(query.get("from"))
    if problem:
        return problem
    if not isinstance(query.get("currency"), str) or not _is_id(query.get("total_amount")):
        return "amount"
    if not isinstance(query.get("invoice_payload"), str):
        return "payload"
    return None


def _callback_problem(query: Any) -> str | None:
    if not isinstance(query, dict):
        return "not an object"
    if not isinstance(query.get("id"), str) or not isinstance(query.get("chat_instance"), str):
        return "query id"
    problem = _user_problem(query.get("from"))
    if problem:
        return problem
    data = query.get("data")
    if data is not None and (
        not isinstance(data, str) or len(data.encode()) > MAX_CALLBACK_DATA_BYTES
    ):
        return "data"
    if "message" in query:
        return _message_problem(query["message"], sender_required=False)
    return None


def problem(update: dict[str, Any]) -> str | None:
    """What makes an update unfit for the handlers, or None when it may be queued.

    Args:
        update: A decoded update with an integer ``update_id``.

    Returns:
        A short reason (``"message: sender id"``) for a served kind that is malformed; None
        for a well-formed one and for kinds the bot does not serve.
    """
    if "message" in update:
        reason = _message_problem(update["message"], sender_required=True)
        return f"message: {reason}" if reason else None
    if "callback_query" in update:
        reason = _callback_problem(update["callback_query"])
        return f"callback_query: {reason}" if reason else None
    if "pre_checkout_query" in update:
        reason = _pre_checkout_problem(update["pre_checkout_query"])
        return f"pre_checkout_query: {reason}" if reason else None
    return None
