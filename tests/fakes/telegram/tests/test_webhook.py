"""Webhook delivery: order, secret header, retries and getWebhookInfo."""

from __future__ import annotations

import requests
import telebot

from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram.tests.support import HANG_GUARD, Receiver
from tests.support import free_port


def test_webhook_delivers_updates_in_order_with_the_secret(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram, receiver: Receiver
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
    bot: telebot.TeleBot, fake_telegram: FakeTelegram, receiver: Receiver
) -> None:
    """The secret header is only sent when a secret was set."""
    bot.set_webhook(url=receiver.url)
    fake_telegram.inject_message(7, "hi")

    received = receiver.wait_for(1)

    assert "X-Telegram-Bot-Api-Secret-Token" not in received[0]["headers"]


def test_webhook_retries_a_failed_delivery(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram, receiver: Receiver
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
    bot.set_webhook(url=f"http://127.0.0.1:{free_port()}/hook")
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
    hook = f"http://127.0.0.1:{free_port()}/hook"

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
