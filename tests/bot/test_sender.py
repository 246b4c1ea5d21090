"""Sending answers to Telegram: HTML, plain-text fallback, rate limits (against the fake)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from telebot import TeleBot, apihelper

from shared.services.telegram import configure_api_url, send_answer
from tests.fakes.telegram import FakeTelegram

CHAT = 777


@pytest.fixture()
def bot(telegram: FakeTelegram) -> Iterator[TeleBot]:
    """A TeleBot pointed at the fake (the API URL is restored afterwards)."""
    previous = apihelper.API_URL
    configure_api_url(telegram.url)
    telegram.inject_message(CHAT, "hi")  # the chat exists
    yield TeleBot(telegram.token, threaded=False)
    apihelper.API_URL = previous


def test_markdown_is_sent_as_html(bot: TeleBot, telegram: FakeTelegram) -> None:
    """Formatting arrives as Telegram entities, the text without markup."""
    send_answer(bot, CHAT, "**Hello** & <goodbye>")
    call = telegram.wait_for_call("sendMessage")
    assert call.params["parse_mode"] == "HTML"
    assert telegram.messages(CHAT)[-1]["text"] == "Hello & <goodbye>"


def test_rejected_entities_are_resent_as_plain_text(bot: TeleBot, telegram: FakeTelegram) -> None:
    """When Telegram cannot parse the HTML, the same part goes out as plain text."""
    telegram.fail_next(
        "sendMessage", error_code=400, description="Bad Request: can't parse entities: oops"
    )
    send_answer(bot, CHAT, "**still delivered**")
    first, second = telegram.wait_for_calls("sendMessage", 2)
    assert first.params.get("parse_mode") == "HTML" and not first.ok
    assert "parse_mode" not in second.params
    assert telegram.messages(CHAT)[-1]["text"] == "**still delivered**"


def test_rate_limit_is_waited_out(bot: TeleBot, telegram: FakeTelegram) -> None:
    """A 429 with retry_after is honoured and the message still arrives once."""
    telegram.fail_next("sendMessage", error_code=429, retry_after=1)
    ids = send_answer(bot, CHAT, "patience")
    calls = telegram.wait_for_calls("sendMessage", 2)
    assert calls[0].status == 429 and calls[1].ok
    assert len(ids) == 1 and telegram.messages(CHAT)[-1]["text"] == "patience"


def test_keyboard_only_under_the_last_part(bot: TeleBot, telegram: FakeTelegram) -> None:
    """Parts come in order; the reply markup sits under the last one."""
    from telebot.types import InlineKeyboardButton, InlineKeyboardMarkup

    markup = InlineKeyboardMarkup()
    markup.add(InlineKeyboardButton("x", callback_data="new"))
    text = "\n\n".join(f"part {i} " + "w " * 900 for i in range(3))
    ids = send_answer(bot, CHAT, text, reply_markup=markup)
    calls = telegram.wait_for_calls("sendMessage", len(ids))
    assert len(ids) >= 2 and ids == sorted(ids)
    assert [c.params.get("reply_markup") is not None for c in calls] == [False] * (len(ids) - 1) + [
        True
    ]
