"""How requests are read and answered: paths, tokens, method names, parameter encodings."""

from __future__ import annotations

import json

import pytest
import requests
import telebot

from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram.tests.support import CHAT, HANG_GUARD

# ------------------------------------------------------------------------------ basics


def test_get_me_returns_the_bot_user(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """GetMe answers the bot user derived from the token."""
    me = bot.get_me()

    assert me.id == 123456
    assert me.is_bot is True
    assert me.username == "ai_router_test_bot"
    assert fake_telegram.calls("GETME")[0].http_method in ("GET", "POST")


def test_unknown_token_and_unknown_method(fake_telegram: FakeTelegram) -> None:
    """A wrong token answers 401 and an unknown method 404, in Telegram's shape."""
    wrong = requests.get(f"{fake_telegram.url}/bot1:WRONG/getMe", timeout=HANG_GUARD)
    unknown = requests.get(
        fake_telegram.api_url_template.format(fake_telegram.token, "sendPigeon"),
        timeout=HANG_GUARD,
    )

    assert wrong.status_code == 401
    assert wrong.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert unknown.status_code == 404
    assert unknown.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert [call.method for call in fake_telegram.calls("sendpigeon")] == ["sendPigeon"]


def test_method_names_are_case_insensitive(fake_telegram: FakeTelegram) -> None:
    """Like Telegram, SENDMESSAGE is sendMessage; the call is recorded under the real name."""
    response = requests.post(
        fake_telegram.api_url_template.format(fake_telegram.token, "SENDMESSAGE"),
        params={"chat_id": CHAT, "text": "hi"},
        timeout=HANG_GUARD,
    )

    assert response.json()["ok"] is True
    assert fake_telegram.calls("sendMessage")[0].method == "sendMessage"


# ------------------------------------------------------------------------------ parameter encodings


@pytest.mark.parametrize("encoding", ["query-get", "query-post", "json", "form", "multipart"])
def test_parameters_in_every_encoding(fake_telegram: FakeTelegram, encoding: str) -> None:
    """Parameters are read from the query string and from JSON, form and multipart bodies."""
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
    url = fake_telegram.api_url_template.format(fake_telegram.token, "sendMessage")
    fields = {"chat_id": str(CHAT), "text": f"via {encoding}", "reply_markup": json.dumps(markup)}
    if encoding == "query-get":
        response = requests.get(url, params=fields, timeout=HANG_GUARD)
    elif encoding == "query-post":
        response = requests.post(url, params=fields, timeout=HANG_GUARD)
    elif encoding == "json":
        body = {"chat_id": CHAT, "text": f"via {encoding}", "reply_markup": markup}
        response = requests.post(url, json=body, timeout=HANG_GUARD)
    elif encoding == "form":
        response = requests.post(url, data=fields, timeout=HANG_GUARD)
    else:
        multipart = {key: (None, value) for key, value in fields.items()}
        response = requests.post(url, files=multipart, timeout=HANG_GUARD)

    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["text"] == f"via {encoding}"
    assert result["chat"]["id"] == CHAT
    assert result["reply_markup"] == markup
    call = fake_telegram.calls("sendMessage")[0]
    assert call.params["chat_id"] == CHAT
    assert call.params["reply_markup"] == markup
    assert call.http_method == ("GET" if encoding == "query-get" else "POST")


def test_multipart_file_parts_are_recorded(fake_telegram: FakeTelegram) -> None:
    """A file part of a multipart body is recorded as an UploadedFile."""
    url = fake_telegram.api_url_template.format(fake_telegram.token, "setMyDescription")
    response = requests.post(
        url,
        data={"description": "d"},
        files={"photo": ("a.png", b"\x89PNG", "image/png")},
        timeout=HANG_GUARD,
    )

    assert response.json() == {"ok": True, "result": True}
    params = fake_telegram.calls("setMyDescription")[0].params
    assert params["description"] == "d"
    assert (params["photo"].filename, params["photo"].data) == ("a.png", b"\x89PNG")


def test_invalid_json_parameter_is_a_bad_request(fake_telegram: FakeTelegram) -> None:
    """A reply_markup that is not JSON answers Telegram's parse error."""
    response = requests.post(
        fake_telegram.api_url_template.format(fake_telegram.token, "sendMessage"),
        params={"chat_id": CHAT, "text": "x", "reply_markup": "{not json"},
        timeout=HANG_GUARD,
    )

    assert response.status_code == 400
    assert response.json()["description"] == (
        "Bad Request: can't parse reply keyboard markup JSON object"
    )
