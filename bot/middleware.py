"""The one middleware of the dispatcher: who is talking, in which language, one commit, then send.

For every message, button press and pre-checkout query it registers or refreshes the sender
(``shared.services.users.touch_user``) and picks the text language, and hands both to the
handler with an :class:`Outbox`. Handlers change the database and *queue* their replies; after
the handler returns, the middleware commits once and only then sends the queued replies, so no
transaction is open while Telegram is called. A handler's exception rolls back and propagates to
the task, which retries the update.

Replies go through the paced Telegram client like every send. Each reply Telegram accepts is
counted under the update's id (``shared.services.updates``): a retried update sends only what is
missing. A 403 marks the user unreachable and drops the rest; any other refusal (4xx but 429)
is logged with Telegram's description and not repeated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from telebot.handler_backends import BaseMiddleware
from telebot.types import CallbackQuery, InlineKeyboardMarkup, Message, PreCheckoutQuery

from shared.db import db
from shared.extensions import telegram
from shared.services import groups
from shared.services.updates import count_reply, replies_sent
from shared.services.users import close_unreachable, mark_unreachable, touch_user
from shared.telegram.client import ChatUnreachable
from shared.telegram.errors import TelegramApiError
from shared.telegram.texts import lang_of

logger = logging.getLogger(__name__)


@dataclass
class Outbox:
    """Replies a handler queued, sent by the middleware after the commit, in order.

    Attributes:
        update_id: The update being answered (None: replies are not counted).
        actions: The queued calls of the Telegram client.
        chat_id: The chat the update came from.
        thread_id: Its forum topic (replies into that chat go there), or None.
    """

    update_id: int | None = None
    actions: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    chat_id: int | None = None
    thread_id: int | None = None

    def send(self, chat_id: int, text: str, **options: Any) -> None:
        """Queue a message (options of ``TelegramClient.send_message``, e.g. ``reply_markup``).

        A message into the chat the update came from goes to its forum topic, if any.
        """
        if self.thread_id is not None and chat_id == self.chat_id:
            options.setdefault("message_thread_id", self.thread_id)
        self.actions.append(("send_message", (chat_id, text), options))

    def toast(self, query_id: str, text: str) -> None:
        """Queue the answer to a button press (the small notice at the top of the chat)."""
        self.actions.append(("answer_callback_query", (query_id, text), {}))

    def call(self, method: str, params: dict[str, Any]) -> None:
        """Queue any Bot API call (``sendInvoice``, ``answerPreCheckoutQuery`` …)."""
        self.actions.append(("call", (method, params), {}))

    def edit(
        self, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None
    ) -> None:
        """Queue a new text and keyboard for a message the bot sent."""
        self.actions.append(("edit_message_text", (text, chat_id, message_id, markup), {}))

    def flush(self, chat_id: int | None = None) -> None:
        """Send the queued replies not sent by an earlier attempt, counting each one.

        Args:
            chat_id: The chat the update came from (marked unreachable on a 403).

        Raises:
            TelegramApiError: On 429 beyond the pacer's patience, or 5xx (the task retries
                and this method skips what was accepted).
            SendDeferred: When the flood limits put a reply far away (the task retries later).
        """
        actions, self.actions = self.actions, []
        done = replies_sent(self.update_id) if self.update_id is not None else 0
        for index, (method, args, options) in enumerate(actions):
            if index < done:
                continue
            try:
                getattr(telegram, method)(*args, **options)
            except ChatUnreachable:
                return
            except TelegramApiError as exc:
                if exc.error_code == 429 or exc.error_code >= 500:
                    raise
                if exc.error_code == 403 and chat_id is not None:
                    mark_unreachable(chat_id, exc.description or "")
                    db.session.commit()
                    close_unreachable(chat_id)
                    return
                logger.warning(
                    "telegram refused a reply method=%s: %s %s",
                    method, exc.error_code, exc.description,
                )  # fmt: skip
            if self.update_id is not None:
                count_reply(self.update_id)


class UserMiddleware(BaseMiddleware):
    """Registers the sender, sets ``data["user"]``, ``data["lang"]``, ``data["out"]``."""

    def __init__(self) -> None:
        super().__init__()
        self.update_types = ["message", "callback_query", "pre_checkout_query"]

    def pre_process(
        self, message: Message | CallbackQuery | PreCheckoutQuery, data: dict[str, Any]
    ) -> None:
        """Register or refresh the sender and prepare the outbox.

        Args:
            message: The message, button press or pre-checkout query.
            data: Handed to the handler (``user``, ``lang``, ``out``).
        """
        origin = message if isinstance(message, Message) else getattr(message, "message", None)
        private = origin is None or origin.chat is None or origin.chat.type == "private"
        data["user"] = touch_user(message.from_user.to_dict(), private=private)
        data["lang"] = lang_of(message.from_user.language_code)
        data["out"] = Outbox(
            update_id=getattr(message, "update_id", None),
            chat_id=origin.chat.id if origin is not None and origin.chat is not None else None,
            thread_id=groups.topic_of(getattr(origin, "json", None) or {}),
        )

    def post_process(
        self,
        message: Message | CallbackQuery | PreCheckoutQuery,
        data: dict[str, Any],
        exception: BaseException,
    ) -> None:
        """Commit once and send the replies; on a handler error roll back and re-raise it.

        Args:
            message: The message or button press.
            data: What the handler got.
            exception: The handler's exception, or None.

        Raises:
            BaseException: The handler's exception (the task retries the update).
        """
        if exception is not None:
            db.session.rollback()
            db.session.close()
            raise exception
        db.session.commit()
        db.session.close()
        outbox: Outbox | None = data.get("out")
        if outbox is not None:
            chat = (
                message.chat
                if isinstance(message, Message)
                else getattr(getattr(message, "message", None), "chat", None)
            )
            outbox.flush(chat.id if chat is not None else None)
