"""The Telegram Bot API client extension: one per process, used by web, listener and worker.

:class:`TelegramClient` is created unbound (``shared.extensions.telegram``) and bound by
:meth:`TelegramClient.init_app`, which keeps the app's Bot API base URL (``TELEGRAM_API_URL``)
and one keep-alive HTTP session in ``app.extensions``. Calls go to
``{TELEGRAM_API_URL}/bot{token}/{method}`` as JSON — the Bot API's own form — so no module
global of pyTelegramBotAPI is ever set (several apps in one process, as in the tests, each keep
their own URL), and answers are not turned into objects nobody reads. Every failed call raises
:class:`~shared.telegram.errors.TelegramApiError`. pyTelegramBotAPI is not imported here (the web
app and the listener never load it); the worker's dispatcher and keyboards use its types.

The token comes from the in-memory runtime snapshot (decrypted once per change, see
``shared.runtime``). Every call goes through :meth:`TelegramClient.call`, which retries 5xx and
network errors a few times. A call that sends or changes a message in a chat (:data:`PACED`)
first books its slot with the Redis-backed pacer shared by every process
(``shared.telegram.pacer``); its 429 closes the chat's lane for every worker and the call books
again, so ``retry_after`` is honoured everywhere at once. An answer whose slot is far away raises
:class:`SendDeferred` instead of holding its worker slot; drafts and "typing…" are skipped when
there is no spare room.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import urllib3
from flask import Flask, current_app
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from shared import metrics
from shared.green import CpuSlots
from shared.redis import KEY_PREFIX, RedisStore
from shared.runtime import RuntimeSettings
from shared.telegram.errors import TelegramApiError
from shared.telegram.formatting import split_markdown, to_telegram_html
from shared.telegram.pacer import PaceLimits, Pacer, Priority, Verdict

if TYPE_CHECKING:
    from telebot.types import InlineKeyboardMarkup

logger = logging.getLogger(__name__)

#: Longest wait honoured from a 429's ``retry_after`` before giving up on this attempt.
MAX_RETRY_AFTER = 30.0
#: Attempts per call (the first one included).
ATTEMPTS = 4
#: Keep-alive connections to the Bot API; more concurrent calls wait for a free one (a few
#: milliseconds) rather than open connections that are thrown away after one call.
POOL_SIZE = 100
JSON_HEADERS = {"Content-Type": "application/json"}
#: Seconds the bot's ``getMe`` is kept in Redis (the token's fingerprint names the key).
ME_SECONDS = 24 * 3600
#: Seconds to connect, and to wait for an answer of an ordinary call.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
#: Methods that send or change a message in a chat: they go through the pacer.
PACED = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageReplyMarkup",
        "sendMessageDraft",
        "sendChatAction",
        "sendPhoto",
        "sendDocument",
        "sendInvoice",
    }
)
#: The longest wait for a lane an answer spends inside its task; a later slot defers the send.
HORIZON = 10.0
#: 429s one paced call accepts (each closes the lane and books again) before it is deferred.
MAX_REFUSALS = 5


class SendDeferred(RuntimeError):
    """An answer's slot is further away than :data:`HORIZON`: send it later, from a new task.

    Args:
        wait: Seconds until the lanes have room.
    """

    def __init__(self, wait: float) -> None:
        super().__init__(f"send deferred by {wait:.1f} s (flood limits)")
        self.wait = wait


class ChatUnreachable(RuntimeError):
    """The chat does not take messages (the user blocked the bot): nothing is sent to it.

    Args:
        chat_id: The chat.
    """

    def __init__(self, chat_id: int) -> None:
        super().__init__(f"chat {chat_id} is unreachable (the bot was blocked)")
        self.chat_id = chat_id


class BotNotConfigured(RuntimeError):
    """No bot token is set (admin setting or ``TELEGRAM_BOT_TOKEN``)."""


class BotApiUnavailable(RuntimeError):
    """The Bot API could not be reached or answered something that is not JSON."""


class FileTooLarge(RuntimeError):
    """A download is longer than the caller accepts.

    Args:
        size: The bytes it has (or at least has).
    """

    def __init__(self, size: int) -> None:
        super().__init__(f"file of {size} bytes is too large")
        self.size = size


def _retryable(exc: BaseException) -> bool:
    """Whether a failed Bot API call may succeed when repeated (429, 5xx, network)."""
    if isinstance(exc, TelegramApiError):
        return exc.error_code == 429 or exc.error_code >= 500
    return isinstance(exc, BotApiUnavailable)


def _outcome(answer: dict[str, Any]) -> str:
    """A refused call's outcome for the metrics: ``429``, ``4xx`` or ``5xx``."""
    code = answer.get("error_code")
    if code == 429:
        return "429"
    return "5xx" if isinstance(code, int) and code >= 500 else "4xx"


def retry_after(exc: TelegramApiError) -> float:
    """Telegram's ``parameters.retry_after`` of a 429.

    Args:
        exc: The 429.

    Returns:
        Seconds to wait (1 when Telegram gave none).
    """
    return float((exc.result_json or {}).get("parameters", {}).get("retry_after", 1))


def _wait(state: RetryCallState) -> float:
    """Seconds before the next attempt: Telegram's ``retry_after``, else a short backoff."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, TelegramApiError) and exc.error_code == 429:
        return min(retry_after(exc), MAX_RETRY_AFTER)
    return min(0.5 * 2 ** (state.attempt_number - 1), 5.0)


def _sleep_without_slot(seconds: float) -> None:
    """A retry's backoff: no CPU slot is held meanwhile (``shared.green.CpuSlots``)."""
    with CpuSlots.released():
        time.sleep(seconds)


def call_with_retries(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a Bot API function, waiting out 429s (``retry_after``), 5xx and network errors.

    Args:
        fn: The function making one request.
        *args: Its arguments.
        **kwargs: Its keyword arguments.

    Returns:
        What the function returns.

    Raises:
        TelegramApiError: On a non-retryable error, or when attempts run out.
    """
    retrying = Retrying(
        stop=stop_after_attempt(ATTEMPTS),
        wait=_wait,
        sleep=_sleep_without_slot,
        retry=retry_if_exception(_retryable),
        reraise=True,
        before_sleep=lambda s: logger.warning(
            "telegram call failed, retrying method=%s attempt=%s",
            args[0] if args else getattr(fn, "__name__", fn),
            s.attempt_number,
        ),
    )
    return retrying(fn, *args, **kwargs)


def entities_rejected(exc: BaseException) -> bool:
    """Whether Telegram refused a message because its HTML/Markdown could not be parsed."""
    return (
        isinstance(exc, TelegramApiError)
        and exc.error_code == 400
        and "can't parse entities" in (exc.description or "").lower()
    )


def _pool(base_url: str) -> urllib3.PoolManager:
    """One keep-alive connection pool for every Bot API call of the app.

    urllib3 directly: a Bot API call is a JSON POST, and requests' per-call work (settings
    merge, hooks, cookies) cost more CPU than the call itself under load. A proxy from the
    environment (``HTTPS_PROXY`` …) is read once, here.

    Args:
        base_url: ``TELEGRAM_API_URL``.

    Returns:
        The pool.
    """
    proxy = urllib.request.getproxies().get(urllib.parse.urlsplit(base_url).scheme)
    options = {"maxsize": POOL_SIZE, "block": True, "retries": False}
    if proxy and not urllib.request.proxy_bypass(urllib.parse.urlsplit(base_url).hostname or ""):
        return urllib3.ProxyManager(proxy, **options)
    return urllib3.PoolManager(**options)


def _markup(markup: InlineKeyboardMarkup | None) -> dict[str, Any] | None:
    """A keyboard as the Bot API's JSON object."""
    return markup.to_dict() if markup is not None else None


@dataclass
class _State:
    """Per-app state: where the Bot API is, the session to reach it, and the pacer."""

    base_url: str
    pool: urllib3.PoolManager
    pacer: Pacer
    drafts_supported: bool = True
    #: ``(token fingerprint, getMe's User)``: who the bot is, for the token in use.
    me: tuple[str, dict[str, Any]] | None = None


class TelegramClient:
    """Flask extension speaking to the Bot API with the token from the runtime settings.

    Args:
        runtime: The runtime settings extension the token is read from.
        redis: The Redis extension the pacer keeps its lanes in.
    """

    def __init__(self, runtime: RuntimeSettings, redis: RedisStore) -> None:
        self._runtime = runtime
        self._redis = redis

    def init_app(self, app: Flask) -> None:
        """Keep the app's Bot API base URL and open no connection yet.

        Args:
            app: The Flask app (its runtime settings must be bound too).
        """
        config = app.config["AI_ROUTER"]
        limits = PaceLimits(
            global_per_second=config.telegram_global_rate,
            chat_per_second=config.telegram_chat_rate,
            group_per_minute=config.telegram_group_rate,
        )
        app.extensions["telegram"] = _State(
            base_url=config.telegram_api_url,
            pool=_pool(config.telegram_api_url),
            pacer=Pacer(self._redis, limits),
        )

    @property
    def pacer(self) -> Pacer:
        """The current app's pacer."""
        return current_app.extensions["telegram"].pacer

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

    # -- one request ---------------------------------------------------------------------------
    def request(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float = READ_TIMEOUT
    ) -> Any:
        """Make one Bot API call (no retry).

        Args:
            method: The Bot API method, e.g. ``sendMessage``.
            params: Its parameters (None values are left out).
            timeout: Seconds to wait for the answer.

        Returns:
            The call's ``result``.

        Raises:
            BotNotConfigured: When no token is set.
            TelegramApiError: When Telegram answers ``ok: false``.
            BotApiUnavailable: On network errors and answers that are not JSON.
        """
        state: _State = current_app.extensions["telegram"]
        body = json.dumps({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{state.base_url}/bot{self.token()}/{method}"
        try:
            response = state.pool.request(
                "POST",
                url,
                body=body.encode(),
                headers=JSON_HEADERS,
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=timeout),
            )
        except urllib3.exceptions.HTTPError as exc:
            metrics.inc(metrics.TELEGRAM_CALLS, method=method, outcome="network")
            raise BotApiUnavailable(f"{method}: {type(exc).__name__}") from exc
        try:
            answer = json.loads(response.data)
        except ValueError as exc:
            metrics.inc(metrics.TELEGRAM_CALLS, method=method, outcome="network")
            raise BotApiUnavailable(f"{method}: HTTP {response.status}, not JSON") from exc
        if not answer.get("ok"):
            answer.setdefault("error_code", response.status)
            answer.setdefault("description", response.reason)
            metrics.inc(metrics.TELEGRAM_CALLS, method=method, outcome=_outcome(answer))
            raise TelegramApiError(method, response, answer)
        metrics.inc(metrics.TELEGRAM_CALLS, method=method, outcome="ok")
        return answer.get("result")

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        priority: Priority = Priority.ANSWER,
    ) -> Any:
        """Make a Bot API call: paced when it sends into a chat, retried on 5xx and network errors.

        Args:
            method: The Bot API method.
            params: Its parameters.
            priority: For a paced call: an answer waits for its slot, a draft or "typing…" is
                skipped when there is no spare room.

        Returns:
            The call's ``result``; None for a draft or "typing…" that was skipped or failed
            (they are never retried).

        Raises:
            BotNotConfigured: When no token is set.
            SendDeferred: When an answer's slot is further away than :data:`HORIZON`.
            ChatUnreachable: When the chat is marked unreachable (nothing was sent).
            TelegramApiError: On a non-retryable error, or when attempts run out.
        """
        chat_id = (params or {}).get("chat_id")
        if method not in PACED or not isinstance(chat_id, int):
            return call_with_retries(self.request, method, params)
        if priority == Priority.ANSWER:
            return call_with_retries(self._paced, method, params, chat_id, priority)
        try:  # a draft or "typing…": one attempt, a failure is only a missed preview
            return self._paced(method, params or {}, chat_id, priority)
        except BotApiUnavailable:
            return None
        except TelegramApiError as exc:
            if exc.error_code >= 500:
                return None
            raise

    def _paced(self, method: str, params: dict[str, Any], chat_id: int, priority: Priority) -> Any:
        """One paced call: book a slot, wait for it, send; a 429 closes the lane and books again."""
        pacer = self.pacer
        for _ in range(MAX_REFUSALS):
            slot = pacer.acquire(chat_id, priority, HORIZON)
            if slot.verdict is Verdict.UNREACHABLE:
                raise ChatUnreachable(chat_id)
            if slot.verdict is Verdict.SKIP:
                return None
            if slot.verdict is Verdict.BEYOND:
                raise SendDeferred(slot.wait)
            try:
                # No CPU slot is held from here to Telegram's answer (shared.green.CpuSlots): not
                # while a flood limit passes, not between it and the send (the booked moment),
                # not while a slow Bot API answers.
                with CpuSlots.released():
                    if slot.wait > 0:
                        time.sleep(slot.wait)
                        if pacer.closed_for(chat_id) > 0:
                            continue  # a 429 closed the lane while this call waited: book again
                    return self.request(method, params)
            except TelegramApiError as exc:
                if exc.error_code != 429:
                    raise
                wait = retry_after(exc)
                metrics.inc(metrics.TELEGRAM_RETRY_AFTER, wait)
                storm = pacer.close(chat_id, wait)
                logger.warning(
                    "telegram 429 method=%s chat_id=%s retry_after=%s global=%s",
                    method, chat_id, wait, storm,
                )  # fmt: skip
                if priority != Priority.ANSWER:
                    return None
        raise SendDeferred(pacer.closed_for(chat_id) or 1.0)

    # -- the calls the product makes -------------------------------------------------------------
    def send_message(
        self,
        chat_id: int,
        text: str,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
        parse_mode: str | None = None,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
    ) -> dict[str, Any]:
        """Send a message; a reply to a message that is gone is sent anyway.

        ``message_thread_id`` puts it in a forum topic of a supergroup.

        Returns:
            Telegram's ``Message`` as a dict.
        """
        reply = (
            {"message_id": reply_to_message_id, "allow_sending_without_reply": True}
            if reply_to_message_id
            else None
        )
        return self.call(
            "sendMessage",
            {
                "chat_id": chat_id,
                "text": text,
                "parse_mode": parse_mode,
                "reply_markup": _markup(reply_markup),
                "reply_parameters": reply,
                "message_thread_id": message_thread_id or None,
            },
        )

    def send_message_draft(self, chat_id: int, draft_id: int, text: str) -> bool:
        """Show a growing answer in a private chat (Bot API 9.5 ``sendMessageDraft``).

        Drafts are previews: never waited for (skipped when the chat's or the bot's lane has
        no spare room), and turned off for the process when the Bot API does not know the
        method (an older self-hosted server), so the caller falls back to "typing…".

        Args:
            chat_id: The private chat.
            draft_id: Non-zero; the same id for every update of one answer (animated).
            text: The text so far (plain; at most 4096 characters).

        Returns:
            Whether the draft was shown (False: skipped, or drafts are unsupported).

        Raises:
            ChatUnreachable: When the chat is marked unreachable.
        """
        state: _State = current_app.extensions["telegram"]
        if not state.drafts_supported:
            return False
        try:
            shown = self.call(
                "sendMessageDraft",
                {"chat_id": chat_id, "draft_id": draft_id, "text": text},
                priority=Priority.DRAFT,
            )
        except TelegramApiError as exc:
            description = (exc.description or "").lower()
            if exc.error_code == 404 or "method not found" in description:
                state.drafts_supported = False
                logger.warning("the Bot API has no sendMessageDraft; answers show typing only")
                return False
            raise
        return shown is not None

    def answer_callback_query(self, query_id: str, text: str | None = None) -> Any:
        """Answer a button press (the toast)."""
        return self.call("answerCallbackQuery", {"callback_query_id": query_id, "text": text})

    def edit_message_text(
        self,
        text: str,
        chat_id: int,
        message_id: int,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> Any:
        """Replace the text (and keyboard) of a message the bot sent."""
        return self.call(
            "editMessageText",
            {
                "chat_id": chat_id,
                "message_id": message_id,
                "text": text,
                "reply_markup": _markup(reply_markup),
            },
        )

    def send_chat_action(
        self, chat_id: int, action: str = "typing", message_thread_id: int | None = None
    ) -> Any:
        """Show "typing…" (or another action) for a few seconds, when the lanes have room.

        Skipped (None) when the chat's or the bot's lane is busy, or when the chat was shown an
        action less than 5 s ago. ``message_thread_id``: the forum topic it shows in.
        """
        params = {"chat_id": chat_id, "action": action, "message_thread_id": message_thread_id}
        return self.call("sendChatAction", params, priority=Priority.TYPING)

    def me(self) -> dict[str, Any]:
        """The bot's own ``User`` (``getMe``), read once per token and process.

        Kept in process memory and in Redis (a day), so a fleet of workers and listeners asks
        Telegram once per token change, not once per process start.

        Returns:
            ``getMe``'s ``User`` (``id``, ``username``, ``first_name`` …).

        Raises:
            BotNotConfigured: When no token is set.
            TelegramApiError: When Telegram refuses ``getMe``.
            BotApiUnavailable: When it cannot be reached.
        """
        state: _State = current_app.extensions["telegram"]
        fingerprint = hashlib.sha256(self.token().encode()).hexdigest()[:16]
        if state.me is not None and state.me[0] == fingerprint:
            return state.me[1]
        key = f"{KEY_PREFIX}bot:me:{fingerprint}"
        client = self._redis.client
        cached = client.get(key)
        if cached is not None:
            user = json.loads(cached)
        else:
            user = self.call("getMe")
            client.set(key, json.dumps(user), ex=ME_SECONDS)
        state.me = (fingerprint, user)
        return user

    def get_file(self, file_id: str) -> dict[str, Any]:
        """Where a file the bot received can be downloaded (``getFile``; retried, not paced).

        Args:
            file_id: The file's id from the message.

        Returns:
            Telegram's ``File`` (``file_path``, ``file_size`` …).

        Raises:
            TelegramApiError: When Telegram refuses (an unknown id, a file over 20 MB).
        """
        return self.call("getFile", {"file_id": file_id})

    def download(self, file_path: str, max_bytes: int) -> bytes:
        """Download a file ``getFile`` pointed to (retried on 5xx and network errors).

        Args:
            file_path: ``File.file_path``.
            max_bytes: The most the caller accepts; a longer body is refused unread.

        Returns:
            The file's bytes.

        Raises:
            FileTooLarge: When the file is longer than ``max_bytes``.
            TelegramApiError: When the file server answers 4xx.
            BotApiUnavailable: When it cannot be reached (after the retries).
        """
        return call_with_retries(self._download_once, file_path, max_bytes)

    def _download_once(self, file_path: str, max_bytes: int) -> bytes:
        state: _State = current_app.extensions["telegram"]
        url = f"{state.base_url}/file/bot{self.token()}/{urllib.parse.quote(file_path)}"
        try:
            response = state.pool.request(
                "GET",
                url,
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            metrics.inc(metrics.TELEGRAM_CALLS, method="download", outcome="network")
            raise BotApiUnavailable(f"download: {type(exc).__name__}") from exc
        complete = False
        try:
            if response.status >= 400:
                outcome = "5xx" if response.status >= 500 else "4xx"
                metrics.inc(metrics.TELEGRAM_CALLS, method="download", outcome=outcome)
                answer = {"ok": False, "error_code": response.status, "description": "download"}
                raise TelegramApiError("download", response, answer)
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise FileTooLarge(int(length))
            data = bytearray()
            for block in response.stream(65536):
                data += block
                if len(data) > max_bytes:
                    raise FileTooLarge(len(data))
            complete = True
        except urllib3.exceptions.HTTPError as exc:
            metrics.inc(metrics.TELEGRAM_CALLS, method="download", outcome="network")
            raise BotApiUnavailable(f"download: {type(exc).__name__}") from exc
        finally:
            if complete:
                response.release_conn()
            elif response.status >= 400:
                response.drain_conn()  # an error's body is short: read it, reuse the connection
                response.release_conn()
            else:
                response.close()  # a body refused half-read: drop the connection, read no more
        metrics.inc(metrics.TELEGRAM_CALLS, method="download", outcome="ok")
        return bytes(data)

    def get_webhook_info(self) -> dict[str, Any]:
        """Telegram's view of the webhook (``url``, ``pending_update_count``, last error)."""
        return self.call("getWebhookInfo")

    def set_webhook(self, url: str, secret_token: str) -> Any:
        """Register the webhook URL with its secret header value."""
        return self.call("setWebhook", {"url": url, "secret_token": secret_token})

    def delete_webhook(self) -> Any:
        """Remove the webhook (safe when none is set)."""
        return self.call("deleteWebhook")

    def set_my_commands(
        self, commands: Iterable[tuple[str, str]], language_code: str | None = None
    ) -> Any:
        """Publish the command menu for a language (None: the default menu).

        Args:
            commands: ``(command, description)`` pairs.
            language_code: A two-letter language, or None.
        """
        listed = [{"command": name, "description": text} for name, text in commands]
        return self.call("setMyCommands", {"commands": listed, "language_code": language_code})

    def get_updates(self, offset: int | None, timeout: int) -> list[dict[str, Any]]:
        """Long-poll for updates, as raw dicts (no retry: the listener polls again).

        Args:
            offset: The first update id wanted (acknowledges the ones before it).
            timeout: Seconds of the long poll.

        Returns:
            The updates as Telegram sent them.
        """
        return self.request(
            "getUpdates", {"offset": offset, "timeout": timeout}, timeout=timeout + READ_TIMEOUT
        )

    def send_parts(
        self,
        chat_id: int,
        parts: list[OutgoingPart],
        *,
        skip: int = 0,
        on_sent: Callable[[int], None] | None = None,
        thread_id: int | None = None,
    ) -> None:
        """Send prepared parts in order, from part ``skip`` on; report each one sent.

        A part whose HTML Telegram rejects is sent again as plain text.

        Args:
            chat_id: Where to send.
            parts: The parts.
            skip: Parts already sent earlier (not sent again).
            on_sent: Called with a part's index once Telegram accepted it.
            thread_id: The forum topic (None: the chat itself).

        Raises:
            TelegramApiError: When Telegram keeps refusing a part.
        """
        for index, part in enumerate(parts):
            if index < skip:
                continue
            options: dict[str, Any] = {
                "reply_markup": part.reply_markup,
                "reply_to_message_id": part.reply_to_message_id,
                "message_thread_id": thread_id,
            }
            if part.html is None:
                self.send_message(chat_id, part.text, **options)
            else:
                try:
                    self.send_message(chat_id, part.html, parse_mode="HTML", **options)
                except TelegramApiError as exc:
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
