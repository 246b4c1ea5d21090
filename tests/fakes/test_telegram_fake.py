"""Tests of the fake Telegram Bot API server, driven through pyTelegramBotAPI and requests."""

from __future__ import annotations

import html
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import telebot
from telebot import apihelper, types
from telebot.apihelper import ApiTelegramException

from tests.fakes.telegram import (
    NOT_MODIFIED,
    POLLING_CONFLICT,
    QUERY_TOO_OLD,
    WEBHOOK_CONFLICT,
    FakeTelegram,
    HtmlParseError,
    parse_html,
)

CHAT = 4242
# Generous bound used only so that a broken fake fails instead of hanging the suite.
HANG_GUARD = 15.0


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    """A started fake Telegram server, stopped after the test."""
    with FakeTelegram(webhook_retry_delay=0.05) as fake:
        yield fake


@pytest.fixture
def bot(fake_telegram: FakeTelegram) -> Iterator[telebot.TeleBot]:
    """A pyTelegramBotAPI client pointed at the fake (telebot's API_URL is module-global)."""
    saved = apihelper.API_URL
    apihelper.API_URL = fake_telegram.api_url_template
    try:
        yield telebot.TeleBot(fake_telegram.token, threaded=False)
    finally:
        apihelper.API_URL = saved


def _inline_keyboard(*data: str) -> types.InlineKeyboardMarkup:
    """An inline keyboard with one button per callback data."""
    markup = types.InlineKeyboardMarkup()
    for item in data:
        markup.add(types.InlineKeyboardButton(item.upper(), callback_data=item))
    return markup


def _api_error(call: Any, *args: Any, **kwargs: Any) -> ApiTelegramException:
    """Call a telebot method that must fail and return the exception."""
    with pytest.raises(ApiTelegramException) as caught:
        call(*args, **kwargs)
    return caught.value


class _Receiver:
    """A tiny webhook receiver: records every POST and answers with ``status``."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    receiver.received.append(
                        {"headers": dict(self.headers), "body": json.loads(body), "path": self.path}
                    )
                    status = receiver.status
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        """Block until ``count`` requests arrived; returns them."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, HANG_GUARD):
                raise AssertionError(f"receiver got {len(self.received)} of {count} requests")
            return list(self.received)

    def close(self) -> None:
        """Stop the server."""
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    """A local HTTP server standing in for the bot's webhook endpoint."""
    server = _Receiver()
    try:
        yield server
    finally:
        server.close()


def _free_port() -> int:
    """A loopback port nothing listens on (it was just released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def test_send_message_returns_a_message(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """SendMessage answers a Message with per-chat ids, the bot as sender and the keyboard."""
    first = bot.send_message(CHAT, "Hello", reply_markup=_inline_keyboard("a", "b"))
    second = bot.send_message(CHAT, "World")
    elsewhere = bot.send_message(CHAT + 1, "Other chat")

    assert isinstance(first, types.Message)
    assert (first.message_id, second.message_id, elsewhere.message_id) == (1, 2, 1)
    assert first.chat.id == CHAT
    assert first.chat.type == "private"
    assert first.from_user.is_bot is True
    assert first.text == "Hello"
    assert [b.callback_data for row in first.reply_markup.keyboard for b in row] == ["a", "b"]
    assert [m["text"] for m in fake_telegram.messages(CHAT)] == ["Hello", "World"]
    call = fake_telegram.calls("sendMessage")[0]
    assert call.params["chat_id"] == CHAT
    assert call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "a"


def test_reply_to_a_user_message(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """Replying embeds the replied message; replying to a missing message is a 400."""
    update = fake_telegram.inject_message(CHAT, "question")
    user_message_id = update["message"]["message_id"]

    reply = bot.send_message(
        CHAT, "answer", reply_parameters=types.ReplyParameters(message_id=user_message_id)
    )
    error = _api_error(
        bot.send_message, CHAT, "x", reply_parameters=types.ReplyParameters(message_id=999)
    )

    assert reply.reply_to_message.text == "question"
    assert reply.message_id == user_message_id + 1
    assert error.error_code == 400
    assert error.description == "Bad Request: message to be replied not found"


# ------------------------------------------------------------------------------ HTML and limits


def test_html_is_parsed_into_text_and_entities(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """The stored text is the parsed text; the call keeps the raw HTML."""
    raw = '<b>Hi</b> &lt;you&gt; &amp; <a href="https://x.example/?a=1&amp;b=2">link</a> &#x1F600;'

    message = bot.send_message(CHAT, raw, parse_mode="HTML")

    assert message.text == "Hi <you> & link 😀"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [
        ("bold", 0, 2),
        ("text_link", 11, 4),
    ]
    assert message.entities[1].url == "https://x.example/?a=1&b=2"
    assert fake_telegram.messages(CHAT)[0]["text"] == "Hi <you> & link 😀"
    assert fake_telegram.calls("sendMessage")[0].params["text"] == raw


@pytest.mark.parametrize(
    ("text", "explanation"),
    [
        ("<script>alert(1)</script>", 'Unsupported start tag "script" at byte offset 0'),
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("plain</b>", "Unexpected end tag at byte offset 5"),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("a <b", "Unclosed start tag at byte offset 2"),
        ("Tom & Jerry", 'Character "&" must be escaped as "&amp;" at byte offset 4'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
def test_html_violations_are_rejected(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram, text: str, explanation: str
) -> None:
    """Invalid HTML answers 400 can't parse entities, and no message is stored."""
    error = _api_error(bot.send_message, CHAT, text, parse_mode="HTML")

    assert error.error_code == 400
    assert error.description == f"Bad Request: can't parse entities: {explanation}"
    assert fake_telegram.messages(CHAT) == []


def test_html_accepts_escaped_text(bot: telebot.TeleBot) -> None:
    """Text escaped with html.escape is accepted and arrives unchanged."""
    original = "<script>alert('x') & \"y\"</script> 1 < 2"

    message = bot.send_message(CHAT, html.escape(original), parse_mode="HTML")

    assert message.text == original
    assert not message.entities


def test_html_allowed_tags() -> None:
    """Every tag Telegram allows parses, with entity offsets in UTF-16 code units."""
    text, entities = parse_html(
        "😀 <b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s>"
        '<strike>k</strike><del>d</del><span class="tg-spoiler">p</span><tg-spoiler>q</tg-spoiler>'
        '<a href="https://t.me">a</a><code>c</code><pre><code class="language-python">x=1</code>'
        "</pre><blockquote>q</blockquote><blockquote expandable>w</blockquote><tg-emoji "
        'emoji-id="5368324170671202286">👍</tg-emoji>'
    )

    assert text == "😀 bsieunskdpqacx=1qw👍"
    types_ = [(e["type"], e["offset"], e["length"]) for e in entities]
    assert types_[0] == ("bold", 3, 1)
    assert ("spoiler", 12, 1) in types_
    assert ("pre", 16, 3) in types_
    assert ("expandable_blockquote", 20, 1) in types_
    assert ("custom_emoji", 21, 2) in types_
    pre = next(e for e in entities if e["type"] == "pre")
    assert pre["language"] == "python"


def test_lenient_html_entities_mode_keeps_a_bare_ampersand() -> None:
    """With strict_entities=False a lone & is kept like Telegram does."""
    assert parse_html("Tom & Jerry &lt", strict_entities=False)[0] == "Tom & Jerry <"
    with pytest.raises(HtmlParseError):
        parse_html("Tom & Jerry")


def test_text_is_trimmed_and_entities_shifted(bot: telebot.TeleBot) -> None:
    """Leading and trailing whitespace is dropped, as Telegram does."""
    message = bot.send_message(CHAT, " \n<b>hi</b> there\n\n", parse_mode="HTML")

    assert message.text == "hi there"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bold", 0, 2)]


def test_too_long_and_empty_texts_are_rejected(bot: telebot.TeleBot) -> None:
    """More than 4096 characters after parsing, or no text at all, is a 400."""
    too_long = _api_error(bot.send_message, CHAT, "x" * 4097)
    too_long_html = _api_error(bot.send_message, CHAT, "&amp;" * 4097, parse_mode="HTML")
    empty = _api_error(bot.send_message, CHAT, "   \n ")
    empty_html = _api_error(bot.send_message, CHAT, "<b> </b>", parse_mode="HTML")

    assert bot.send_message(CHAT, "x" * 4096).text == "x" * 4096
    assert bot.send_message(CHAT, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
    for error in (too_long, too_long_html):
        assert (error.error_code, error.description) == (400, "Bad Request: message is too long")
    for error in (empty, empty_html):
        assert (error.error_code, error.description) == (400, "Bad Request: message text is empty")


def test_callback_data_over_64_bytes_is_rejected(bot: telebot.TeleBot) -> None:
    """Telegram refuses a button whose callback_data exceeds 64 bytes."""
    error = _api_error(bot.send_message, CHAT, "x", reply_markup=_inline_keyboard("é" * 33))

    assert (error.error_code, error.description) == (400, "Bad Request: BUTTON_DATA_INVALID")


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


# ------------------------------------------------------------------------------ getUpdates


def test_get_updates_long_poll_waits_for_an_injected_message(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """An empty long poll blocks until a message is injected, then returns it."""
    injector = threading.Thread(
        target=lambda: (fake_telegram.wait_for_polling(), fake_telegram.inject_message(7, "/start"))
    )
    injector.start()

    updates = bot.get_updates(long_polling_timeout=int(HANG_GUARD))
    injector.join(HANG_GUARD)

    assert len(updates) == 1
    message = updates[0].message
    assert message.text == "/start"
    assert message.from_user.id == 7
    assert message.from_user.language_code == "ru"
    assert message.chat.type == "private"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bot_command", 0, 6)]
    assert len(fake_telegram.calls("getUpdates")) == 1


def test_get_updates_times_out_empty(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """Without updates, the long poll answers an empty list once its timeout passes."""
    assert bot.get_updates(long_polling_timeout=1) == []
    assert fake_telegram.calls("getUpdates")[0].params["timeout"] == 1


def test_offset_acknowledges_older_updates(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """Calling getUpdates with offset N drops every update below N, as Telegram does."""
    ids = [fake_telegram.inject_message(7, f"m{n}")["update_id"] for n in range(3)]

    everything = bot.get_updates()
    from_second = bot.get_updates(offset=ids[1])
    again = bot.get_updates()
    limited = bot.get_updates(limit=1)
    bot.get_updates(offset=ids[2] + 1, long_polling_timeout=1)

    assert [u.update_id for u in everything] == ids
    assert ids == list(range(ids[0], ids[0] + 3))
    assert [u.update_id for u in from_second] == ids[1:]
    assert [u.update_id for u in again] == ids[1:]
    assert [u.update_id for u in limited] == ids[1:2]
    assert fake_telegram.pending_updates() == []


def test_negative_offset_keeps_only_the_newest_updates(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """A negative offset returns the last -offset updates and forgets the older ones."""
    ids = [fake_telegram.inject_message(7, f"m{n}")["update_id"] for n in range(3)]

    newest = bot.get_updates(offset=-1)

    assert [u.update_id for u in newest] == ids[-1:]
    assert [u["update_id"] for u in fake_telegram.pending_updates()] == ids[-1:]


def test_allowed_updates_filters_update_types(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """Updates of a type outside allowed_updates are not delivered."""
    sent = bot.send_message(7, "pick", reply_markup=_inline_keyboard("x"))
    fake_telegram.press_button(7, sent.message_id, "x")
    fake_telegram.inject_message(7, "text")

    updates = bot.get_updates(allowed_updates=["message"])

    assert [u.message.text for u in updates] == ["text"]
    assert all(u.callback_query is None for u in updates)


def test_a_newer_get_updates_terminates_the_older_one(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """Two pollers at once: the older long poll ends with Telegram's 409 conflict."""
    errors: list[ApiTelegramException] = []

    def poll() -> None:
        """Long-poll and keep the error."""
        try:
            bot.get_updates(long_polling_timeout=int(HANG_GUARD))
        except ApiTelegramException as exc:
            errors.append(exc)

    older = threading.Thread(target=poll)
    older.start()
    fake_telegram.wait_for_polling()
    assert bot.get_updates(long_polling_timeout=1) == []
    older.join(HANG_GUARD)

    assert [(e.error_code, e.description) for e in errors] == [(409, POLLING_CONFLICT)]


def test_get_updates_conflicts_with_a_webhook(bot: telebot.TeleBot) -> None:
    """While a webhook is set getUpdates answers 409; after deleteWebhook it works again."""
    assert bot.set_webhook(url=f"http://127.0.0.1:{_free_port()}/hook") is True

    error = _api_error(bot.get_updates, long_polling_timeout=1)
    assert bot.delete_webhook() is True

    assert (error.error_code, error.description) == (409, WEBHOOK_CONFLICT)
    assert bot.get_updates(long_polling_timeout=1) == []


def test_stop_releases_a_waiting_long_poll(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """Stopping the server answers a pending long poll instead of leaving it hanging."""
    results: list[Any] = []
    poller = threading.Thread(
        target=lambda: results.append(bot.get_updates(long_polling_timeout=600))
    )
    poller.start()
    fake_telegram.wait_for_polling()

    fake_telegram.stop()
    poller.join(HANG_GUARD)

    assert not poller.is_alive()
    assert results == [[]]


# ------------------------------------------------------------------------------ webhook


def test_webhook_delivers_updates_in_order_with_the_secret(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram, receiver: _Receiver
) -> None:
    """With a webhook set, injected updates are POSTed to it, in order, with the secret."""
    assert bot.set_webhook(url=receiver.url, secret_token="s3cret_TOKEN-1") is True
    ids = [fake_telegram.inject_message(7, f"hello {n}")["update_id"] for n in range(3)]

    received = receiver.wait_for(3)
    fake_telegram.wait_for_delivery(lambda d: d.update_id == ids[-1] and d.ok)
    info = bot.get_webhook_info()

    assert [r["body"]["update_id"] for r in received] == ids
    assert received[0]["body"]["message"]["text"] == "hello 0"
    assert received[0]["headers"]["X-Telegram-Bot-Api-Secret-Token"] == "s3cret_TOKEN-1"
    assert received[0]["headers"]["Content-Type"] == "application/json"
    assert received[0]["path"] == "/hook"
    assert info.url == receiver.url
    assert info.pending_update_count == 0
    assert fake_telegram.webhook["secret_token"] == "s3cret_TOKEN-1"
    assert [(d.update_id, d.status_code) for d in fake_telegram.deliveries] == [
        (update_id, 200) for update_id in ids
    ]


def test_webhook_without_secret_sends_no_secret_header(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram, receiver: _Receiver
) -> None:
    """The secret header is only sent when a secret was set."""
    bot.set_webhook(url=receiver.url)
    fake_telegram.inject_message(7, "hi")

    received = receiver.wait_for(1)

    assert "X-Telegram-Bot-Api-Secret-Token" not in received[0]["headers"]


def test_webhook_retries_a_failed_delivery(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram, receiver: _Receiver
) -> None:
    """A 500 keeps the update pending with last_error_*; it is redelivered once accepted."""
    receiver.status = 500
    bot.set_webhook(url=receiver.url, secret_token="s")
    update_id = fake_telegram.inject_message(7, "retry me")["update_id"]

    fake_telegram.wait_for_delivery(lambda d: d.status_code == 500)
    failing = bot.get_webhook_info()
    receiver.status = 200
    fake_telegram.wait_for_delivery(lambda d: d.ok)
    healed = bot.get_webhook_info()

    assert failing.pending_update_count == 1
    assert (
        failing.last_error_message == "Wrong response from the webhook: 500 INTERNAL SERVER ERROR"
    )
    assert failing.last_error_date > 0
    assert healed.pending_update_count == 0
    assert {r["body"]["update_id"] for r in receiver.received} == {update_id}
    assert len(receiver.received) >= 2


def test_webhook_connection_refused_is_reported(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """An unreachable webhook records Connection refused and keeps the update."""
    bot.set_webhook(url=f"http://127.0.0.1:{_free_port()}/hook")
    fake_telegram.inject_message(7, "lost?")

    delivery = fake_telegram.wait_for_delivery()
    info = bot.get_webhook_info()

    assert delivery.status_code is None
    assert delivery.error == "Connection refused"
    assert info.last_error_message == "Connection refused"
    assert info.pending_update_count == 1


def test_set_webhook_answers_telegram_descriptions(fake_telegram: FakeTelegram) -> None:
    """SetWebhook/deleteWebhook answer Telegram's descriptions; an empty url removes it."""
    base = fake_telegram.api_url_template.format(fake_telegram.token, "{}")
    hook = f"http://127.0.0.1:{_free_port()}/hook"

    set_ = requests.post(base.format("setWebhook"), params={"url": hook}, timeout=HANG_GUARD)
    again = requests.post(base.format("setWebhook"), params={"url": hook}, timeout=HANG_GUARD)
    cleared = requests.post(base.format("setWebhook"), params={"url": ""}, timeout=HANG_GUARD)
    deleted = requests.post(base.format("deleteWebhook"), timeout=HANG_GUARD)
    bad = requests.post(
        base.format("setWebhook"), params={"url": hook, "secret_token": "a b"}, timeout=HANG_GUARD
    )

    assert set_.json() == {"ok": True, "result": True, "description": "Webhook was set"}
    assert again.json()["description"] == "Webhook is already set"
    assert cleared.json()["description"] == "Webhook was deleted"
    assert deleted.json()["description"] == "Webhook is already deleted"
    assert bad.status_code == 400
    assert fake_telegram.webhook is None


# ------------------------------------------------------------------------------ failures


def test_fail_next_answers_429_with_retry_after(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """fail_next makes the next call answer 429 with parameters.retry_after, then recovers."""
    fake_telegram.fail_next("sendMessage", retry_after=3)

    error = _api_error(bot.send_message, CHAT, "x")
    message = bot.send_message(CHAT, "y")

    assert error.error_code == 429
    assert error.description == "Too Many Requests: retry after 3"
    assert error.result_json["parameters"]["retry_after"] == 3
    assert error.result.status_code == 429
    assert message.text == "y"
    assert [m["text"] for m in fake_telegram.messages(CHAT)] == ["y"]
    assert [c.status for c in fake_telegram.calls("sendMessage")] == [429, 200]


def test_fail_next_other_codes_and_times(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """Any error code can be injected for several calls."""
    fake_telegram.fail_next("getme", error_code=403, times=2)

    errors = [_api_error(bot.get_me), _api_error(bot.get_me)]

    assert [(e.error_code, e.description) for e in errors] == [
        (403, "Forbidden: bot was blocked by the user")
    ] * 2
    assert "parameters" not in errors[0].result_json
    assert bot.get_me().id == 123456
    with pytest.raises(ValueError):
        fake_telegram.fail_next("sendPigeon")


# ------------------------------------------------------------------------------ buttons and edits


def test_answer_callback_query_for_a_pressed_button(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """press_button delivers a callback_query the bot can answer exactly once."""
    fake_telegram.inject_message(7, "hi", first_name="Ann", username="ann")
    sent = bot.send_message(7, "Choose", reply_markup=_inline_keyboard("pick:1", "pick:2"))
    fake_telegram.press_button(7, sent.message_id, "pick:2")

    updates = bot.get_updates()
    query = updates[-1].callback_query
    answered = bot.answer_callback_query(query.id, "Done", show_alert=True)
    twice = _api_error(bot.answer_callback_query, query.id)
    unknown = _api_error(bot.answer_callback_query, "12345")

    assert query.data == "pick:2"
    assert query.message.message_id == sent.message_id
    assert query.message.text == "Choose"
    assert query.from_user.username == "ann"
    assert query.chat_instance
    assert answered is True
    params = fake_telegram.calls("answerCallbackQuery")[0].params
    assert (params["text"], params["show_alert"]) == ("Done", True)
    for error in (twice, unknown):
        assert (error.error_code, error.description) == (400, QUERY_TOO_OLD)


def test_press_button_refuses_missing_buttons(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """Pressing a button that is not on the message (or a missing message) is a test error."""
    sent = bot.send_message(7, "Choose", reply_markup=_inline_keyboard("a"))

    with pytest.raises(ValueError, match="no button"):
        fake_telegram.press_button(7, sent.message_id, "b")
    with pytest.raises(LookupError):
        fake_telegram.press_button(7, 999, "a")
    assert fake_telegram.press_button(7, sent.message_id, "b", check_button=False)


def test_edit_message_text(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """EditMessageText edits the stored message; unchanged content and unknown ids are 400."""
    sent = bot.send_message(CHAT, "v1", reply_markup=_inline_keyboard("a"))

    edited = bot.edit_message_text(
        "<i>v2</i>", CHAT, sent.message_id, parse_mode="HTML", reply_markup=_inline_keyboard("a")
    )
    unchanged = _api_error(
        bot.edit_message_text,
        "<i>v2</i>",
        CHAT,
        sent.message_id,
        parse_mode="HTML",
        reply_markup=_inline_keyboard("a"),
    )
    plain = bot.edit_message_text("v2", CHAT, sent.message_id)
    missing = _api_error(bot.edit_message_text, "x", CHAT, 999)
    bad_html = _api_error(bot.edit_message_text, "<b>x", CHAT, sent.message_id, parse_mode="HTML")

    assert edited.text == "v2"
    assert edited.message_id == sent.message_id
    assert edited.edit_date
    assert [e.type for e in edited.entities] == ["italic"]
    assert (unchanged.error_code, unchanged.description) == (400, NOT_MODIFIED)
    assert plain.entities is None
    assert plain.reply_markup is None  # editing without reply_markup drops the keyboard
    assert missing.description == "Bad Request: message to edit not found"
    assert bad_html.description.startswith("Bad Request: can't parse entities: ")
    [stored] = fake_telegram.messages(CHAT)
    assert stored["text"] == "v2"
    assert "reply_markup" not in stored


def test_edit_message_reply_markup(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """EditMessageReplyMarkup replaces or removes the keyboard."""
    sent = bot.send_message(CHAT, "v1", reply_markup=_inline_keyboard("a"))

    bot.edit_message_reply_markup(CHAT, sent.message_id, reply_markup=_inline_keyboard("b"))
    swapped = fake_telegram.messages(CHAT)[0]["reply_markup"]
    bot.edit_message_reply_markup(CHAT, sent.message_id)
    error = _api_error(bot.edit_message_reply_markup, CHAT, sent.message_id)

    assert swapped["inline_keyboard"][0][0]["callback_data"] == "b"
    assert "reply_markup" not in fake_telegram.messages(CHAT)[0]
    assert error.description == NOT_MODIFIED


def test_delete_message_and_chat_action(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """DeleteMessage removes the message once; sendChatAction checks the action."""
    first = bot.send_message(CHAT, "one")
    bot.send_message(CHAT, "two")

    assert bot.delete_message(CHAT, first.message_id) is True
    error = _api_error(bot.delete_message, CHAT, first.message_id)
    assert bot.send_chat_action(CHAT, "typing") is True
    bad_action = _api_error(bot.send_chat_action, CHAT, "dancing")

    assert [m["text"] for m in fake_telegram.messages(CHAT)] == ["two"]
    assert error.description == "Bad Request: message to delete not found"
    assert bad_action.error_code == 400


def test_send_message_draft(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """SendMessageDraft validates like sendMessage and records the drafts."""
    assert bot.send_message_draft(CHAT, 5, "Thinking <b>hard</b>", parse_mode="HTML") is True
    assert bot.send_message_draft(CHAT, 5, "Thinking hard, done") is True
    bad = _api_error(bot.send_message_draft, CHAT, 5, "<b>oops", parse_mode="HTML")
    long = _api_error(bot.send_message_draft, CHAT, 5, "x" * 4097)
    zero = _api_error(bot.send_message_draft, CHAT, 0, "x")

    drafts = fake_telegram.drafts(CHAT)
    assert [(d["draft_id"], d["text"]) for d in drafts] == [
        (5, "Thinking hard"),
        (5, "Thinking hard, done"),
    ]
    assert drafts[0]["raw_text"] == "Thinking <b>hard</b>"
    assert bad.description.startswith("Bad Request: can't parse entities: ")
    assert long.description == "Bad Request: message is too long"
    assert zero.error_code == 400
    assert fake_telegram.messages(CHAT) == []


def test_set_and_get_my_commands(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """Commands are stored per scope and language; invalid commands are refused."""
    commands = [types.BotCommand("start", "Start"), types.BotCommand("help", "Help")]

    assert bot.set_my_commands(commands) is True
    assert bot.set_my_commands([types.BotCommand("start", "Начать")], language_code="ru") is True
    default = bot.get_my_commands()
    russian = bot.get_my_commands(language_code="ru")
    invalid = _api_error(bot.set_my_commands, [types.BotCommand("Bad Command", "x")])
    assert bot.delete_my_commands() is True

    assert [(c.command, c.description) for c in default] == [("start", "Start"), ("help", "Help")]
    assert [(c.command, c.description) for c in russian] == [("start", "Начать")]
    assert invalid.error_code == 400
    assert bot.get_my_commands() == []
    assert fake_telegram.commands(language_code="ru") == [
        {"command": "start", "description": "Начать"}
    ]


# ------------------------------------------------------------------------------ test-side helpers


def test_wait_for_calls_sees_calls_from_other_threads(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """wait_for_calls returns once enough matching calls were answered."""
    sender = threading.Thread(target=lambda: [bot.send_message(CHAT, f"m{n}") for n in range(3)])
    sender.start()

    calls = fake_telegram.wait_for_calls("sendmessage", 3, timeout=HANG_GUARD)
    last = fake_telegram.wait_for_call("sendMessage", lambda c: c.params["text"] == "m2")
    sender.join(HANG_GUARD)

    assert [c.params["text"] for c in calls] == ["m0", "m1", "m2"]
    assert last.result["text"] == "m2"


def test_wait_for_call_timeout_lists_recorded_calls(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """On timeout wait_for_call raises AssertionError naming what was called instead."""
    bot.get_me()
    bot.send_message(CHAT, "hello")

    with pytest.raises(AssertionError) as caught:
        fake_telegram.wait_for_call("sendMessage", lambda c: c.params["text"] == "bye", 0.2)

    assert "getMe x1" in str(caught.value)
    assert "hello" in str(caught.value)


def test_reset_forgets_everything_but_keeps_serving(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """Reset clears calls, messages, updates and failures; update ids keep increasing."""
    old_id = fake_telegram.inject_message(7, "old")["update_id"]
    bot.send_message(CHAT, "old")
    fake_telegram.fail_next("sendMessage")

    fake_telegram.reset()
    message = bot.send_message(CHAT, "new")
    new_id = fake_telegram.inject_message(7, "new")["update_id"]

    assert message.message_id == 1
    assert [c.method for c in fake_telegram.calls()] == ["sendMessage"]
    assert [m["text"] for m in fake_telegram.messages(CHAT)] == ["new"]
    assert [u["update_id"] for u in fake_telegram.pending_updates()] == [new_id]
    assert new_id > old_id


def test_inject_update_for_other_content(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """inject_update queues any update and fills in the message id and date."""
    injected = fake_telegram.inject_update(
        {
            "message": {
                "from": {"id": 7, "is_bot": False, "first_name": "Ann"},
                "chat": {"id": 7, "type": "private", "first_name": "Ann"},
                "sticker": {
                    "file_id": "F",
                    "file_unique_id": "U",
                    "type": "regular",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                },
            }
        }
    )

    [update] = bot.get_updates()

    assert update.update_id == injected["update_id"]
    assert update.message.sticker.file_id == "F"
    assert update.message.message_id == 1
    with pytest.raises(ValueError):
        fake_telegram.inject_update({"update_id": 1, "message": {}})
