"""A fake Telegram Bot API server for tests.

:class:`FakeTelegram` is a real HTTP server on ``127.0.0.1`` (a random free port) that answers
``/bot<token>/<method>`` the way ``api.telegram.org`` does, so the product can be driven through
its real client (pyTelegramBotAPI) by pointing ``telebot.apihelper.API_URL`` at
:attr:`FakeTelegram.api_url_template`. Tests drive the "user side" with :meth:`inject_message`,
:meth:`press_button` and :meth:`inject_update`, and inspect what the bot did with :meth:`calls`,
:meth:`wait_for_call` and :meth:`messages`.

Behaviour that mirrors Telegram:

* parameters are read from the query string (GET and POST), from urlencoded, multipart and JSON
  bodies; JSON-typed parameters sent as strings (``reply_markup``, ``commands``...) are decoded;
* answers are ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
  "description": ..., "parameters": ...}`` with the HTTP status equal to ``error_code``;
* ``getUpdates`` is a real long poll with offset acknowledgement and ``allowed_updates``; a newer
  ``getUpdates`` terminates an older one with 409, and an active webhook forbids it (409);
* with a webhook set, updates are POSTed to it one at a time, in order, and retried on failure;
* ``parse_mode=HTML`` is validated like Telegram's parser (a port of TDLib's ``parse_html``), the
  stored message holds the parsed text and entities (offsets in UTF-16 code units) and the
  leading/trailing whitespace is trimmed.

Deliberate differences: a ``&`` that does not start ``&lt;``, ``&gt;``, ``&amp;``, ``&quot;`` or a
numeric reference is rejected (Telegram keeps it literally; pass ``strict_html_entities=False``
to get that), webhooks may use plain ``http://`` URLs on any port, ``Markdown``/``MarkdownV2``
text is stored unparsed, and only the methods listed in :data:`SUPPORTED_METHODS` exist (any
other answers 404 ``Not Found``, so an unexpected call is loud).
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from werkzeug.formparser import parse_form_data

logger = logging.getLogger(__name__)

#: Maximum length of a message text after entity parsing (Unicode code points).
MAX_MESSAGE_LENGTH = 4096

#: Maximum size of ``callback_data`` of an inline keyboard button, in bytes.
MAX_CALLBACK_DATA_BYTES = 64

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)
POLLING_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is "
    "running"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"

_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}

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

# Update types delivered when allowed_updates is unset or empty.
_NOT_DELIVERED_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

# Parameters whose value is a JSON-serialized object or array.
_JSON_PARAMS = frozenset(
    {
        "reply_markup",
        "commands",
        "allowed_updates",
        "scope",
        "reply_parameters",
        "entities",
        "caption_entities",
        "link_preview_options",
        "media",
        "results",
        "menu_button",
        "rights",
    }
)
# Parameters that are integers when they look like one (chat_id may also be "@channel").
_INT_PARAMS = frozenset(
    {
        "chat_id",
        "message_id",
        "draft_id",
        "offset",
        "limit",
        "timeout",
        "reply_to_message_id",
        "max_connections",
        "user_id",
        "message_thread_id",
        "cache_time",
        "from_chat_id",
    }
)
_BOOL_PARAMS = frozenset(
    {
        "show_alert",
        "drop_pending_updates",
        "disable_notification",
        "protect_content",
        "allow_sending_without_reply",
        "disable_web_page_preview",
        "can_stop",
        "keep_on_stop",
        "allow_paid_broadcast",
        "for_channels",
    }
)
_TRUE_STRINGS = frozenset({"true", "1"})
_FALSE_STRINGS = frozenset({"false", "0", ""})

_INLINE_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)

_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_BOT_COMMAND_ENTITY_RE = re.compile(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_])")
_INTEGER_RE = re.compile(r"-?\d+")
_PATH_RE = re.compile(r"/bot([^/]*)/([^/]*)")


# --------------------------------------------------------------------------------------------
# Public records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One Bot API request the fake answered.

    Attributes:
        method: The canonical method name (``sendMessage``), or the name as sent for an unknown
            method.
        params: The decoded parameters: JSON-typed values decoded, integer and boolean
            parameters converted, uploaded files as :class:`UploadedFile`. ``text`` is the raw
            text the bot sent (before HTML parsing).
        http_method: ``GET`` or ``POST``.
        at: ``time.time()`` when the request arrived.
        response: The JSON object answered.
        status: The HTTP status answered.
        token: The token in the request path.
    """

    method: str
    params: dict[str, Any]
    http_method: str
    at: float
    response: dict[str, Any]
    status: int = 200
    token: str = ""

    @property
    def ok(self) -> bool:
        """Whether the call succeeded (``response["ok"]``)."""
        return bool(self.response.get("ok"))

    @property
    def result(self) -> Any:
        """The ``result`` of a successful call, None for a failed one."""
        return self.response.get("result")


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request.

    Attributes:
        filename: The file name the client gave.
        content_type: The part's content type.
        data: The file's bytes.
    """

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver an update to the webhook.

    Attributes:
        update_id: The update delivered.
        url: The webhook URL.
        status_code: The receiver's HTTP status, None when no answer came.
        error: Why the attempt failed, None on success.
        at: ``time.time()`` when the attempt finished.
    """

    update_id: int
    url: str
    status_code: int | None
    error: str | None
    at: float

    @property
    def ok(self) -> bool:
        """Whether the receiver accepted the update (answered 2xx)."""
        return self.error is None


class HtmlParseError(ValueError):
    """Raised by :func:`parse_html` for text Telegram would reject (``can't parse entities``)."""


class _ApiError(Exception):
    """An error answer of the Bot API."""

    def __init__(
        self, error_code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = dict(self.parameters)
        return body


def _bad_request(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


@dataclass
class _Described:
    """A successful result with a ``description`` next to it (setWebhook, deleteWebhook)."""

    result: Any
    description: str


@dataclass
class _Failure:
    error_code: int
    description: str
    parameters: dict[str, Any] | None
    remaining: int


# --------------------------------------------------------------------------------------------
# Telegram's HTML parser
# --------------------------------------------------------------------------------------------

_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SIMPLE_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
}
_NAMED_HTML_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_SPACE = " \t\r\n\f\v"


def utf16_length(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram's entity offsets.

    Args:
        text: Any string.

    Returns:
        The number of UTF-16 code units.
    """
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _decode_html_entity(text: str, pos: int, *, strict: bool) -> tuple[str | None, int]:
    """Decode the character reference at ``text[pos] == "&"``.

    Returns:
        The decoded character and the index after the reference, or (None, pos) when ``pos``
        does not start a reference Telegram understands. In strict mode the ``;`` is required.
    """
    end = pos + 1
    length = len(text)
    code = 0
    if end < length and text[end] == "#":
        end += 1
        if end < length and text[end] == "x":
            end += 1
            digits_start = end
            while end < length and text[end] in "0123456789abcdefABCDEF":
                code = code * 16 + int(text[end], 16)
                end += 1
                if code >= 0x10FFFF:
                    return None, pos
        else:
            digits_start = end
            while end < length and "0" <= text[end] <= "9":
                code = code * 10 + int(text[end])
                end += 1
                if code >= 0x10FFFF:
                    return None, pos
        if end == digits_start or code == 0 or 0xD800 <= code <= 0xDFFF:
            return None, pos
        char = chr(code)
    else:
        while end < length and text[end].isascii() and text[end].isalpha():
            end += 1
        name = text[pos + 1 : end]
        if name not in _NAMED_HTML_ENTITIES:
            return None, pos
        char = _NAMED_HTML_ENTITIES[name]
    if end < length and text[end] == ";":
        return char, end + 1
    if strict:
        return None, pos
    return char, end


@dataclass
class _OpenTag:
    name: str
    argument: str
    offset: int  # UTF-16 offset in the parsed text
    out_index: int  # index into the output pieces
    begin: int  # index of "<" in the source


def parse_html(text: str, *, strict_entities: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram-flavoured HTML into plain text and message entities.

    A port of TDLib's ``parse_html``: only Telegram's tags are allowed, tags must be properly
    nested and closed, a bare ``<`` is an error, and the error messages are Telegram's.

    Args:
        text: The text as sent with ``parse_mode=HTML``.
        strict_entities: Reject a ``&`` that does not start ``&lt;``, ``&gt;``, ``&amp;``,
            ``&quot;`` or ``&#NN;``/``&#xNN;`` (Telegram itself keeps such a ``&`` literally and
            accepts a missing ``;``).

    Returns:
        The plain text (tags stripped, references decoded; not yet trimmed) and its entities,
        with ``offset``/``length`` in UTF-16 code units, sorted like Telegram sorts them.

    Raises:
        HtmlParseError: With Telegram's explanation, for text Telegram would reject.
    """
    out: list[str] = []
    offset16 = 0
    stack: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    length = len(text)
    i = 0

    def fail(message: str) -> HtmlParseError:
        return HtmlParseError(message)

    while i < length:
        char = text[i]
        if char == "&":
            decoded, end = _decode_html_entity(text, i, strict=strict_entities)
            if decoded is not None:
                out.append(decoded)
                offset16 += utf16_length(decoded)
                i = end
                continue
            if strict_entities:
                raise fail(
                    f'Character "&" must be escaped as "&amp;" at byte offset '
                    f"{_byte_offset(text, i)}"
                )
        if char != "<":
            out.append(char)
            offset16 += utf16_length(char)
            i += 1
            continue

        begin = i
        i += 1
        if i < length and text[i] == "/":
            # An end tag.
            if not stack:
                raise fail(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
            j = i + 1
            while j < length and text[j] not in _HTML_SPACE and text[j] != ">":
                j += 1
            end_name = text[i + 1 : j].lower()
            while j < length and text[j] in _HTML_SPACE:
                j += 1
            if j >= length or text[j] != ">":
                raise fail(f"Unclosed end tag at byte offset {_byte_offset(text, begin)}")
            tag = stack.pop()
            if end_name and end_name != tag.name:
                raise fail(
                    f"Unmatched end tag at byte offset {_byte_offset(text, begin)}, "
                    f'expected "</{tag.name}>", found "</{end_name}>"'
                )
            _close_html_tag(tag, offset16, out, entities)
            i = j + 1
            continue

        # A start tag.
        j = i
        while j < length and text[j] not in _HTML_SPACE and text[j] != ">":
            j += 1
        if j >= length:
            raise fail(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
        name = text[i:j].lower()
        if name not in _HTML_TAGS:
            raise fail(f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, begin)}')
        argument = ""
        while True:
            while j < length and text[j] in _HTML_SPACE:
                j += 1
            if j >= length:
                raise fail(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
            if text[j] == ">":
                break
            attribute_begin = j
            while j < length and text[j] not in _HTML_SPACE and text[j] not in "=>":
                j += 1
            attribute = text[attribute_begin:j].lower()
            if not attribute:
                raise fail(
                    f'Empty attribute name in the tag "{name}" at byte offset '
                    f"{_byte_offset(text, begin)}"
                )
            while j < length and text[j] in _HTML_SPACE:
                j += 1
            if j >= length:
                raise fail(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
            if text[j] != "=":
                if name == "blockquote" and attribute == "expandable":
                    argument = "expandable"
                    continue
                raise fail(
                    f'Expected equal sign in declaration of an attribute of the tag "{name}" '
                    f"at byte offset {_byte_offset(text, begin)}"
                )
            j += 1
            while j < length and text[j] in _HTML_SPACE:
                j += 1
            if j >= length:
                raise fail(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
            if text[j] in "'\"":
                quote = text[j]
                j += 1
                value_chars: list[str] = []
                while j < length and text[j] != quote:
                    if text[j] == "&":
                        decoded, end = _decode_html_entity(text, j, strict=strict_entities)
                        if decoded is not None:
                            value_chars.append(decoded)
                            j = end
                            continue
                        if strict_entities:
                            raise fail(
                                f'Character "&" must be escaped as "&amp;" at byte offset '
                                f"{_byte_offset(text, j)}"
                            )
                    value_chars.append(text[j])
                    j += 1
                if j >= length:
                    raise fail(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
                j += 1
                value = "".join(value_chars)
            else:
                token_begin = j
                while j < length and ((text[j].isascii() and text[j].isalnum()) or text[j] in ".-"):
                    j += 1
                value = text[token_begin:j].lower()
                if j >= length:
                    raise fail(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
                if text[j] not in _HTML_SPACE and text[j] != ">":
                    raise fail(
                        f"Unexpected end of name token at byte offset "
                        f"{_byte_offset(text, token_begin)}"
                    )
            if name == "a" and attribute == "href":
                argument = value
            elif name == "code" and attribute == "class" and value.startswith("language-"):
                argument = value[len("language-") :]
            elif name == "span" and attribute == "class" and value.startswith("tg-"):
                argument = value[len("tg-") :]
            elif name == "tg-emoji" and attribute == "emoji-id":
                argument = value
            elif name == "blockquote" and attribute == "expandable":
                argument = "expandable"
        if name == "span" and argument != "spoiler":
            raise fail(
                f'Tag "span" must have class "tg-spoiler" at byte offset '
                f"{_byte_offset(text, begin)}"
            )
        stack.append(_OpenTag(name, argument, offset16, len(out), begin))
        i = j + 1

    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    for entity in entities:
        entity.pop("_language", None)
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(out), entities


def _close_html_tag(
    tag: _OpenTag, offset16: int, out: list[str], entities: list[dict[str, Any]]
) -> None:
    """Turn a closed tag into an entity (none for an empty one)."""
    length16 = offset16 - tag.offset
    if tag.name == "tg-emoji" and not _INTEGER_RE.fullmatch(tag.argument or "x"):
        raise HtmlParseError("Invalid custom emoji identifier specified")
    if length16 <= 0:
        return
    entity: dict[str, Any] = {"offset": tag.offset, "length": length16}
    if tag.name in ("a",):
        url = tag.argument or "".join(out[tag.out_index :])
        match = re.fullmatch(r"tg://user\?id=(\d+)", url)
        if match:
            entity["type"] = "text_mention"
            entity["user"] = {"id": int(match.group(1)), "is_bot": False, "first_name": ""}
        else:
            entity["type"] = "text_link"
            entity["url"] = url
    elif tag.name == "tg-emoji":
        entity["type"] = "custom_emoji"
        entity["custom_emoji_id"] = tag.argument
    elif tag.name == "blockquote":
        entity["type"] = "expandable_blockquote" if tag.argument else "blockquote"
    elif tag.name == "code":
        entity["type"] = "code"
        if tag.argument:
            entity["_language"] = tag.argument
    elif tag.name == "pre":
        entity["type"] = "pre"
        last = entities[-1] if entities else None
        if (
            last is not None
            and last["type"] == "code"
            and last["offset"] == tag.offset
            and last["length"] == length16
        ):
            # <pre><code class="language-x">...</code></pre> is one pre entity with a language.
            entities.pop()
            if last.get("_language"):
                entity["language"] = last["_language"]
    else:
        entity["type"] = _SIMPLE_ENTITY_TYPES[tag.name]
    entities.append(entity)


def _strip_text(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Trim leading/trailing whitespace like Telegram, shifting and clipping the entities."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    left16 = utf16_length(text[: len(text) - len(text.lstrip())])
    total16 = utf16_length(stripped)
    kept = []
    for entity in entities:
        start = max(0, entity["offset"] - left16)
        end = min(total16, entity["offset"] + entity["length"] - left16)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


# --------------------------------------------------------------------------------------------
# Parameter decoding
# --------------------------------------------------------------------------------------------


def _decode_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Decode JSON-typed, integer and boolean parameters the way the Bot API reads them."""
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            if key in _JSON_PARAMS:
                try:
                    value = json.loads(value)
                except ValueError as exc:
                    if key == "reply_markup":
                        raise _bad_request("can't parse reply keyboard markup JSON object") from exc
                    raise _bad_request(f"can't parse {key} JSON object") from exc
            elif key in _INT_PARAMS and _INTEGER_RE.fullmatch(value.strip()):
                value = int(value.strip())
            elif key in _BOOL_PARAMS and value.strip().lower() in _TRUE_STRINGS | _FALSE_STRINGS:
                value = value.strip().lower() in _TRUE_STRINGS
        params[key] = value
    return params


def _parse_body(content_type: str, body: bytes) -> dict[str, Any]:
    """Read the parameters of a request body (urlencoded, multipart or JSON)."""
    if not body:
        return {}
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json":
        try:
            data = json.loads(body.decode("utf-8"))
        except ValueError as exc:
            raise _bad_request("can't parse JSON request body") from exc
        if not isinstance(data, dict):
            raise _bad_request("JSON request body must be an object")
        return data
    if mime == "multipart/form-data":
        environ = {
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": content_type,
            "REQUEST_METHOD": "POST",
        }
        _, form, files = parse_form_data(environ)
        params: dict[str, Any] = {key: form[key] for key in form}
        for key in files:
            part = files[key]
            try:
                params[key] = UploadedFile(
                    filename=part.filename or "",
                    content_type=part.content_type or "application/octet-stream",
                    data=part.read(),
                )
            finally:
                part.close()
        return params
    if mime in ("application/x-www-form-urlencoded", ""):
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    logger.warning("FakeTelegram: ignoring a body of content type %r", content_type)
    return {}


def _int_param(params: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_request(f"invalid {name} specified")
    return value


def _update_type(update: dict[str, Any]) -> str:
    return next((key for key in update if key != "update_id"), "")


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the :class:`FakeTelegram` owning the server."""

    server_version = "FakeTelegram/1.0"
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, http_method: str) -> None:
        fake: FakeTelegram = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            status, payload = fake._handle_request(
                http_method, self.path, self.headers.get("Content-Type", ""), body
            )
        except Exception:  # a bug of the fake must not look like a hung server
            logger.exception("FakeTelegram failed to answer %s %s", http_method, self.path)
            status, payload = 500, _ApiError(500, "Internal Server Error").payload()
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("FakeTelegram: client went away before the answer to %s", self.path)

    def log_message(self, format: str, *args: Any) -> None:
        """Route http.server's access log to logging."""
        logger.debug("FakeTelegram %s - " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeTelegram


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------

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
)


class FakeTelegram:
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

        self._cond = threading.Condition()
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._webhook_thread: threading.Thread | None = None
        self._stopping = False

        self._next_update_id = first_update_id
        self._callback_ids = itertools.count(1)
        self._poll_generation = 0
        self._waiting_polls = 0
        self._methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            name.lower(): getattr(self, "_api_" + _snake(name)) for name in SUPPORTED_METHODS
        }
        self._canonical = {name.lower(): name for name in SUPPORTED_METHODS}
        self._clear_state()

    def _clear_state(self) -> None:
        """Forget everything except the update_id counter (callers hold the lock or own self)."""
        self._calls: list[Call] = []
        self._updates: list[dict[str, Any]] = []
        self._chats: dict[int, dict[int, dict[str, Any]]] = {}
        self._next_message_id: dict[int, int] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._failures: dict[str, _Failure] = {}
        self._drafts: list[dict[str, Any]] = []
        self._callback_queries: dict[str, dict[str, Any]] = {}
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._allowed_updates: list[str] | None = None
        self._webhook: dict[str, Any] | None = None
        self._last_error: tuple[int, str] | None = None
        self._next_delivery_at = 0.0
        self._deliveries: list[Delivery] = []

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

    def reset(self) -> None:
        """Forget calls, messages, updates, failures, drafts, commands and the webhook.

        The server keeps running and update ids keep increasing (a bot still polling with an
        old offset is not confused).
        """
        with self._cond:
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
    ) -> dict[str, Any]:
        """Queue an update with a text message a user sent to the bot.

        Args:
            user_id: The sender's id (also the private chat's id unless ``chat_id`` is given).
            text: The message text; a leading ``/command`` gets a ``bot_command`` entity.
            first_name: The sender's first name.
            username: The sender's username, if any.
            language_code: The sender's client language (None to omit it).
            chat_id: The chat, when not the sender's private chat.

        Returns:
            The queued update (a copy).
        """
        with self._cond:
            user = self._remember_user(user_id, first_name, username, language_code)
            chat_id = user_id if chat_id is None else chat_id
            message: dict[str, Any] = {
                "message_id": self._allocate_message_id(chat_id),
                "from": user,
                "chat": self._chat_object(chat_id),
                "date": int(time.time()),
                "text": text,
            }
            match = _BOT_COMMAND_ENTITY_RE.match(text)
            if match:
                message["entities"] = [
                    {"offset": 0, "length": utf16_length(match.group(0)), "type": "bot_command"}
                ]
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
            Dicts with ``chat_id``, ``draft_id``, ``text`` (parsed), ``entities``, ``raw_text``
            and ``at``.
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

    # ---------------------------------------------------------------- internals: state helpers

    def _enqueue(self, update: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self._next_update_id, **copy.deepcopy(update)}
        self._next_update_id += 1
        self._updates.append(update)
        self._cond.notify_all()
        logger.debug("FakeTelegram: queued update %s", update["update_id"])
        return copy.deepcopy(update)

    def _remember_user(
        self, user_id: int, first_name: str, username: str | None, language_code: str | None
    ) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        return copy.deepcopy(user)

    def _chat_object(self, chat_id: int) -> dict[str, Any]:
        if chat_id < 0:
            kind = "supergroup" if str(chat_id).startswith("-100") else "group"
            return {"id": chat_id, "title": "Test group", "type": kind}
        chat: dict[str, Any] = {"id": chat_id}
        user = self._users.get(chat_id)
        chat["first_name"] = user["first_name"] if user else "Test"
        if user and user.get("username"):
            chat["username"] = user["username"]
        chat["type"] = "private"
        return chat

    def _allocate_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _is_bot_message(self, message: dict[str, Any]) -> bool:
        return message.get("from", {}).get("id") == self.bot_user["id"]

    def _bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        return [m for m in self._chats.get(chat_id, {}).values() if self._is_bot_message(m)]

    def _is_allowed(self, update: dict[str, Any]) -> bool:
        kind = _update_type(update)
        if not self._allowed_updates:
            return kind not in _NOT_DELIVERED_BY_DEFAULT
        return kind in self._allowed_updates

    def _deliverable_updates(self) -> list[dict[str, Any]]:
        """The pending updates, after dropping those ``allowed_updates`` excludes."""
        kept = []
        for update in self._updates:
            if self._is_allowed(update):
                kept.append(update)
            else:
                logger.info(
                    "FakeTelegram: dropping update %s (%s): not in allowed_updates %s",
                    update["update_id"],
                    _update_type(update),
                    self._allowed_updates,
                )
        self._updates = kept
        return kept

    def _matching_calls(
        self, method: str | None, predicate: Callable[[Call], bool] | None
    ) -> list[Call]:
        wanted = method.lower() if method is not None else None
        return [
            call
            for call in self._calls
            if (wanted is None or call.method.lower() == wanted) and _matches(predicate, call)
        ]

    def _describe_wait_failure(
        self, method: str, count: int, found: list[Call], timeout: float
    ) -> str:
        summary = Counter(
            f"{call.method}" + ("" if call.ok else f" ({call.status})") for call in self._calls
        )
        recorded = ", ".join(f"{name} x{n}" for name, n in summary.items()) or "none"
        same = [c for c in self._calls if c.method.lower() == method.lower()][-5:]
        details = "".join(
            f"\n  {c.method} {c.params!r} -> {json.dumps(c.response, ensure_ascii=False)[:300]}"
            for c in same
        )
        return (
            f"timed out after {timeout} s waiting for {count} matching {method} call(s); "
            f"{len(found)} matched. Recorded calls: {recorded}."
            + (f" Last {method} calls:{details}" if details else "")
        )

    def _webhook_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self._webhook["url"] if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": sum(1 for u in self._updates if self._is_allowed(u)),
        }
        if self._last_error is not None:
            info["last_error_date"], info["last_error_message"] = self._last_error
        if self._webhook:
            info["max_connections"] = self._webhook["max_connections"]
            if self._webhook.get("ip_address"):
                info["ip_address"] = self._webhook["ip_address"]
        if self._allowed_updates:
            info["allowed_updates"] = list(self._allowed_updates)
        return info

    # ---------------------------------------------------------------- internals: HTTP dispatch

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
        message: dict[str, Any] = {
            "message_id": self._allocate_message_id(chat_id),
            "from": self._bot_sender(),
            "chat": self._chat_object(chat_id),
            "date": int(time.time()),
        }
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
        # An empty text is allowed: it shows a "Thinking..." placeholder.
        text, entities = self._message_text(params, allow_empty=True)
        self._drafts.append(
            {
                "chat_id": chat_id,
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

    # ---------------------------------------------------------------- internals: webhook

    def _webhook_loop(self) -> None:
        """Deliver pending updates to the webhook, one at a time, in order, retrying failures."""
        session = requests.Session()
        session.trust_env = False  # loopback only: never through a proxy from the environment
        try:
            while True:
                with self._cond:
                    while True:
                        if self._stopping:
                            return
                        hook = self._webhook
                        pending = self._deliverable_updates() if hook else []
                        wait: float | None = None
                        if hook and pending:
                            wait = self._next_delivery_at - time.monotonic()
                            if wait <= 0:
                                break
                        self._cond.wait(wait)
                    update = copy.deepcopy(pending[0])
                    url = hook["url"]
                    secret = hook["secret_token"]
                status, error = self._post_update(session, url, secret, update)
                with self._cond:
                    self._deliveries.append(
                        Delivery(update["update_id"], url, status, error, time.time())
                    )
                    if error is None:
                        self._updates = [
                            u for u in self._updates if u["update_id"] != update["update_id"]
                        ]
                    elif self._webhook is not None and self._webhook["url"] == url:
                        self._last_error = (int(time.time()), error)
                        self._next_delivery_at = time.monotonic() + self._webhook_retry_delay
                    self._cond.notify_all()
        finally:
            session.close()

    def _post_update(
        self, session: requests.Session, url: str, secret: str | None, update: dict[str, Any]
    ) -> tuple[int | None, str | None]:
        """POST one update; returns (status or None, error message or None)."""
        headers = {"Content-Type": "application/json"}
        if secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        body = json.dumps(update, ensure_ascii=False).encode("utf-8")
        try:
            response = session.post(
                url,
                data=body,
                headers=headers,
                timeout=self._webhook_timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            error = "Read timeout expired"
        except requests.ConnectionError as exc:
            error = "Connection refused" if "refused" in str(exc).lower() else f"{exc}"
        else:
            response.close()
            if 200 <= response.status_code < 300:
                logger.debug("FakeTelegram: delivered update %s", update["update_id"])
                return response.status_code, None
            reason = (response.reason or "").upper()
            message = f"Wrong response from the webhook: {response.status_code} {reason}".strip()
            logger.info("FakeTelegram: update %s: %s", update["update_id"], message)
            return response.status_code, message
        logger.info("FakeTelegram: update %s: %s", update["update_id"], error)
        return None, error


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _matches(predicate: Callable[[Any], bool] | None, item: Any) -> bool:
    """Apply a test's predicate; one that trips over a record's shape does not match it."""
    if predicate is None:
        return True
    try:
        return bool(predicate(item))
    except (KeyError, IndexError, TypeError, AttributeError):
        return False


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _set_or_drop(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value


def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
    scope = scope or {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(language_code or "")


def _callback_data_of(markup: dict[str, Any] | None) -> list[str]:
    if not markup:
        return []
    return [
        button["callback_data"]
        for row in markup.get("inline_keyboard", [])
        for button in row
        if "callback_data" in button
    ]


def _checked_reply_markup(markup: Any) -> dict[str, Any] | None:
    """Validate any reply markup; returns it (only an inline keyboard is echoed in Message)."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        return _checked_inline_markup(markup)
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad_request('field "keyboard" of the ReplyKeyboardMarkup must be an Array')
        return markup
    if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
        return markup
    raise _bad_request("can't parse reply keyboard markup JSON object")


def _checked_inline_markup(markup: Any) -> dict[str, Any] | None:
    """Validate an inline keyboard; returns a copy, or None for none/an empty keyboard."""
    if markup is None:
        return None
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        raise _bad_request("inline keyboard expected")
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad_request(
            'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
        )
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise _bad_request("can't parse inline keyboard button: Text must be a String")
            actions = [key for key in _INLINE_BUTTON_ACTIONS if key in button]
            if not actions:
                raise _bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the "
                    "inline keyboard"
                )
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not (
                    1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES
                ):
                    raise _bad_request("BUTTON_DATA_INVALID")
    if not any(rows):
        return None
    return copy.deepcopy(markup)
