"""getUpdates: the long poll, offsets, allowed_updates and conflicts."""

from __future__ import annotations

import threading
from typing import Any

import telebot
from telebot.apihelper import ApiTelegramException

from tests.fakes.telegram import POLLING_CONFLICT, WEBHOOK_CONFLICT, FakeTelegram
from tests.fakes.telegram.tests.support import HANG_GUARD, api_error, inline_keyboard
from tests.support import free_port


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
    sent = bot.send_message(7, "pick", reply_markup=inline_keyboard("x"))
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
    assert bot.set_webhook(url=f"http://127.0.0.1:{free_port()}/hook") is True

    error = api_error(bot.get_updates, long_polling_timeout=1)
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
