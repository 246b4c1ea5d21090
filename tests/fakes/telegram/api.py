"""The Bot API itself: request dispatch and the methods of :data:`SUPPORTED_METHODS`.

:class:`_BotApi` answers one HTTP request (:meth:`_BotApi._handle_request`: path and token,
parameters, injected failures, the method, the recorded :class:`~.records.Call`) and implements
each method as ``_api_<snake_name>``, run with the lock held, returning the result or raising
:class:`~.answers._ApiError`.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.telegram.answers import (
    NOT_MODIFIED,
    POLLING_CONFLICT,
    QUERY_TOO_OLD,
    WEBHOOK_CONFLICT,
    _ApiError,
    _bad_request,
    _Described,
)
from tests.fakes.telegram.files import MAX_DOWNLOAD_SIZE
from tests.fakes.telegram.html import HtmlParseError, _strip_text, parse_html
from tests.fakes.telegram.markup import _checked_inline_markup, _checked_reply_markup
from tests.fakes.telegram.params import _decode_params, _int_param, _parse_body
from tests.fakes.telegram.payments import (
    _checked_invoice,
    _checked_invoice_markup,
    _invoice_object,
    _star_transaction,
)
from tests.fakes.telegram.records import Call
from tests.fakes.telegram.state import _commands_key, _FakeState

logger = logging.getLogger(__name__)

#: Maximum length of a message text after entity parsing (Unicode code points).
MAX_MESSAGE_LENGTH = 4096

#: The Bot API methods the fake implements (anything else answers 404 Not Found).
SUPPORTED_METHODS = (
    "getMe",
    "getUpdates",
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "sendMessageDraft",
    "answerCallbackQuery",
    "sendChatAction",
    "deleteMessage",
    "getFile",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "setMyDescription",
    "setMyShortDescription",
    "setMyName",
    "setChatMenuButton",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "sendInvoice",
    "answerPreCheckoutQuery",
    "refundStarPayment",
    "getStarTransactions",
)

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_PATH_RE = re.compile(r"/bot([^/]*)/([^/]*)")


class _BotApi(_FakeState):
    """The HTTP dispatch and the Bot API methods of the fake."""

    def _handle_request(
        self, http_method: str, target: str, content_type: str, body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Answer one HTTP request; returns (status, JSON payload)."""
        arrived = time.time()
        split = urlsplit(target)
        match = _PATH_RE.fullmatch(split.path)
        if match is None or not match.group(2):
            logger.warning("FakeTelegram: %s %s is not a Bot API path", http_method, target)
            return 404, _ApiError(404, "Not Found").payload()
        token, method_name = match.groups()
        method = self._canonical.get(method_name.lower(), method_name)
        raw: dict[str, Any] = dict(parse_qsl(split.query, keep_blank_values=True))
        params: dict[str, Any] = raw
        try:
            raw.update(_parse_body(content_type, body))
            if token != self.token:
                raise _ApiError(401, "Unauthorized")
            handler = self._methods.get(method_name.lower())
            if handler is None:
                raise _ApiError(404, "Not Found")
            params = _decode_params(raw)
            with self._cond:
                failure = self._failures.get(method.lower())
                if failure is not None:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        del self._failures[method.lower()]
                    raise _ApiError(failure.error_code, failure.description, failure.parameters)
                if self._flood is not None:
                    self._check_flood(method, params)
                result = handler(params)
            if isinstance(result, _Described):
                status, payload = (
                    200,
                    {
                        "ok": True,
                        "result": result.result,
                        "description": result.description,
                    },
                )
            else:
                status, payload = 200, {"ok": True, "result": result}
        except _ApiError as error:
            status, payload = error.error_code, error.payload()
        logger.debug("FakeTelegram: %s %s -> %s", method, params, status)
        with self._cond:
            self._calls.append(
                Call(
                    method=method,
                    params=params,
                    http_method=http_method,
                    at=arrived,
                    response=copy.deepcopy(payload),
                    status=status,
                    token=token,
                )
            )
            self._cond.notify_all()
        return status, payload

    def _check_flood(self, method: str, params: dict[str, Any]) -> None:
        """Refuse a call over the flood limits with Telegram's 429 (lock held)."""
        chat_id = params.get("chat_id")
        retry_after = self._flood.check(
            method,
            chat_id if isinstance(chat_id, int) and not isinstance(chat_id, bool) else None,
            time.monotonic(),
        )
        if retry_after is not None:
            raise _ApiError(
                429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
            )

    # ---------------------------------------------------------------- internals: API methods
    # Each runs with the lock held and returns the result or raises _ApiError.

    def _api_get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _api_get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self._webhook is not None:
            raise _ApiError(409, WEBHOOK_CONFLICT)
        offset = _int_param(params, "offset", 0) or 0
        limit = min(max(_int_param(params, "limit", 100) or 100, 1), 100)
        timeout = max(_int_param(params, "timeout", 0) or 0, 0)
        if "allowed_updates" in params:
            self._allowed_updates = self._checked_allowed_updates(params["allowed_updates"])
        self._poll_generation += 1
        generation = self._poll_generation
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        deadline = time.monotonic() + timeout
        waiting = False
        try:
            while True:
                if self._stopping:
                    return []
                if self._webhook is not None:
                    raise _ApiError(409, WEBHOOK_CONFLICT)
                if self._poll_generation != generation:
                    raise _ApiError(409, POLLING_CONFLICT)
                ready = self._deliverable_updates()[:limit]
                if ready:
                    return copy.deepcopy(ready)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                if not waiting:
                    waiting = True
                    self._waiting_polls += 1
                    self._cond.notify_all()
                self._cond.wait(remaining)
        finally:
            if waiting:
                self._waiting_polls -= 1

    def _api_send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._target_chat(params)
        text, entities = self._message_text(params, allow_empty=False)
        markup = _checked_reply_markup(params.get("reply_markup"))
        reply_to = self._reply_target(chat_id, params)
        thread_id = _int_param(params, "message_thread_id")
        message: dict[str, Any] = {
            "message_id": self._allocate_message_id(chat_id),
            "from": self._bot_sender(),
            "chat": self._chat_object(chat_id),
            "date": int(time.time()),
        }
        self._set_thread(message, thread_id)
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        message["text"] = text
        if entities:
            message["entities"] = entities
        if markup is not None and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        self._chats.setdefault(chat_id, {})[message["message_id"]] = message
        return copy.deepcopy(message)

    def _api_edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._editable_message(params)
        text, entities = self._message_text(params, allow_empty=False)
        markup = _checked_inline_markup(params.get("reply_markup"))
        if (
            message.get("text") == text
            and message.get("entities", []) == entities
            and message.get("reply_markup") == markup
        ):
            raise _bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        message["text"] = text
        _set_or_drop(message, "entities", entities or None)
        _set_or_drop(message, "reply_markup", markup)
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _api_edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._editable_message(params)
        markup = _checked_inline_markup(params.get("reply_markup"))
        if message.get("reply_markup") == markup:
            raise _bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        _set_or_drop(message, "reply_markup", markup)
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _api_send_message_draft(self, params: dict[str, Any]) -> bool:
        chat_id = self._target_chat(params)
        draft_id = _int_param(params, "draft_id")
        if not draft_id:
            raise _bad_request("draft_id must be non-zero")
        thread_id = _int_param(params, "message_thread_id")
        # An empty text is allowed: it shows a "Thinking..." placeholder.
        text, entities = self._message_text(params, allow_empty=True)
        self._drafts.append(
            {
                "chat_id": chat_id,
                "message_thread_id": thread_id,
                "draft_id": draft_id,
                "text": text,
                "entities": entities,
                "raw_text": params.get("text", ""),
                "at": time.time(),
            }
        )
        return True

    def _api_answer_callback_query(self, params: dict[str, Any]) -> bool:
        query = self._callback_queries.get(str(params.get("callback_query_id", "")))
        if query is None or query["answered"]:
            raise _bad_request(QUERY_TOO_OLD.removeprefix("Bad Request: "))
        query["answered"] = True
        return True

    def _api_send_chat_action(self, params: dict[str, Any]) -> bool:
        self._target_chat(params)
        _int_param(params, "message_thread_id")  # checked like Telegram does; nothing to show
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True

    def _api_delete_message(self, params: dict[str, Any]) -> bool:
        chat_id = self._target_chat(params)
        message_id = _int_param(params, "message_id")
        if message_id is None:
            raise _bad_request("message identifier is not specified")
        if self._chats.get(chat_id, {}).pop(message_id, None) is None:
            raise _bad_request("message to delete not found")
        return True

    def _api_get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params.get("file_id")
        stored = self._files.get(file_id) if isinstance(file_id, str) else None
        if stored is None:
            raise _bad_request("invalid file_id")
        if stored.file_size > MAX_DOWNLOAD_SIZE:
            raise _bad_request("file is too big")
        # From now on the path can be downloaded (Telegram keeps it valid for an hour at least).
        self._file_paths[stored.file_path] = stored.file_id
        return stored.file_object()

    def _api_set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad_request("can't parse commands JSON object")
        stored = []
        for item in commands:
            if not isinstance(item, dict):
                raise _bad_request("can't parse BotCommand JSON object")
            command = item.get("command")
            description = item.get("description")
            if not isinstance(command, str) or not _COMMAND_RE.fullmatch(command):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise _bad_request("command description must be non-empty")
            stored.append({"command": command, "description": description})
        key = _commands_key(params.get("scope"), params.get("language_code", ""))
        if stored:
            self._commands[key] = stored
        else:
            self._commands.pop(key, None)
        return True

    def _api_get_my_commands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        key = _commands_key(params.get("scope"), params.get("language_code", ""))
        return copy.deepcopy(self._commands.get(key, []))

    def _api_delete_my_commands(self, params: dict[str, Any]) -> bool:
        self._commands.pop(
            _commands_key(params.get("scope"), params.get("language_code", "")), None
        )
        return True

    def _api_set_my_description(self, params: dict[str, Any]) -> bool:
        return True

    def _api_set_my_short_description(self, params: dict[str, Any]) -> bool:
        return True

    def _api_set_my_name(self, params: dict[str, Any]) -> bool:
        return True

    def _api_set_chat_menu_button(self, params: dict[str, Any]) -> bool:
        return True

    def _api_set_webhook(self, params: dict[str, Any]) -> _Described:
        url = params.get("url") or ""
        if not isinstance(url, str):
            raise _bad_request("invalid webhook URL specified")
        if not url:
            return self._remove_webhook(bool(params.get("drop_pending_updates")))
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token") or None
        if secret is not None and not _SECRET_TOKEN_RE.fullmatch(str(secret)):
            raise _bad_request("secret token contains unallowed characters")
        max_connections = _int_param(params, "max_connections", 40) or 40
        if not 1 <= max_connections <= 100:
            raise _bad_request("invalid max_connections specified")
        if "allowed_updates" in params:
            self._allowed_updates = self._checked_allowed_updates(params["allowed_updates"])
        if params.get("drop_pending_updates"):
            self._updates.clear()
        hook = {
            "url": url,
            "secret_token": secret,
            "max_connections": max_connections,
            "ip_address": params.get("ip_address") or None,
        }
        if self._webhook == hook:
            return _Described(True, "Webhook is already set")
        if self._webhook is None or self._webhook["url"] != url:
            self._last_error = None
        self._webhook = hook
        self._next_delivery_at = 0.0
        self._cond.notify_all()
        return _Described(True, "Webhook was set")

    def _api_delete_webhook(self, params: dict[str, Any]) -> _Described:
        return self._remove_webhook(bool(params.get("drop_pending_updates")))

    def _api_get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._webhook_info()

    def _api_send_invoice(self, params: dict[str, Any]) -> dict[str, Any]:
        # Like the Bot API server: the invoice parameters are read before the chat.
        invoice = _checked_invoice(params)
        chat_id = self._target_chat(params)
        markup = _checked_invoice_markup(params.get("reply_markup"))
        reply_to = self._reply_target(chat_id, params)
        thread_id = _int_param(params, "message_thread_id")
        message: dict[str, Any] = {
            "message_id": self._allocate_message_id(chat_id),
            "from": self._bot_sender(),
            "chat": self._chat_object(chat_id),
            "date": int(time.time()),
        }
        self._set_thread(message, thread_id)
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        message["invoice"] = _invoice_object(invoice)
        if markup is not None:
            message["reply_markup"] = markup
        self._chats.setdefault(chat_id, {})[message["message_id"]] = message
        self._invoices.append(
            {"chat_id": chat_id, "message_id": message["message_id"], **invoice, "at": time.time()}
        )
        return copy.deepcopy(message)

    def _api_answer_pre_checkout_query(self, params: dict[str, Any]) -> bool:
        ok = params.get("ok") is True
        error_message = params.get("error_message") or ""
        if not ok and not error_message:
            raise _bad_request('parameter "error_message" is required')
        query = self._pre_checkout_queries.get(str(params.get("pre_checkout_query_id", "")))
        now = time.monotonic()
        if (
            query is None
            or query["answer"] is not None
            or now - query["injected_monotonic"] > self._pre_checkout_timeout
        ):
            raise _bad_request(QUERY_TOO_OLD.removeprefix("Bad Request: "))
        answer = {
            "pre_checkout_query_id": query["id"],
            "user_id": query["user_id"],
            "ok": ok,
            "error_message": None if ok else str(error_message),
            "total_amount": query["total_amount"],
            "invoice_payload": query["invoice_payload"],
            "answered_at": time.time(),
            "delay": now - query["injected_monotonic"],
        }
        query["answer"] = answer
        self._pre_checkout_answers.append(answer)
        return True

    def _api_refund_star_payment(self, params: dict[str, Any]) -> bool:
        user_id = _int_param(params, "user_id")
        if user_id is None:
            raise _bad_request("invalid user_id specified")
        charge_id = params.get("telegram_payment_charge_id")
        if not charge_id:
            raise _bad_request('parameter "telegram_payment_charge_id" is required')
        payment = self._payments.get(str(charge_id))
        if payment is None or payment["user_id"] != user_id:
            raise _bad_request("CHARGE_ID_INVALID")
        if payment["refunded"]:
            raise _bad_request("CHARGE_ALREADY_REFUNDED")
        payment["refunded"] = True
        now = time.time()
        self._refunds.append(
            {
                "telegram_payment_charge_id": payment["telegram_payment_charge_id"],
                "user_id": user_id,
                "total_amount": payment["total_amount"],
                "invoice_payload": payment["invoice_payload"],
                "at": now,
            }
        )
        self._star_transactions.append(_star_transaction(payment, refund=True, date=int(now)))
        return True

    def _api_get_star_transactions(self, params: dict[str, Any]) -> dict[str, Any]:
        offset = max(_int_param(params, "offset", 0) or 0, 0)
        limit = min(max(_int_param(params, "limit", 100) or 100, 1), 100)
        return {"transactions": copy.deepcopy(self._star_transactions[offset : offset + limit])}

    # ---------------------------------------------------------------- internals: API helpers

    def _remove_webhook(self, drop_pending_updates: bool) -> _Described:
        if drop_pending_updates:
            self._updates.clear()
        if self._webhook is None:
            return _Described(True, "Webhook is already deleted")
        self._webhook = None
        self._last_error = None
        self._cond.notify_all()
        return _Described(True, "Webhook was deleted")

    def _checked_allowed_updates(self, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad_request("can't parse allowed_updates JSON object")
        return list(value)

    def _set_thread(self, message: dict[str, Any], thread_id: int | None) -> None:
        """Put a message in a thread: ``message_thread_id`` (+ ``is_topic_message`` in a forum)."""
        if not thread_id:
            return
        message["message_thread_id"] = thread_id
        if self._groups.get(message["chat"]["id"], {}).get("is_forum"):
            message["is_topic_message"] = True

    def _bot_sender(self) -> dict[str, Any]:
        return {key: self.bot_user[key] for key in ("id", "is_bot", "first_name", "username")}

    def _target_chat(self, params: dict[str, Any]) -> int:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            raise _bad_request("chat not found")
        return chat_id

    def _message_text(
        self, params: dict[str, Any], *, allow_empty: bool
    ) -> tuple[str, list[dict[str, Any]]]:
        """Parse, trim and check the ``text`` parameter; returns (plain text, entities)."""
        raw = params.get("text")
        if raw is None:
            raw = ""
        if not isinstance(raw, str):
            raw = str(raw)
        parse_mode = params.get("parse_mode") or ""
        if not isinstance(parse_mode, str):
            raise _bad_request("unsupported parse_mode")
        mode = parse_mode.lower()
        if mode == "html":
            try:
                text, entities = parse_html(raw, strict_entities=self._strict_html_entities)
            except HtmlParseError as exc:
                raise _bad_request(f"can't parse entities: {exc}") from exc
        elif mode in ("", "markdown", "markdownv2"):
            text = raw
            given = params.get("entities") if mode == "" else None
            if given is not None and not isinstance(given, list):
                raise _bad_request("can't parse entities JSON object")
            entities = copy.deepcopy(given) if given else []
        else:
            raise _bad_request("unsupported parse_mode")
        text, entities = _strip_text(text, entities)
        if not text and not allow_empty:
            raise _bad_request("message text is empty")
        if len(text) > MAX_MESSAGE_LENGTH:
            raise _bad_request("message is too long")
        return text, entities

    def _reply_target(self, chat_id: int, params: dict[str, Any]) -> dict[str, Any] | None:
        reply = params.get("reply_parameters")
        if reply is None and params.get("reply_to_message_id") is not None:
            reply = {
                "message_id": params["reply_to_message_id"],
                "allow_sending_without_reply": params.get("allow_sending_without_reply", False),
            }
        if reply is None:
            return None
        if not isinstance(reply, dict) or not isinstance(reply.get("message_id"), int):
            raise _bad_request("can't parse reply parameters JSON object")
        target_chat = reply.get("chat_id", chat_id)
        target = self._chats.get(target_chat, {}).get(reply["message_id"])
        if target is None:
            if reply.get("allow_sending_without_reply"):
                return None
            raise _bad_request("message to be replied not found")
        target = copy.deepcopy(target)
        target.pop("reply_to_message", None)
        return target

    def _editable_message(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("inline_message_id"):
            raise _bad_request("MESSAGE_ID_INVALID")
        chat_id = self._target_chat(params)
        message_id = _int_param(params, "message_id")
        if message_id is None:
            raise _bad_request("message identifier is not specified")
        message = self._chats.get(chat_id, {}).get(message_id)
        if message is None:
            raise _bad_request("message to edit not found")
        if not self._is_bot_message(message):
            raise _bad_request("message can't be edited")
        return message


def _set_or_drop(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value
