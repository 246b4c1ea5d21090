"""Fixtures of the fake's tests: a fresh fake per test, a client pointed at it, a receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import telebot
from telebot import apihelper

from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram.tests.support import Receiver


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


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local HTTP server standing in for the bot's webhook endpoint."""
    server = Receiver()
    try:
        yield server
    finally:
        server.close()
