"""Flood control: 429 with ``retry_after`` beyond the per-chat, per-group and bot-wide limits."""

from __future__ import annotations

import pytest
import telebot
from telebot.apihelper import ApiTelegramException

from tests.fakes.telegram import FakeTelegram, FloodLimits
from tests.fakes.telegram.flood import FloodState
from tests.fakes.telegram.tests.support import CHAT


def _refused(bot: telebot.TeleBot, chat_id: int, count: int) -> list[int]:
    """Send ``count`` messages; the retry_after of each refused one."""
    refused = []
    for index in range(count):
        try:
            bot.send_message(chat_id, f"m{index}")
        except ApiTelegramException as exc:
            assert exc.error_code == 429
            assert exc.description.startswith("Too Many Requests: retry after ")
            refused.append(exc.result_json["parameters"]["retry_after"])
    return refused


def test_off_by_default(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """Without limits every call passes."""
    assert _refused(bot, CHAT, 20) == []
    assert fake_telegram.flood_refusals() == 0


def test_chat_burst_then_429(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """A chat takes its burst at once; the next message is a 429 with retry_after >= 1."""
    fake_telegram.set_flood_limits(FloodLimits(chat_burst=3))
    refused = _refused(bot, CHAT, 5)
    assert len(refused) == 2 and all(wait >= 1 for wait in refused)
    assert _refused(bot, CHAT + 1, 3) == []  # another chat has its own lane
    assert fake_telegram.flood_refusals() == 2
    assert len(fake_telegram.calls("sendMessage")) == 8  # refused calls are recorded (429)
    assert sum(call.status == 429 for call in fake_telegram.calls("sendMessage")) == 2


def test_drafts_and_edits_count_chat_actions_do_not(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """SendMessageDraft and edits use the chat's lane; sendChatAction is free."""
    fake_telegram.set_flood_limits(FloodLimits(chat_burst=2))
    for _ in range(5):
        bot.send_chat_action(CHAT, "typing")
    message = bot.send_message(CHAT, "one")
    bot.edit_message_text("two", CHAT, message.message_id)
    with pytest.raises(ApiTelegramException) as caught:
        bot.send_message_draft(CHAT, 7, "three")
    assert caught.value.error_code == 429


def test_bot_wide_limit(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """Beyond the bot-wide burst every chat is refused, whatever its own lane says."""
    fake_telegram.set_flood_limits(FloodLimits(global_burst=10, global_per_second=0.5))
    refused = [_refused(bot, CHAT + index, 1) for index in range(12)]
    assert sum(map(len, refused)) == 2


def test_group_limit_per_minute() -> None:
    """A group takes at most group_per_minute messages in any 60 s, however they are spread."""
    flood = FloodState(FloodLimits(group_per_minute=20, chat_per_second=100, chat_burst=100))
    passed = [flood.check("sendMessage", -5, at * 2.0) is None for at in range(20)]
    assert passed == [True] * 20
    assert flood.check("sendMessage", -5, 40.0) == 20  # the first of the 20 leaves at 60 s
    assert flood.check("sendMessage", -5, 60.5) is None  # the window slid
    assert flood.check("sendMessage", 5, 61.0) is None  # private chats have no such limit


def test_penalty_grows_when_a_bot_ignores_retry_after() -> None:
    """Every call into a closed lane is refused and extends the wait."""
    flood = FloodState(FloodLimits(chat_per_second=1, chat_burst=1, penalty=1.0))
    assert flood.check("sendMessage", 9, 0.0) is None
    first = flood.check("sendMessage", 9, 0.1)
    again = flood.check("sendMessage", 9, 0.2)
    assert first == 1 and again == 2
    assert flood.check("sendMessage", 9, 0.5 + again) is None  # waiting it out works
    assert flood.check("getMe", None, 0.0) is None
