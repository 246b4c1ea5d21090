"""The Telegram Bot API client extension: one per process, used by web, listener and worker.

:class:`TelegramClient` is created unbound (``shared.extensions.telegram``) and bound by
:meth:`TelegramClient.init_app`, which points pyTelegramBotAPI at ``TELEGRAM_API_URL`` and gives it
one shared keep-alive HTTP session — the only two times this module touches the library's module
globals, once per process, never per call. The token comes from the in-memory runtime snapshot
(decrypted once per change, see ``shared.runtime``); the client keeps a plain ``TeleBot`` (no
handlers) for the current token and builds a new one when the token changes.

Every call goes through :meth:`TelegramClient.call`, which waits out 429 (``retry_after``), 5xx
and network errors a few times. Only the worker builds a ``TeleBot`` with handlers
(``bot.dispatcher``); handlers answer through this client too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Flask, current_app
from requests.adapters import HTTPAdapter
from telebot import TeleBot, apihelper
from telebot.apihelper import ApiTelegramException
from telebot.types import InlineKeyboardMarkup
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from shared.runtime import RuntimeSettings
from shared.telegram.formatting import split_markdown, to_telegram_html

logger = logging.getLogger(__name__)

#: Longest wait honoured from a 429's ``retry_after`` before giving up on this attempt.
MAX_RETRY_AFTER = 30.0
#: Attempts per call (the first one included).
ATTEMPTS = 4
#: Keep-alive connections kept to the Bot API (sends from many concurrent tasks share them).
POOL_SIZE = 64


class BotNotConfigured(RuntimeError):
    """No bot token is set (admin setting or ``TELEGRAM_BOT_TOKEN``)."""


def _retryable(exc: BaseException) -> bool:
    """Whether a failed Bot API call may succeed when repeated (429, 5xx, network)."""
    if isinstance(exc, ApiTelegramException):
        return exc.error_code == 429 or exc.error_code >= 500
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


def _wait(state: RetryCallState) -> float:
    """Seconds before the next attempt: Telegram's ``retry_after``, else a short backoff."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, ApiTelegramException) and exc.error_code == 429:
        retry_after = (exc.result_json or {}).get("parameters", {}).get("retry_after", 1)
        return min(float(retry_after), MAX_RETRY_AFTER)
    return min(0.5 * 2 ** (state.attempt_number - 1), 5.0)


def call_with_retries(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a Bot API function, waiting out 429s (``retry_after``), 5xx and network errors.

    Args:
        fn: A bound TeleBot method or an ``apihelper`` function.
        *args: Its arguments.
        **kwargs: Its keyword arguments.

    Returns:
        What the function returns.

    Raises:
        ApiTelegramException: On a non-retryable error, or when attempts run out.
    """
    retrying = Retrying(
        stop=stop_after_attempt(ATTEMPTS),
        wait=_wait,
        retry=retry_if_exception(_retryable),
        reraise=True,
        before_sleep=lambda s: logger.warning(
            "telegram call failed, retrying method=%s attempt=%s",
            getattr(fn, "__name__", fn),
            s.attempt_number,
        ),
    )
    return retrying(fn, *args, **kwargs)


def entities_rejected(exc: BaseException) -> bool:
    """Whether Telegram refused a message because its HTML/Markdown could not be parsed."""
    return (
        isinstance(exc, ApiTelegramException)
        and exc.error_code == 400
        and "can't parse entities" in (exc.description or "").lower()
    )


def _session(base_url: str) -> requests.Session:
    """One keep-alive HTTP session for every Bot API call of the process.

    Proxy variables are read once here (``trust_env`` off), so no call looks up ``.netrc`` or
    the environment again.

    Args:
        base_url: ``TELEGRAM_API_URL``.

    Returns:
        The session.
    """
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass
class _State:
    """Per-app state: the bot of the current token."""

    token: str | None = None
    bot: TeleBot | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class TelegramClient:
    """Flask extension speaking to the Bot API with the token from the runtime settings.

    Args:
        runtime: The runtime settings extension the token is read from.
    """

    def __init__(self, runtime: RuntimeSettings) -> None:
        self._runtime = runtime

    def init_app(self, app: Flask) -> None:
        """Point pyTelegramBotAPI at ``TELEGRAM_API_URL`` with one shared session.

        pyTelegramBotAPI keeps both in module globals; they are set here, once per process.
        All apps of one process must therefore share ``TELEGRAM_API_URL`` (they do: it comes
        from the environment).

        Args:
            app: The Flask app (its runtime settings must be bound too).
        """
        base_url = app.config["AI_ROUTER"].telegram_api_url
        apihelper.API_URL = f"{base_url}/bot{{0}}/{{1}}"
        apihelper.FILE_URL = f"{base_url}/file/bot{{0}}/{{1}}"
        if not isinstance(apihelper.session, requests.Session):
            apihelper.session = _session(base_url)
        app.extensions["telegram"] = _State()

    # -- the bot of the current token --------------------------------------------------------
    def token(self) -> str:
        """The bot token from the runtime settings.

        Raises:
            BotNotConfigured: When no token is set.
        """
        token = self._runtime.get().token
        if not token:
            raise BotNotConfigured(
                "no bot token: set it in the admin settings or TELEGRAM_BOT_TOKEN"
            )
        return token

    def bot(self) -> TeleBot:
        """A plain TeleBot (no handlers) for the current token, rebuilt when the token changes.

        Raises:
            BotNotConfigured: When no token is set.
        """
        token = self.token()
        state: _State = current_app.extensions["telegram"]
        bot = state.bot
        if bot is not None and state.token == token:
            return bot
        with state.lock:
            if state.bot is None or state.token != token:
                state.bot = TeleBot(token, threaded=False, validate_token=False)
                state.token = token
            return state.bot

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a Bot API method of TeleBot by name, with the retries of :func:`call_with_retries`.

        Args:
            method: A TeleBot method name, e.g. ``send_message``.
            *args: Its arguments.
            **kwargs: Its keyword arguments.

        Returns:
            What the method returns.

        Raises:
            BotNotConfigured: When no token is set.
            ApiTelegramException: On a non-retryable error, or when attempts run out.
        """
        return call_with_retries(getattr(self.bot(), method), *args, **kwargs)

    # -- the calls the product makes -------------------------------------------------------------
    def send_message(self, chat_id: int, text: str, **options: Any) -> Any:
        """Send a message (see TeleBot.send_message for the options)."""
        return self.call("send_message", chat_id, text, **options)

    def answer_callback_query(self, query_id: str, text: str | None = None) -> Any:
        """Answer a button press (the toast)."""
        return self.call("answer_callback_query", query_id, text)

    def edit_message_text(self, text: str, chat_id: int, message_id: int, **options: Any) -> Any:
        """Replace the text (and keyboard) of a message the bot sent."""
        return self.call("edit_message_text", text, chat_id, message_id, **options)

    def get_webhook_info(self) -> Any:
        """Telegram's view of the webhook (url, pending updates, last error)."""
        return self.call("get_webhook_info")

    def get_updates(self, offset: int | None, timeout: int) -> list[dict[str, Any]]:
        """Long-poll for updates, as raw dicts (no object is built for them).

        Args:
            offset: The first update id wanted (acknowledges the ones before it).
            timeout: Seconds of the long poll.

        Returns:
            The updates as Telegram sent them.
        """
        return apihelper.get_updates(
            self.token(), offset=offset, timeout=timeout, long_polling_timeout=timeout
        )

    def send_parts(
        self,
        chat_id: int,
        parts: list[OutgoingPart],
        *,
        skip: int = 0,
        on_sent: Callable[[int], None] | None = None,
    ) -> None:
        """Send prepared parts in order, from part ``skip`` on; report each one sent.

        A part whose HTML Telegram rejects is sent again as plain text.

        Args:
            chat_id: Where to send.
            parts: The parts.
            skip: Parts already sent earlier (not sent again).
            on_sent: Called with a part's index once Telegram accepted it.

        Raises:
            ApiTelegramException: When Telegram keeps refusing a part.
        """
        for index, part in enumerate(parts):
            if index < skip:
                continue
            options: dict[str, Any] = {"reply_markup": part.reply_markup}
            if part.reply_to_message_id:
                options["reply_to_message_id"] = part.reply_to_message_id
                options["allow_sending_without_reply"] = True
            if part.html is None:
                self.send_message(chat_id, part.text, **options)
            else:
                try:
                    self.send_message(chat_id, part.html, parse_mode="HTML", **options)
                except ApiTelegramException as exc:
                    if not entities_rejected(exc):
                        raise
                    logger.warning("telegram rejected HTML, resending as text chat_id=%s", chat_id)
                    self.send_message(chat_id, part.text, **options)
            if on_sent is not None:
                on_sent(index)


@dataclass(frozen=True)
class OutgoingPart:
    """One message to send.

    Attributes:
        text: The plain text (sent as is when ``html`` is None, or when Telegram rejects it).
        html: The same text rendered as Telegram HTML, or None for plain text.
        reply_markup: Inline keyboard under this part.
        reply_to_message_id: The user's message this part answers.
    """

    text: str
    html: str | None = None
    reply_markup: InlineKeyboardMarkup | None = None
    reply_to_message_id: int | None = None


def answer_parts(
    text: str,
    *,
    reply_markup: InlineKeyboardMarkup | None = None,
    reply_to_message_id: int | None = None,
) -> list[OutgoingPart]:
    """Split an LLM answer (Markdown) into message-sized HTML parts.

    The first part replies to the user's message; the keyboard goes under the last part only.

    Args:
        text: The answer.
        reply_markup: The keyboard for the last part.
        reply_to_message_id: The user's message.

    Returns:
        The parts, at least one.
    """
    chunks = split_markdown(text) or ["…"]
    last = len(chunks) - 1
    return [
        OutgoingPart(
            text=chunk,
            html=to_telegram_html(chunk),
            reply_markup=reply_markup if index == last else None,
            reply_to_message_id=reply_to_message_id if index == 0 else None,
        )
        for index, chunk in enumerate(chunks)
    ]
