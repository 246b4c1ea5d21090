"""The :class:`FakeTelegram` server: its lifecycle and everything a test calls on it."""

from __future__ import annotations

import copy
import itertools
import logging
import mimetypes
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.fakes.telegram.answers import _DEFAULT_DESCRIPTIONS
from tests.fakes.telegram.api import SUPPORTED_METHODS, _BotApi
from tests.fakes.telegram.files import _FileStore, _photo_sizes, _StoredFile
from tests.fakes.telegram.flood import FloodLimits, FloodState
from tests.fakes.telegram.html import utf16_length
from tests.fakes.telegram.markup import _callback_data_of
from tests.fakes.telegram.payments import (
    PRE_CHECKOUT_TIMEOUT,
    STARS_CURRENCY,
    _star_transaction,
)
from tests.fakes.telegram.records import Call, Delivery
from tests.fakes.telegram.server import _Handler, _Server
from tests.fakes.telegram.state import _commands_key, _Failure, _matches
from tests.fakes.telegram.webhook import _WebhookDelivery

logger = logging.getLogger(__name__)

_BOT_COMMAND_ENTITY_RE = re.compile(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_])")
# An @username (5-32 letters, digits, underscores) not glued to a word on either side.
_MENTION_RE = re.compile(r"(?<![\w@])@[A-Za-z0-9_]{5,32}(?![\w@])")
_GROUP_KINDS = frozenset({"group", "supergroup"})
_DEFAULT_PHOTO_SIZES = ((90, 67), (320, 240), (1280, 960))


class FakeTelegram(_BotApi, _FileStore, _WebhookDelivery):
    """A fake Telegram Bot API server on 127.0.0.1, for driving the bot through its real client.

    Use it as a context manager or with :meth:`start`/:meth:`stop`. Point pyTelegramBotAPI at it
    with ``telebot.apihelper.API_URL = fake.api_url_template``. All state is guarded by one
    condition variable, so the test thread, the HTTP handler threads and the webhook delivery
    thread can use it concurrently.

    Attributes:
        token: The only token the server accepts (others get 401 Unauthorized).
        bot_username: The bot's username (without ``@``).
        bot_user: The bot's ``User`` object as ``getMe`` returns it.
    """

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        bot_username: str = "ai_router_test_bot",
        *,
        bot_first_name: str = "AI Router Test",
        webhook_retry_delay: float = 0.2,
        webhook_timeout: float = 10.0,
        strict_html_entities: bool = True,
        first_update_id: int = 1000,
        flood_limits: FloodLimits | None = None,
        pre_checkout_timeout: float = PRE_CHECKOUT_TIMEOUT,
    ) -> None:
        """Create the fake (not yet listening; see :meth:`start`).

        Args:
            token: The bot token; its part before ``:`` is the bot's numeric id.
            bot_username: The bot's username.
            bot_first_name: The bot's display name.
            webhook_retry_delay: Seconds between a failed webhook delivery and the next attempt.
            webhook_timeout: Seconds to wait for the webhook receiver to answer.
            strict_html_entities: Reject an unescaped ``&`` in HTML text (see :func:`parse_html`).
            first_update_id: The ``update_id`` of the first injected update.
            flood_limits: Enforce Telegram's flood control (429 with ``retry_after``); None (the
                default) lets every call through. See :meth:`set_flood_limits`.
            pre_checkout_timeout: Seconds the bot has to answer a ``pre_checkout_query`` (counted
                from its injection); a later ``answerPreCheckoutQuery`` is refused, as Telegram
                does after 10 s.

        Raises:
            ValueError: If the token has no numeric bot id.
        """
        bot_id, _, _ = token.partition(":")
        if not bot_id.isdigit():
            raise ValueError(f"token {token!r} must look like '<digits>:<secret>'")
        self.token = token
        self.bot_username = bot_username
        self.bot_user: dict[str, Any] = {
            "id": int(bot_id),
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        self._webhook_retry_delay = webhook_retry_delay
        self._webhook_timeout = webhook_timeout
        self._strict_html_entities = strict_html_entities
        self._flood_limits = flood_limits
        self._pre_checkout_timeout = pre_checkout_timeout

        self._cond = threading.Condition()
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._webhook_thread: threading.Thread | None = None
        self._stopping = False

        self._next_update_id = first_update_id
        self._callback_ids = itertools.count(1)
        self._pre_checkout_ids = itertools.count(1)
        self._file_numbers = itertools.count(1)
        self._poll_generation = 0
        self._waiting_polls = 0
        self._methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            name.lower(): getattr(self, "_api_" + _snake(name)) for name in SUPPORTED_METHODS
        }
        self._canonical = {name.lower(): name for name in SUPPORTED_METHODS}
        self._clear_state()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FakeTelegram:
        """Start listening on a random free port of 127.0.0.1.

        Returns:
            The fake itself.

        Raises:
            RuntimeError: If it was already started.
        """
        with self._cond:
            if self._server is not None:
                raise RuntimeError("FakeTelegram is already started")
            self._stopping = False
            server = _Server(("127.0.0.1", 0), _Handler)
            server.fake = self
            self._server = server
        self._serve_thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-telegram-http",
            daemon=True,
        )
        self._serve_thread.start()
        self._webhook_thread = threading.Thread(
            target=self._webhook_loop, name="fake-telegram-webhook", daemon=True
        )
        self._webhook_thread.start()
        logger.info("FakeTelegram listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop the server and the webhook delivery; pending long polls answer at once."""
        with self._cond:
            server = self._server
            if server is None or self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        server.shutdown()
        server.server_close()
        for thread in (self._serve_thread, self._webhook_thread):
            if thread is not None:
                thread.join(timeout=self._webhook_timeout + 1)
        logger.info("FakeTelegram on port %s stopped", server.server_address[1])

    def __enter__(self) -> FakeTelegram:
        """Start the server."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server."""
        self.stop()

    @property
    def url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:40123``."""
        if self._server is None:
            raise RuntimeError("FakeTelegram is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url_template(self) -> str:
        """The value for ``telebot.apihelper.API_URL``: ``url + "/bot{0}/{1}"``."""
        return self.url + "/bot{0}/{1}"

    @property
    def file_url_template(self) -> str:
        """The value for ``telebot.apihelper.FILE_URL``: ``url + "/file/bot{0}/{1}"``."""
        return self.url + "/file/bot{0}/{1}"

    def reset(self) -> None:
        """Forget calls, messages, updates, failures, drafts, commands, the webhook, flood limits.

        Payments are forgotten too: invoices, pre-checkout queries and answers, payments, refunds
        and Star transactions; and the groups of :meth:`add_group`, the stored files and the
        downloads. The server keeps running and update ids (and file numbers) keep increasing (a
        bot still polling with an old offset is not confused).
        """
        with self._cond:
            self._flood_limits = None
            self._clear_state()
            self._cond.notify_all()

    # ---------------------------------------------------------------- test-side: user actions

    def inject_message(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Test",
        username: str | None = None,
        language_code: str | None = "ru",
        chat_id: int | None = None,
        thread_id: int | None = None,
        reply_to_message_id: int | None = None,
    ) -> dict[str, Any]:
        """Queue an update with a text message a user sent to the bot.

        Args:
            user_id: The sender's id (also the private chat's id unless ``chat_id`` is given).
            text: The message text; a leading ``/command`` (``/command@bot`` included) gets a
                ``bot_command`` entity and every ``@username`` a ``mention`` entity (offsets and
                lengths in UTF-16 code units, sorted by offset).
            first_name: The sender's first name.
            username: The sender's username, if any.
            language_code: The sender's client language (None to omit it).
            chat_id: The chat, when not the sender's private chat (see :meth:`add_group`).
            thread_id: The forum topic (or thread): sets ``message_thread_id`` and
                ``is_topic_message``.
            reply_to_message_id: A message of the chat (the bot's or a user's) this one replies
                to; it is embedded as ``reply_to_message``, as Telegram does.

        Returns:
            The queued update (a copy).

        Raises:
            LookupError: If ``reply_to_message_id`` is not a message of the chat.
        """
        content: dict[str, Any] = {"text": text}
        entities = _text_entities(text)
        if entities:
            content["entities"] = entities
        return self._inject_user_message(
            user_id,
            content,
            chat_id=chat_id,
            thread_id=thread_id,
            reply_to_message_id=reply_to_message_id,
            first_name=first_name,
            username=username,
            language_code=language_code,
        )

    def inject_photo(
        self,
        user_id: int,
        data: bytes,
        *,
        sizes: tuple[tuple[int, int], ...] = _DEFAULT_PHOTO_SIZES,
        caption: str | None = None,
        chat_id: int | None = None,
        thread_id: int | None = None,
        reply_to_message_id: int | None = None,
        first_name: str = "Test",
        username: str | None = None,
        language_code: str | None = "ru",
    ) -> dict[str, Any]:
        """Queue an update with a photo a user sent (``message.photo``, one PhotoSize per size).

        Each size is a file of its own in the store (downloadable through ``getFile``) whose
        ``file_size`` is in proportion to its area, the largest ``len(data)``: it holds that
        many first bytes of ``data`` (the largest holds all of it).

        Args:
            user_id: The sender's id (also the private chat's id unless ``chat_id`` is given).
            data: The photo's bytes.
            sizes: (width, height) of the sizes Telegram made; listed smallest first.
            caption: The caption, if any (``@username`` mentions get ``caption_entities``).
            chat_id: The chat, when not the sender's private chat.
            thread_id: The forum topic: sets ``message_thread_id`` and ``is_topic_message``.
            reply_to_message_id: A message of the chat this one replies to.
            first_name: The sender's first name.
            username: The sender's username, if any.
            language_code: The sender's client language (None to omit it).

        Returns:
            The queued update (a copy).

        Raises:
            LookupError: If ``reply_to_message_id`` is not a message of the chat.
            ValueError: If ``sizes`` is empty or has a non-positive side.
        """
        photo_sizes = _photo_sizes(len(data), sizes)
        with self._cond:
            photo = []
            for width, height, file_size in photo_sizes:
                stored = self._store_file(data[:file_size], "photo")
                photo.append(
                    {
                        **_file_ids(stored),
                        "width": width,
                        "height": height,
                        "file_size": stored.file_size,
                    }
                )
            return self._inject_user_message(
                user_id,
                {"photo": photo, **_caption_fields(caption)},
                chat_id=chat_id,
                thread_id=thread_id,
                reply_to_message_id=reply_to_message_id,
                first_name=first_name,
                username=username,
                language_code=language_code,
            )

    def inject_voice(
        self,
        user_id: int,
        data: bytes,
        *,
        duration: int,
        mime_type: str = "audio/ogg",
        declared_size: int | None = None,
        chat_id: int | None = None,
        thread_id: int | None = None,
        reply_to_message_id: int | None = None,
        first_name: str = "Test",
        username: str | None = None,
        language_code: str | None = "ru",
    ) -> dict[str, Any]:
        """Queue an update with a voice message a user recorded (``message.voice``).

        Args:
            user_id: The sender's id (also the private chat's id unless ``chat_id`` is given).
            data: The recording's bytes (stored; its ``file_path`` ends in ``.oga``).
            duration: Its duration in seconds.
            mime_type: Its MIME type.
            declared_size: The ``file_size`` to announce instead of ``len(data)`` (over
                :data:`MAX_DOWNLOAD_SIZE` ``getFile`` refuses it).
            chat_id: The chat, when not the sender's private chat.
            thread_id: The forum topic: sets ``message_thread_id`` and ``is_topic_message``.
            reply_to_message_id: A message of the chat this one replies to.
            first_name: The sender's first name.
            username: The sender's username, if any.
            language_code: The sender's client language (None to omit it).

        Returns:
            The queued update (a copy).

        Raises:
            LookupError: If ``reply_to_message_id`` is not a message of the chat.
        """
        with self._cond:
            stored = self._store_file(
                data, "voice", mime_type=mime_type, declared_size=declared_size
            )
            voice = {
                **_file_ids(stored),
                "duration": duration,
                "mime_type": mime_type,
                "file_size": stored.file_size,
            }
            return self._inject_user_message(
                user_id,
                {"voice": voice},
                chat_id=chat_id,
                thread_id=thread_id,
                reply_to_message_id=reply_to_message_id,
                first_name=first_name,
                username=username,
                language_code=language_code,
            )

    def inject_audio(
        self,
        user_id: int,
        data: bytes,
        *,
        duration: int,
        file_name: str = "song.mp3",
        mime_type: str = "audio/mpeg",
        caption: str | None = None,
        declared_size: int | None = None,
        chat_id: int | None = None,
        thread_id: int | None = None,
        reply_to_message_id: int | None = None,
        first_name: str = "Test",
        username: str | None = None,
        language_code: str | None = "ru",
    ) -> dict[str, Any]:
        """Queue an update with an audio file a user sent as music (``message.audio``).

        Args:
            user_id: The sender's id (also the private chat's id unless ``chat_id`` is given).
            data: The file's bytes (stored under ``music/``).
            duration: Its duration in seconds.
            file_name: Its file name.
            mime_type: Its MIME type.
            caption: The caption, if any (``@username`` mentions get ``caption_entities``).
            declared_size: The ``file_size`` to announce instead of ``len(data)`` (over
                :data:`MAX_DOWNLOAD_SIZE` ``getFile`` refuses it).
            chat_id: The chat, when not the sender's private chat.
            thread_id: The forum topic: sets ``message_thread_id`` and ``is_topic_message``.
            reply_to_message_id: A message of the chat this one replies to.
            first_name: The sender's first name.
            username: The sender's username, if any.
            language_code: The sender's client language (None to omit it).

        Returns:
            The queued update (a copy).

        Raises:
            LookupError: If ``reply_to_message_id`` is not a message of the chat.
        """
        with self._cond:
            stored = self._store_file(
                data,
                "audio",
                file_name=file_name,
                mime_type=mime_type,
                declared_size=declared_size,
            )
            audio = {
                **_file_ids(stored),
                "duration": duration,
                "file_name": file_name,
                "mime_type": mime_type,
                "file_size": stored.file_size,
            }
            return self._inject_user_message(
                user_id,
                {"audio": audio, **_caption_fields(caption)},
                chat_id=chat_id,
                thread_id=thread_id,
                reply_to_message_id=reply_to_message_id,
                first_name=first_name,
                username=username,
                language_code=language_code,
            )

    def inject_document(
        self,
        user_id: int,
        data: bytes,
        *,
        file_name: str,
        mime_type: str | None = None,
        caption: str | None = None,
        declared_size: int | None = None,
        chat_id: int | None = None,
        thread_id: int | None = None,
        reply_to_message_id: int | None = None,
        first_name: str = "Test",
        username: str | None = None,
        language_code: str | None = "ru",
    ) -> dict[str, Any]:
        """Queue an update with a file a user sent as a document (``message.document``).

        Args:
            user_id: The sender's id (also the private chat's id unless ``chat_id`` is given).
            data: The file's bytes (stored under ``documents/`` with the name's extension).
            file_name: Its file name.
            mime_type: Its MIME type; None guesses it from the name (``application/octet-stream``
                when the name tells nothing).
            caption: The caption, if any (``@username`` mentions get ``caption_entities``).
            declared_size: The ``file_size`` to announce instead of ``len(data)``, e.g. 25 MB to
                test a file ``getFile`` refuses as too big without 25 MB of bytes.
            chat_id: The chat, when not the sender's private chat.
            thread_id: The forum topic: sets ``message_thread_id`` and ``is_topic_message``.
            reply_to_message_id: A message of the chat this one replies to.
            first_name: The sender's first name.
            username: The sender's username, if any.
            language_code: The sender's client language (None to omit it).

        Returns:
            The queued update (a copy).

        Raises:
            LookupError: If ``reply_to_message_id`` is not a message of the chat.
        """
        if mime_type is None:
            mime_type = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        with self._cond:
            stored = self._store_file(
                data,
                "document",
                file_name=file_name,
                mime_type=mime_type,
                declared_size=declared_size,
            )
            document = {
                **_file_ids(stored),
                "file_name": file_name,
                "mime_type": mime_type,
                "file_size": stored.file_size,
            }
            return self._inject_user_message(
                user_id,
                {"document": document, **_caption_fields(caption)},
                chat_id=chat_id,
                thread_id=thread_id,
                reply_to_message_id=reply_to_message_id,
                first_name=first_name,
                username=username,
                language_code=language_code,
            )

    def _inject_user_message(
        self,
        user_id: int,
        content: dict[str, Any],
        *,
        chat_id: int | None,
        thread_id: int | None,
        reply_to_message_id: int | None,
        first_name: str,
        username: str | None,
        language_code: str | None,
    ) -> dict[str, Any]:
        """Store a user's message with ``content`` in its chat and queue it as an update."""
        with self._cond:
            chat_id = user_id if chat_id is None else chat_id
            reply_to = None
            if reply_to_message_id is not None:
                target = self._chats.get(chat_id, {}).get(reply_to_message_id)
                if target is None:
                    raise LookupError(
                        f"no message {reply_to_message_id} in chat {chat_id} to reply to; "
                        f"messages there: {list(self._chats.get(chat_id, {}))}"
                    )
                reply_to = copy.deepcopy(target)
                reply_to.pop("reply_to_message", None)  # Telegram does not nest replies
            user = self._remember_user(user_id, first_name, username, language_code)
            message: dict[str, Any] = {
                "message_id": self._allocate_message_id(chat_id),
                "from": user,
                "chat": self._chat_object(chat_id),
                "date": int(time.time()),
            }
            if thread_id:
                message["message_thread_id"] = thread_id
                message["is_topic_message"] = True
            if reply_to is not None:
                message["reply_to_message"] = reply_to
            message.update(copy.deepcopy(content))
            self._chats.setdefault(chat_id, {})[message["message_id"]] = copy.deepcopy(message)
            return self._enqueue({"message": message})

    def inject_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue any update (a sticker, a photo, an edited message...).

        A ``message`` without ``message_id``/``date`` gets them, and a message with a ``chat``
        is stored in that chat (so the bot can reply to it or delete it).

        Args:
            update: The update without ``update_id``.

        Returns:
            The queued update (a copy) with its ``update_id``.

        Raises:
            ValueError: If the update already has an ``update_id`` or has no content.
        """
        if "update_id" in update:
            raise ValueError("inject_update assigns update_id itself")
        if not update:
            raise ValueError("an update needs a content field such as 'message'")
        update = copy.deepcopy(update)
        with self._cond:
            message = update.get("message")
            if isinstance(message, dict) and isinstance(message.get("chat"), dict):
                chat_id = message["chat"].get("id")
                if isinstance(chat_id, int):
                    message.setdefault("message_id", self._allocate_message_id(chat_id))
                    message.setdefault("date", int(time.time()))
                    self._chats.setdefault(chat_id, {})[message["message_id"]] = copy.deepcopy(
                        message
                    )
            return self._enqueue(update)

    def press_button(
        self,
        user_id: int,
        message_id: int,
        data: str,
        *,
        chat_id: int | None = None,
        language_code: str | None = "ru",
        check_button: bool = True,
    ) -> dict[str, Any]:
        """Queue a ``callback_query`` update: the user pressed an inline button.

        Args:
            user_id: Who pressed (their name is remembered from :meth:`inject_message`).
            message_id: The bot message carrying the button.
            data: The button's ``callback_data``.
            chat_id: The chat of the message, when not the user's private chat.
            language_code: The user's client language (None to omit it).
            check_button: Require the message to have a button with this ``callback_data``.

        Returns:
            The queued update (a copy); ``update["callback_query"]["id"]`` is the query id.

        Raises:
            LookupError: If there is no such bot message.
            ValueError: If ``check_button`` and the message has no such button.
        """
        with self._cond:
            chat_id = user_id if chat_id is None else chat_id
            message = self._chats.get(chat_id, {}).get(message_id)
            if message is None or not self._is_bot_message(message):
                raise LookupError(
                    f"no bot message {message_id} in chat {chat_id}; bot messages there: "
                    f"{[m['message_id'] for m in self._bot_messages(chat_id)]}"
                )
            if check_button:
                buttons = _callback_data_of(message.get("reply_markup"))
                if data not in buttons:
                    raise ValueError(
                        f"message {message_id} has no button with callback_data {data!r}; "
                        f"its buttons: {buttons}"
                    )
            known = self._users.get(user_id, {})
            user = self._remember_user(
                user_id, known.get("first_name", "Test"), known.get("username"), language_code
            )
            query_id = str(4_000_000_000_000_000_000 + next(self._callback_ids))
            self._callback_queries[query_id] = {"user_id": user_id, "answered": False}
            return self._enqueue(
                {
                    "callback_query": {
                        "id": query_id,
                        "from": user,
                        "message": copy.deepcopy(message),
                        "chat_instance": str((chat_id * 2654435761) % 10**18),
                        "data": data,
                    }
                }
            )

    @property
    def polling(self) -> int:
        """How many ``getUpdates`` long polls are waiting for updates right now."""
        with self._cond:
            return self._waiting_polls

    def wait_for_polling(self, timeout: float = 10.0) -> None:
        """Block until a ``getUpdates`` long poll is waiting (the bot is up and listening).

        Args:
            timeout: Seconds to wait.

        Raises:
            AssertionError: On timeout, listing the calls recorded so far.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._waiting_polls == 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no getUpdates long poll within {timeout} s; webhook: {self._webhook}; "
                        f"recorded calls: {[c.method for c in self._calls][-20:]}"
                    )
                self._cond.wait(remaining)

    # ---------------------------------------------------------------- test-side: Stars payments

    def inject_pre_checkout_query(
        self,
        user_id: int,
        message_id: int | None = None,
        *,
        chat_id: int | None = None,
        total_amount: int | None = None,
        invoice_payload: str | None = None,
        language_code: str | None = "ru",
    ) -> str:
        """Queue a ``pre_checkout_query`` update: the user pressed Pay on one of the bot's invoices.

        The bot has ``pre_checkout_timeout`` seconds (from now) to answer it with
        ``answerPreCheckoutQuery``; once it answered ``ok=True``,
        :meth:`inject_successful_payment` completes the payment.

        Args:
            user_id: Who pays (their name is remembered from :meth:`inject_message`).
            message_id: The invoice message; None takes the chat's latest invoice.
            chat_id: The chat of the invoice, when not the user's private chat.
            total_amount: The amount in Stars to send instead of the invoice's (e.g. an invoice
                whose price changed since it was sent).
            invoice_payload: The payload to send instead of the invoice's.
            language_code: The user's client language (None to omit it).

        Returns:
            The query id (``update["pre_checkout_query"]["id"]``).

        Raises:
            LookupError: If there is no such invoice in the chat (sent by ``sendInvoice`` and not
                deleted), unless ``message_id`` is None and both ``total_amount`` and
                ``invoice_payload`` are given.
        """
        with self._cond:
            chat_id = user_id if chat_id is None else chat_id
            invoice = self._find_invoice(chat_id, message_id)
            if invoice is None and (
                message_id is not None or total_amount is None or invoice_payload is None
            ):
                raise LookupError(
                    f"no invoice {message_id if message_id is not None else ''} in chat "
                    f"{chat_id}; invoices there: "
                    f"{[i['message_id'] for i in self._invoices if i['chat_id'] == chat_id]}"
                )
            known = self._users.get(user_id, {})
            user = self._remember_user(
                user_id, known.get("first_name", "Test"), known.get("username"), language_code
            )
            query_id = str(6_000_000_000_000_000_000 + next(self._pre_checkout_ids))
            if total_amount is None:
                total_amount = invoice["total_amount"]
            if invoice_payload is None:
                invoice_payload = invoice["payload"]
            self._pre_checkout_queries[query_id] = {
                "id": query_id,
                "user_id": user_id,
                "user": user,
                "chat_id": chat_id,
                "message_id": invoice["message_id"] if invoice else None,
                "total_amount": total_amount,
                "invoice_payload": invoice_payload,
                "injected_monotonic": time.monotonic(),
                "answer": None,
                "charge_id": None,
            }
            self._enqueue(
                {
                    "pre_checkout_query": {
                        "id": query_id,
                        "from": user,
                        "currency": STARS_CURRENCY,
                        "total_amount": total_amount,
                        "invoice_payload": invoice_payload,
                    }
                }
            )
            return query_id

    def inject_successful_payment(self, pre_checkout_query_id: str) -> str:
        """Queue the ``message`` update with ``successful_payment`` that completes a payment.

        Telegram only charges the user after the bot answered the pre-checkout query with
        ``ok=True`` (in time); the message goes to the chat of the invoice.

        Args:
            pre_checkout_query_id: A query from :meth:`inject_pre_checkout_query`.

        Returns:
            The new, unique ``telegram_payment_charge_id`` (``provider_payment_charge_id`` is "").

        Raises:
            LookupError: For an unknown query.
            ValueError: If the bot did not answer the query ``ok=True``, or the query was paid
                already (see :meth:`inject_duplicate_payment`).
        """
        with self._cond:
            query = self._pre_checkout_queries.get(pre_checkout_query_id)
            if query is None:
                raise LookupError(
                    f"no pre_checkout_query {pre_checkout_query_id!r}; known: "
                    f"{list(self._pre_checkout_queries)}"
                )
            answer = query["answer"]
            if answer is None or not answer["ok"]:
                state = (
                    "not answered" if answer is None else f"refused ({answer['error_message']!r})"
                )
                raise ValueError(
                    f"pre_checkout_query {pre_checkout_query_id} was {state}; Telegram only "
                    "charges the user after answerPreCheckoutQuery with ok=True"
                )
            if query["charge_id"] is not None:
                raise ValueError(
                    f"pre_checkout_query {pre_checkout_query_id} was paid already (charge "
                    f"{query['charge_id']}); use inject_duplicate_payment to deliver it again"
                )
            charge_id = "stx" + uuid.uuid4().hex
            chat_id = query["chat_id"]
            message: dict[str, Any] = {
                "message_id": self._allocate_message_id(chat_id),
                "from": copy.deepcopy(query["user"]),
                "chat": self._chat_object(chat_id),
                "date": int(time.time()),
                "successful_payment": {
                    "currency": STARS_CURRENCY,
                    "total_amount": query["total_amount"],
                    "invoice_payload": query["invoice_payload"],
                    "telegram_payment_charge_id": charge_id,
                    "provider_payment_charge_id": "",
                },
            }
            self._chats.setdefault(chat_id, {})[message["message_id"]] = copy.deepcopy(message)
            update = self._enqueue({"message": message})
            query["charge_id"] = charge_id
            payment = {
                "telegram_payment_charge_id": charge_id,
                "user_id": query["user_id"],
                "user": copy.deepcopy(query["user"]),
                "chat_id": chat_id,
                "currency": STARS_CURRENCY,
                "total_amount": query["total_amount"],
                "invoice_payload": query["invoice_payload"],
                "pre_checkout_query_id": pre_checkout_query_id,
                "at": time.time(),
                "refunded": False,
                "update_ids": [update["update_id"]],
                "message": message,
            }
            self._payments[charge_id] = payment
            self._star_transactions.append(
                _star_transaction(payment, refund=False, date=message["date"])
            )
            return charge_id

    def pay_invoice(
        self,
        user_id: int,
        message_id: int | None = None,
        *,
        chat_id: int | None = None,
        language_code: str | None = "ru",
        timeout: float = 10.0,
    ) -> str:
        """Pay an invoice the way a user does: pre-checkout query, the bot's answer, the payment.

        Injects the ``pre_checkout_query``, blocks until the (running) bot answered it, then
        injects the ``successful_payment`` message.

        Args:
            user_id: Who pays.
            message_id: The invoice message; None takes the chat's latest invoice.
            chat_id: The chat of the invoice, when not the user's private chat.
            language_code: The user's client language (None to omit it).
            timeout: Seconds to wait for the bot's answer.

        Returns:
            The ``telegram_payment_charge_id`` of the payment.

        Raises:
            LookupError: If there is no such invoice.
            AssertionError: If the bot did not answer in time (listing the calls recorded) or
                answered ``ok=False`` (with its ``error_message``).
        """
        query_id = self.inject_pre_checkout_query(
            user_id, message_id, chat_id=chat_id, language_code=language_code
        )
        deadline = time.monotonic() + timeout
        with self._cond:
            query = self._pre_checkout_queries[query_id]
            while query["answer"] is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"pre_checkout_query {query_id} not answered: "
                        + self._describe_wait_failure("answerPreCheckoutQuery", 1, [], timeout)
                    )
                self._cond.wait(remaining)
            if not query["answer"]["ok"]:
                raise AssertionError(
                    f"the bot refused pre_checkout_query {query_id}: "
                    f"{query['answer']['error_message']!r}"
                )
            return self.inject_successful_payment(query_id)

    def inject_duplicate_payment(self, telegram_payment_charge_id: str) -> dict[str, Any]:
        """Queue the ``successful_payment`` message of a payment once more (a new ``update_id``).

        Telegram may deliver an update twice; the bot must not credit the payment twice.

        Args:
            telegram_payment_charge_id: A charge from :meth:`inject_successful_payment`.

        Returns:
            The queued update (a copy): the same message, same charge id.

        Raises:
            LookupError: For an unknown charge.
        """
        with self._cond:
            payment = self._payments.get(telegram_payment_charge_id)
            if payment is None:
                raise LookupError(
                    f"no payment {telegram_payment_charge_id!r}; known: {list(self._payments)}"
                )
            update = self._enqueue({"message": payment["message"]})
            payment["update_ids"].append(update["update_id"])
            return update

    def invoices(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """The invoices the bot sent with ``sendInvoice``, oldest first.

        Args:
            chat_id: Only the invoices of this chat.

        Returns:
            Dicts with ``chat_id``, ``message_id``, ``title``, ``description``, ``payload``,
            ``currency``, ``prices`` (LabeledPrice objects), ``total_amount``,
            ``start_parameter`` and ``at`` (``time.time()`` when sent).
        """
        with self._cond:
            return copy.deepcopy(
                [i for i in self._invoices if chat_id is None or i["chat_id"] == chat_id]
            )

    def pre_checkout_answers(self) -> list[dict[str, Any]]:
        """The accepted ``answerPreCheckoutQuery`` answers, oldest first.

        Refused calls (unknown, expired or already answered queries) are only in :meth:`calls`.

        Returns:
            Dicts with ``pre_checkout_query_id``, ``user_id``, ``ok``, ``error_message`` (None
            when ok), ``total_amount`` and ``invoice_payload`` of the query, ``answered_at``
            (``time.time()``) and ``delay`` (seconds since the query was injected).
        """
        with self._cond:
            return copy.deepcopy(self._pre_checkout_answers)

    def payments(self) -> list[dict[str, Any]]:
        """The payments completed by :meth:`inject_successful_payment`, oldest first.

        Returns:
            Dicts with ``telegram_payment_charge_id``, ``user_id``, ``user``, ``chat_id``,
            ``currency``, ``total_amount``, ``invoice_payload``, ``pre_checkout_query_id``,
            ``at``, ``refunded``, ``update_ids`` (every update that carried it, duplicates
            included) and ``message`` (the ``successful_payment`` message).
        """
        with self._cond:
            return copy.deepcopy(list(self._payments.values()))

    def refunds(self) -> list[dict[str, Any]]:
        """The refunds the bot made with ``refundStarPayment``, oldest first.

        Returns:
            Dicts with ``telegram_payment_charge_id``, ``user_id``, ``total_amount``,
            ``invoice_payload`` and ``at`` (``time.time()``).
        """
        with self._cond:
            return copy.deepcopy(self._refunds)

    def _find_invoice(self, chat_id: int, message_id: int | None) -> dict[str, Any] | None:
        """The chat's invoice (its latest when ``message_id`` is None) still in the chat."""
        present = self._chats.get(chat_id, {})
        found = [
            invoice
            for invoice in self._invoices
            if invoice["chat_id"] == chat_id
            and invoice["message_id"] in present
            and (message_id is None or invoice["message_id"] == message_id)
        ]
        return found[-1] if found else None

    # ---------------------------------------------------------------- test-side: files, groups

    def add_file(
        self,
        data: bytes,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        declared_size: int | None = None,
        kind: str = "document",
    ) -> dict[str, Any]:
        """Store a file the bot can fetch with ``getFile`` and then download.

        The injectors store their files themselves; this one serves updates built by hand for
        :meth:`inject_update` and files a test hands the bot otherwise.

        Args:
            data: The file's bytes (what a download answers).
            file_name: Its name; its extension becomes the ``file_path``'s.
            mime_type: Its MIME type (gives the extension when the name has none).
            declared_size: The ``file_size`` to announce instead of ``len(data)``; over
                :data:`MAX_DOWNLOAD_SIZE` ``getFile`` refuses the file as too big.
            kind: What Telegram would file it as: ``photo``, ``voice``, ``audio``, ``document``,
                ``video``, ``video_note``, ``animation`` or ``sticker`` (the ``file_path``'s
                folder: ``photos/``, ``voice/``, ``music/``, ``documents/``...).

        Returns:
            ``{"file_id", "file_unique_id", "file_size"}`` (ids unique across the fake's life).

        Raises:
            ValueError: For an unknown ``kind`` or a negative ``declared_size``.
        """
        with self._cond:
            stored = self._store_file(
                data, kind, file_name=file_name, mime_type=mime_type, declared_size=declared_size
            )
            return {**_file_ids(stored), "file_size": stored.file_size}

    def downloads(self) -> list[dict[str, Any]]:
        """The files downloaded from ``/file/bot<token>/<file_path>``, oldest first.

        Refused downloads (wrong token, unknown path, :meth:`fail_next_download`) are not
        listed.

        Returns:
            Dicts with ``file_path``, ``file_id``, ``size`` (bytes sent) and ``at``
            (``time.time()``).
        """
        with self._cond:
            return copy.deepcopy(self._downloads)

    def fail_next_download(self, *, error_code: int = 500, times: int = 1) -> None:
        """Make the next ``times`` downloads (with the right token) answer an error.

        Args:
            error_code: The HTTP status (the body is the Bot API's error object).
            times: How many downloads fail.

        Raises:
            ValueError: For a non-positive ``times``.
        """
        if times < 1:
            raise ValueError("times must be positive")
        with self._cond:
            self._download_failures.extend([error_code] * times)

    def add_group(
        self, chat_id: int, title: str, *, forum: bool = False, kind: str | None = None
    ) -> dict[str, Any]:
        """Register a group: its messages (the users' and the bot's) carry its Chat object.

        Unregistered negative chat ids stay a ``"Test group"``; :meth:`reset` forgets groups.

        Args:
            chat_id: The group's id (negative; ``-100...`` for a supergroup).
            title: Its title.
            forum: Whether topics are enabled (``is_forum``; supergroups only).
            kind: ``group`` or ``supergroup``; None takes ``supergroup`` for an id starting
                with ``-100``, else ``group``.

        Returns:
            The Chat object (a copy): ``id``, ``title``, ``type`` and, for a forum,
            ``is_forum``.

        Raises:
            ValueError: For a non-negative id, an unknown kind or a forum that is not a
                supergroup.
        """
        if chat_id >= 0:
            raise ValueError(f"a group's chat id is negative, not {chat_id}")
        if kind is None:
            kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        if kind not in _GROUP_KINDS:
            raise ValueError(f"unknown group kind {kind!r}; known: {sorted(_GROUP_KINDS)}")
        if forum and kind != "supergroup":
            raise ValueError("only a supergroup can be a forum")
        chat: dict[str, Any] = {"id": chat_id, "title": title, "type": kind}
        if forum:
            chat["is_forum"] = True
        with self._cond:
            self._groups[chat_id] = chat
            return copy.deepcopy(chat)

    # ---------------------------------------------------------------- test-side: failures

    def fail_next(
        self,
        method: str,
        *,
        error_code: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` answer with an error.

        Args:
            method: A method of :data:`SUPPORTED_METHODS` (any case).
            error_code: The error code (and HTTP status).
            description: The description; by default Telegram's for the code (for 429:
                ``Too Many Requests: retry after N``).
            retry_after: Seconds for ``parameters.retry_after`` (for 429 it defaults to 1).
            times: How many calls fail.

        Raises:
            ValueError: For an unknown method or a non-positive ``times``.
        """
        canonical = self._canonical.get(method.lower())
        if canonical is None:
            raise ValueError(f"unknown method {method!r}; supported: {SUPPORTED_METHODS}")
        if times < 1:
            raise ValueError("times must be positive")
        if error_code == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            if error_code == 429:
                description = f"Too Many Requests: retry after {retry_after}"
            else:
                description = _DEFAULT_DESCRIPTIONS.get(error_code, "Error")
        parameters = {"retry_after": retry_after} if retry_after is not None else None
        with self._cond:
            self._failures[canonical.lower()] = _Failure(error_code, description, parameters, times)

    def set_flood_limits(self, limits: FloodLimits | None) -> None:
        """Start (or, with None, stop) enforcing flood limits; counting starts afresh.

        Args:
            limits: The limits, e.g. ``FloodLimits()`` for Telegram's figures.
        """
        with self._cond:
            self._flood_limits = limits
            self._flood = FloodState(limits) if limits else None

    def flood_refusals(self) -> int:
        """How many calls flood control refused with 429 since it was set (or the last reset)."""
        with self._cond:
            return self._flood.refused if self._flood else 0

    # ---------------------------------------------------------------- test-side: inspection

    def calls(self, method: str | None = None) -> list[Call]:
        """Every answered call, in the order they were answered.

        Args:
            method: Only calls of this method (case-insensitive).

        Returns:
            The calls (``Call.at`` is the arrival time; a long poll is recorded when answered).
        """
        with self._cond:
            return self._matching_calls(method, None)

    def wait_for_call(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 10.0,
    ) -> Call:
        """Block until a call of ``method`` matching ``predicate`` has been answered.

        Args:
            method: The method (case-insensitive).
            predicate: A test on the :class:`Call`; None accepts any. A predicate raising
                KeyError, IndexError, TypeError or AttributeError counts as not matching.
            timeout: Seconds to wait.

        Returns:
            The first matching call.

        Raises:
            AssertionError: On timeout, listing the calls recorded so far.
        """
        return self.wait_for_calls(method, 1, predicate, timeout)[0]

    def wait_for_calls(
        self,
        method: str,
        count: int,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 10.0,
    ) -> list[Call]:
        """Block until ``count`` calls of ``method`` matching ``predicate`` have been answered.

        Args:
            method: The method (case-insensitive).
            count: How many matching calls are needed.
            predicate: A test on the :class:`Call`; None accepts any. A predicate raising
                KeyError, IndexError, TypeError or AttributeError counts as not matching.
            timeout: Seconds to wait.

        Returns:
            The first ``count`` matching calls.

        Raises:
            AssertionError: On timeout, listing the calls recorded so far.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._matching_calls(method, predicate)
                if len(found) >= count:
                    return found[:count]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(self._describe_wait_failure(method, count, found, timeout))
                self._cond.wait(remaining)

    def messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages currently in a chat (after edits and deletions), oldest first.

        Args:
            chat_id: The chat.

        Returns:
            Copies of the Message objects (``text`` is the parsed plain text).
        """
        with self._cond:
            return copy.deepcopy(self._bot_messages(chat_id))

    def history(self, chat_id: int) -> list[dict[str, Any]]:
        """Every message currently in a chat, the user's and the bot's, oldest first.

        Args:
            chat_id: The chat.

        Returns:
            Copies of the Message objects.
        """
        with self._cond:
            return copy.deepcopy(list(self._chats.get(chat_id, {}).values()))

    def drafts(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """The message drafts the bot streamed with ``sendMessageDraft``, oldest first.

        Args:
            chat_id: Only the drafts of this chat.

        Returns:
            Dicts with ``chat_id``, ``message_thread_id`` (None when not given), ``draft_id``,
            ``text`` (parsed), ``entities``, ``raw_text`` and ``at``.
        """
        with self._cond:
            return copy.deepcopy(
                [d for d in self._drafts if chat_id is None or d["chat_id"] == chat_id]
            )

    def pending_updates(self) -> list[dict[str, Any]]:
        """The updates not yet acknowledged by getUpdates or delivered to the webhook.

        Returns:
            Copies of the updates, oldest first.
        """
        with self._cond:
            return copy.deepcopy(self._updates)

    def commands(
        self, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, Any]]:
        """The command list stored by ``setMyCommands`` for a scope and language.

        Args:
            scope: A ``BotCommandScope`` object; None is the default scope.
            language_code: The language ("" for all languages).

        Returns:
            Copies of the ``BotCommand`` objects.
        """
        with self._cond:
            return copy.deepcopy(self._commands.get(_commands_key(scope, language_code), []))

    @property
    def webhook(self) -> dict[str, Any] | None:
        """The webhook settings (url, secret_token, max_connections, allowed_updates), or None."""
        with self._cond:
            return copy.deepcopy(self._webhook)

    def webhook_info(self) -> dict[str, Any]:
        """What ``getWebhookInfo`` would answer now.

        Returns:
            A ``WebhookInfo`` object.
        """
        with self._cond:
            return self._webhook_info()

    @property
    def deliveries(self) -> list[Delivery]:
        """Every webhook delivery attempt, oldest first."""
        with self._cond:
            return list(self._deliveries)

    def wait_for_delivery(
        self,
        predicate: Callable[[Delivery], bool] | None = None,
        timeout: float = 10.0,
    ) -> Delivery:
        """Block until a webhook delivery attempt matching ``predicate`` has finished.

        Args:
            predicate: A test on the :class:`Delivery`; None accepts any.
            timeout: Seconds to wait.

        Returns:
            The first matching attempt.

        Raises:
            AssertionError: On timeout, listing the attempts so far.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for delivery in self._deliveries:
                    if _matches(predicate, delivery):
                        return delivery
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no matching webhook delivery within {timeout} s; attempts so far: "
                        f"{self._deliveries}; webhook: {self._webhook}; pending updates: "
                        f"{[u['update_id'] for u in self._updates]}"
                    )
                self._cond.wait(remaining)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _text_entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram finds in a user's text: a leading bot command, ``@`` mentions.

    Offsets and lengths are in UTF-16 code units; the entities are sorted by offset.
    """
    entities = []
    match = _BOT_COMMAND_ENTITY_RE.match(text)
    if match:
        entities.append(
            {"offset": 0, "length": utf16_length(match.group(0)), "type": "bot_command"}
        )
    for mention in _MENTION_RE.finditer(text):
        entities.append(
            {
                "offset": utf16_length(text[: mention.start()]),
                "length": utf16_length(mention.group(0)),
                "type": "mention",
            }
        )
    return sorted(entities, key=lambda entity: entity["offset"])


def _caption_fields(caption: str | None) -> dict[str, Any]:
    """``caption`` and its ``caption_entities`` (none when it has none) for a media message."""
    if caption is None:
        return {}
    fields: dict[str, Any] = {"caption": caption}
    entities = _text_entities(caption)
    if entities:
        fields["caption_entities"] = entities
    return fields


def _file_ids(stored: _StoredFile) -> dict[str, Any]:
    return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
