"""Talking to the Telegram Bot API: the client per token, rate-limit retries, long answers.

pyTelegramBotAPI keeps its API base URL in a module global (``apihelper.API_URL``); it is set
here, from ``TELEGRAM_API_URL``, before any client is used — the one place that touches it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from telebot import TeleBot, apihelper
from telebot.apihelper import ApiTelegramException
from telebot.types import InlineKeyboardMarkup
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from shared.services.formatting import split_markdown, to_telegram_html

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Longest wait honoured from a 429's ``retry_after`` before giving up on this attempt.
MAX_RETRY_AFTER = 30.0
ATTEMPTS = 4


class BotNotConfigured(RuntimeError):
    """No bot token is set (admin setting or ``TELEGRAM_BOT_TOKEN``)."""


def configure_api_url(base_url: str) -> None:
    """Point pyTelegramBotAPI at ``{base_url}/bot{token}/{method}``.

    Args:
        base_url: ``TELEGRAM_API_URL`` (no trailing slash).
    """
    apihelper.API_URL = f"{base_url}/bot{{0}}/{{1}}"


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ApiTelegramException):
        return exc.error_code == 429 or exc.error_code >= 500
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, ApiTelegramException) and exc.error_code == 429:
        retry_after = (exc.result_json or {}).get("parameters", {}).get("retry_after", 1)
        return min(float(retry_after), MAX_RETRY_AFTER)
    return min(0.5 * 2 ** (state.attempt_number - 1), 5.0)


def call_telegram(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a Bot API method, waiting out 429s (``retry_after``), 5xx and network errors.

    Args:
        fn: A bound TeleBot method.
        *args: Its arguments.
        **kwargs: Its keyword arguments.

    Returns:
        What the method returns.

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


def _entities_rejected(exc: ApiTelegramException) -> bool:
    return exc.error_code == 400 and "can't parse entities" in (exc.description or "").lower()


def send_answer(
    bot: TeleBot,
    chat_id: int,
    text: str,
    *,
    reply_markup: InlineKeyboardMarkup | None = None,
    reply_to_message_id: int | None = None,
    skip: int = 0,
    on_part_sent: Callable[[int], None] | None = None,
) -> list[int]:
    """Send an LLM answer: split into message-sized parts, rendered as HTML.

    A part whose HTML Telegram rejects is re-sent as plain text. The keyboard goes under the
    last part only; the first part replies to the user's message.

    Args:
        bot: The TeleBot of the current token.
        chat_id: Where to send.
        text: The answer (Markdown).
        reply_markup: Keyboard for the last part.
        reply_to_message_id: The user's message the first part answers.
        skip: Parts already sent by an interrupted earlier attempt (not sent again).
        on_part_sent: Called with a part's index once Telegram accepted it.

    Returns:
        Telegram message ids of the parts sent now, in order.
    """
    parts = split_markdown(text) or ["…"]
    sent: list[int] = []
    for index, part in enumerate(parts):
        if index < skip:
            continue
        last = index == len(parts) - 1
        options: dict[str, Any] = {"reply_markup": reply_markup if last else None}
        if index == 0 and reply_to_message_id:
            options["reply_to_message_id"] = reply_to_message_id
            options["allow_sending_without_reply"] = True
        try:
            message = call_telegram(
                bot.send_message, chat_id, to_telegram_html(part), parse_mode="HTML", **options
            )
        except ApiTelegramException as exc:
            if not _entities_rejected(exc):
                raise
            logger.warning("telegram rejected HTML, resending as plain text chat_id=%s", chat_id)
            message = call_telegram(bot.send_message, chat_id, part, **options)
        sent.append(message.message_id)
        if on_part_sent is not None:
            on_part_sent(index)
    return sent
