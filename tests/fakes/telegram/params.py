"""Reading a request's parameters the way the Bot API does.

Parameters come from the query string and from urlencoded, multipart or JSON bodies
(:func:`_parse_body`); JSON-typed, integer and boolean parameters sent as strings are then
decoded (:func:`_decode_params`).
"""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.formparser import parse_form_data

from tests.fakes.telegram.answers import _bad_request
from tests.fakes.telegram.records import UploadedFile

logger = logging.getLogger(__name__)

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
        "prices",
        "suggested_tip_amounts",
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
        "max_tip_amount",
        "photo_size",
        "photo_width",
        "photo_height",
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
        "ok",
        "need_name",
        "need_phone_number",
        "need_email",
        "need_shipping_address",
        "send_phone_number_to_provider",
        "send_email_to_provider",
        "is_flexible",
    }
)
_TRUE_STRINGS = frozenset({"true", "1"})
_FALSE_STRINGS = frozenset({"false", "0", ""})
_INTEGER_RE = re.compile(r"-?\d+")


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
