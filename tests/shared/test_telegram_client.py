"""The Telegram client extension: HTML, plain-text fallback, rate limits, token changes (fake)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from telebot.types import InlineKeyboardButton, InlineKeyboardMarkup

from shared.app import create_core_app
from shared.db import db
from shared.extensions import telegram
from shared.services.settings import set_setting
from shared.telegram.client import BotNotConfigured, SendDeferred, answer_parts
from tests.fakes.telegram import FakeTelegram

CHAT = 777


@pytest.fixture()
def ctx(app: Flask, telegram: FakeTelegram) -> Iterator[FakeTelegram]:
    """An app context with the fake's token set and a chat that exists."""
    fake = telegram
    with app.app_context():
        set_setting("telegram_bot_token", fake.token)
        db.session.commit()
        fake.inject_message(CHAT, "hi")
        yield fake


def test_markdown_is_sent_as_html(ctx: FakeTelegram) -> None:
    """Formatting arrives as Telegram entities, the text without markup."""
    telegram.send_parts(CHAT, answer_parts("**Hello** & <goodbye>"))
    call = ctx.wait_for_call("sendMessage")
    assert call.params["parse_mode"] == "HTML"
    assert ctx.messages(CHAT)[-1]["text"] == "Hello & <goodbye>"


def test_rejected_entities_are_resent_as_plain_text(ctx: FakeTelegram) -> None:
    """When Telegram cannot parse the HTML, the same part goes out as plain text."""
    ctx.fail_next("sendMessage", error_code=400, description="Bad Request: can't parse entities: x")
    telegram.send_parts(CHAT, answer_parts("**still delivered**"))
    first, second = ctx.wait_for_calls("sendMessage", 2)
    assert first.params.get("parse_mode") == "HTML" and not first.ok
    assert "parse_mode" not in second.params
    assert ctx.messages(CHAT)[-1]["text"] == "**still delivered**"


def test_rate_limit_is_waited_out(ctx: FakeTelegram) -> None:
    """A 429 with retry_after is honoured and the message still arrives once."""
    ctx.fail_next("sendMessage", error_code=429, retry_after=1)
    sent: list[int] = []
    telegram.send_parts(CHAT, answer_parts("patience"), on_sent=sent.append)
    calls = ctx.wait_for_calls("sendMessage", 2)
    assert calls[0].status == 429 and calls[1].ok
    assert sent == [0] and ctx.messages(CHAT)[-1]["text"] == "patience"


def test_parts_in_order_keyboard_under_the_last(ctx: FakeTelegram) -> None:
    """Parts come in order; the reply markup sits under the last one; skipped parts stay out."""
    markup = InlineKeyboardMarkup()
    markup.add(InlineKeyboardButton("x", callback_data="new"))
    text = "\n\n".join(f"part {i} " + "w " * 1500 for i in range(3))
    parts = answer_parts(text, reply_markup=markup)
    assert len(parts) >= 3
    telegram.send_parts(CHAT, parts, skip=1)
    calls = ctx.wait_for_calls("sendMessage", len(parts) - 1)
    assert [c.params.get("reply_markup") is not None for c in calls] == [False] * (
        len(parts) - 2
    ) + [True]
    assert ctx.messages(CHAT)[-len(parts) + 1]["text"].startswith("part 1")


def test_token_change_reaches_the_client(ctx: FakeTelegram) -> None:
    """A new token is used at once by this process; without a token the client refuses."""
    telegram.send_message(CHAT, "one")
    set_setting("telegram_bot_token", None)
    db.session.commit()
    with pytest.raises(BotNotConfigured):
        telegram.send_message(CHAT, "two")
    set_setting("telegram_bot_token", ctx.token)
    db.session.commit()
    telegram.send_message(CHAT, "three")
    assert [m["text"] for m in ctx.messages(CHAT)][-2:] == ["one", "three"]


def test_each_app_keeps_its_own_bot_api_url(app: Flask, ctx: FakeTelegram) -> None:
    """Building another app (another URL) in the same process does not redirect this one."""
    other_config = dataclasses.replace(
        app.config["AI_ROUTER"], telegram_api_url="http://127.0.0.1:9"
    )
    create_core_app(other_config)
    celery = app.extensions["celery"]  # building an app made its Celery app the current one
    celery.set_default()
    celery.set_current()
    telegram.send_message(CHAT, "still here")
    assert ctx.messages(CHAT)[-1]["text"] == "still here"


def test_a_429_closes_the_chat_lane_for_every_worker(ctx: FakeTelegram) -> None:
    """The 429's retry_after is written to the shared pacer; the message still arrives once."""
    ctx.fail_next("sendMessage", error_code=429, retry_after=2)
    telegram.send_message(CHAT, "after the pause")
    calls = ctx.calls("sendMessage")
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1.9, "the retry waited for the lane to open"


def test_an_answer_far_from_its_slot_is_deferred_not_sent(ctx: FakeTelegram) -> None:
    """A lane closed beyond the horizon: SendDeferred, and nothing reached Telegram."""
    telegram.pacer.close(CHAT, 60)
    with pytest.raises(SendDeferred) as caught:
        telegram.send_message(CHAT, "later")
    assert caught.value.wait > 50
    assert ctx.calls("sendMessage") == []


def test_drafts_are_skipped_not_queued_and_turn_off_without_the_method(
    app: Flask, ctx: FakeTelegram
) -> None:
    """A draft goes when there is room, is skipped when there is none, and a 404 stops them."""
    assert telegram.send_message_draft(CHAT, 5, "first") is True
    assert telegram.send_message_draft(CHAT, 5, "second") is False  # the last token is the final's
    assert telegram.send_message(CHAT, "final") and len(ctx.drafts(CHAT)) == 1
    ctx.fail_next("sendMessageDraft", error_code=404, description="Not Found")
    ctx.inject_message(CHAT + 1, "hi")
    time.sleep(0.2)  # the bot-wide bucket of the first draft and the final is over
    try:
        assert telegram.send_message_draft(CHAT + 1, 6, "x") is False
        assert telegram.send_message_draft(CHAT + 2, 7, "y") is False
        assert len(ctx.calls("sendMessageDraft")) == 2, "no call once drafts are known missing"
    finally:
        app.extensions["telegram"].drafts_supported = True
