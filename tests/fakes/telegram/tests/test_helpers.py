"""The test-side helpers: waiting for calls, reset and injecting updates."""

from __future__ import annotations

import threading

import pytest
import telebot

from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram.tests.support import CHAT, HANG_GUARD


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
