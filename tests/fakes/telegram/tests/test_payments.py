"""Telegram Stars payments: invoices, pre-checkout queries, successful payments and refunds."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
import telebot
from telebot import apihelper, types

from tests.fakes.telegram import QUERY_TOO_OLD, FakeTelegram, FloodLimits
from tests.fakes.telegram.tests.support import CHAT, HANG_GUARD, Receiver, api_error

PRO = types.LabeledPrice("Pro, 30 days", 250)


def send_pro_invoice(bot: telebot.TeleBot, chat_id: int = CHAT, **kwargs: Any) -> types.Message:
    """Send the invoice most tests pay: 250 Stars with the payload ``plan:pro``."""
    return bot.send_invoice(
        chat_id, "Pro plan", "30 days of Pro", "plan:pro", "", "XTR", [PRO], **kwargs
    )


def post(fake: FakeTelegram, method: str, body: dict[str, Any]) -> requests.Response:
    """Call a method with a JSON body, the way the product's own client does."""
    return requests.post(
        fake.api_url_template.format(fake.token, method), json=body, timeout=HANG_GUARD
    )


def answer_first_query(bot: telebot.TeleBot, ok: bool, error_message: str | None = None) -> None:
    """Play the bot: poll until a pre_checkout_query arrives and answer it."""
    deadline = time.monotonic() + HANG_GUARD
    while time.monotonic() < deadline:
        for update in bot.get_updates(long_polling_timeout=1):
            if update.pre_checkout_query is not None:
                bot.answer_pre_checkout_query(update.pre_checkout_query.id, ok, error_message)
                return


# ------------------------------------------------------------------------------ invoices


def test_send_invoice_posts_an_invoice_message(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """SendInvoice answers a Message with an Invoice and remembers the invoice."""
    bot.send_message(CHAT, "before")

    sent = send_pro_invoice(bot)

    assert sent.message_id == 2
    assert sent.from_user.is_bot is True
    invoice = sent.invoice
    assert (invoice.title, invoice.description) == ("Pro plan", "30 days of Pro")
    assert (invoice.currency, invoice.total_amount, invoice.start_parameter) == ("XTR", 250, "")
    [stored] = [m for m in fake_telegram.messages(CHAT) if "invoice" in m]
    assert stored["message_id"] == sent.message_id
    assert "text" not in stored
    [recorded] = fake_telegram.invoices(CHAT)
    assert recorded["message_id"] == sent.message_id
    assert recorded["payload"] == "plan:pro"
    assert recorded["prices"] == [{"label": "Pro, 30 days", "amount": 250}]
    assert recorded["total_amount"] == 250
    assert fake_telegram.invoices(CHAT + 1) == []
    call = fake_telegram.calls("sendInvoice")[0]
    assert call.ok
    assert call.params["prices"] == [{"label": "Pro, 30 days", "amount": 250}]


def test_send_invoice_as_json_with_a_pay_button(fake_telegram: FakeTelegram) -> None:
    """A JSON body with real arrays works; a keyboard whose first button is Pay is echoed."""
    keyboard = {
        "inline_keyboard": [[{"text": "Pay 5 Stars", "pay": True}], [{"text": "?", "url": "x"}]]
    }

    response = post(
        fake_telegram,
        "sendInvoice",
        {
            "chat_id": CHAT,
            "title": "Tip",
            "description": "A small tip",
            "payload": "tip",
            "currency": "XTR",
            "prices": [{"label": "Tip", "amount": "5"}],
            "start_parameter": "tip-5",
            "reply_markup": keyboard,
            "message_thread_id": 3,
        },
    )

    message = response.json()["result"]
    assert message["invoice"] == {
        "title": "Tip",
        "description": "A small tip",
        "start_parameter": "tip-5",
        "currency": "XTR",
        "total_amount": 5,
    }
    assert message["reply_markup"] == keyboard
    assert message["message_thread_id"] == 3
    assert fake_telegram.invoices()[0]["start_parameter"] == "tip-5"


_VALID_INVOICE: dict[str, Any] = {
    "chat_id": CHAT,
    "title": "Pro plan",
    "description": "30 days of Pro",
    "payload": "plan:pro",
    "currency": "XTR",
    "prices": [{"label": "Pro", "amount": 250}],
}


@pytest.mark.parametrize(
    ("change", "description"),
    [
        ({"title": None}, 'parameter "title" is required'),
        ({"description": ""}, 'parameter "description" is required'),
        ({"payload": None}, 'parameter "payload" is required'),
        ({"currency": None}, 'parameter "currency" is required'),
        ({"prices": None}, 'parameter "prices" is required'),
        ({"chat_id": None}, "chat_id is empty"),
        ({"title": "x" * 33}, "TITLE_INVALID"),
        ({"description": "x" * 256}, "DESCRIPTION_INVALID"),
        ({"payload": "я" * 65}, "INVOICE_PAYLOAD_INVALID"),  # 65 characters, 130 bytes
        ({"currency": "USD"}, "PAYMENT_PROVIDER_INVALID"),
        ({"provider_token": "284685063:TEST:abc"}, "STARS_INVOICE_INVALID"),
        ({"max_tip_amount": 10, "suggested_tip_amounts": [5]}, "STARS_INVOICE_INVALID"),
        (
            {"prices": [{"label": "Pro", "amount": 200}, {"label": "Tax", "amount": 50}]},
            "STARS_INVOICE_INVALID",
        ),
        ({"prices": [{"label": "Pro", "amount": 0}]}, "total price must be positive"),
        ({"prices": [{"label": "Pro", "amount": -5}]}, "total price must be positive"),
        ({"prices": []}, "there must be at least one price"),
        ({"prices": "not json"}, "can't parse prices JSON object"),
        ({"prices": {"label": "Pro", "amount": 1}}, "expected an Array of labeled prices"),
        ({"prices": [{"amount": 1}]}, "can't parse labeled price: Can't find field \"label\""),
        (
            {"prices": [{"label": "Pro", "amount": "many"}]},
            'can\'t parse labeled price: Field "amount" must be a valid Number',
        ),
        (
            {"reply_markup": {"inline_keyboard": [[{"text": "Go", "url": "https://e.org"}]]}},
            "REPLY_MARKUP_BUY_EMPTY",
        ),
        ({"reply_markup": {"keyboard": [["Pay"]]}}, "inline keyboard expected"),
    ],
)
def test_send_invoice_refuses_invalid_invoices(
    fake_telegram: FakeTelegram, change: dict[str, Any], description: str
) -> None:
    """Invalid invoices answer Telegram's 400 and create nothing."""
    body = {**_VALID_INVOICE, **change}
    body = {key: value for key, value in body.items() if value is not None}

    response = post(fake_telegram, "sendInvoice", body)

    assert response.status_code == 400
    assert response.json() == {
        "ok": False,
        "error_code": 400,
        "description": f"Bad Request: {description}",
    }
    assert fake_telegram.invoices() == []
    assert fake_telegram.history(CHAT) == []
    assert fake_telegram.calls("sendInvoice")[0].status == 400


def test_send_invoice_accepts_the_limits(fake_telegram: FakeTelegram) -> None:
    """A 32-character title, a 255-character description and a 128-byte payload pass."""
    body = {**_VALID_INVOICE, "title": "t" * 32, "description": "d" * 255, "payload": "я" * 64}

    response = post(fake_telegram, "sendInvoice", body)

    assert response.status_code == 200
    assert fake_telegram.invoices()[0]["payload"] == "я" * 64


def test_send_invoice_is_flood_limited_like_a_message(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """SendInvoice counts against the per-chat flood limit; a refused invoice is not posted."""
    fake_telegram.set_flood_limits(FloodLimits(chat_burst=1))

    send_pro_invoice(bot)
    error = api_error(send_pro_invoice, bot)

    assert error.error_code == 429
    assert error.result_json["parameters"]["retry_after"] >= 1
    assert len(fake_telegram.invoices(CHAT)) == 1


# ------------------------------------------------------------------------------ pre-checkout


def test_pre_checkout_query_answered_ok_once(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """The query carries the invoice; the bot answers ok once, a second answer is refused."""
    fake_telegram.inject_message(7, "/buy", first_name="Ann", username="ann")
    sent = send_pro_invoice(bot, 7)

    query_id = fake_telegram.inject_pre_checkout_query(7, sent.message_id)
    query = bot.get_updates()[-1].pre_checkout_query
    assert bot.answer_pre_checkout_query(query_id, ok=True) is True
    twice = api_error(bot.answer_pre_checkout_query, query_id, ok=True)
    unknown = api_error(bot.answer_pre_checkout_query, "12345", ok=True)

    assert query.id == query_id
    assert (query.from_user.id, query.from_user.username) == (7, "ann")
    assert (query.currency, query.total_amount, query.invoice_payload) == ("XTR", 250, "plan:pro")
    for error in (twice, unknown):
        assert (error.error_code, error.description) == (400, QUERY_TOO_OLD)
    [answer] = fake_telegram.pre_checkout_answers()
    assert answer["pre_checkout_query_id"] == query_id
    assert (answer["user_id"], answer["ok"], answer["error_message"]) == (7, True, None)
    assert (answer["total_amount"], answer["invoice_payload"]) == (250, "plan:pro")
    assert 0 <= answer["delay"] < HANG_GUARD
    assert answer["answered_at"] <= time.time()
    assert [c.status for c in fake_telegram.calls("answerPreCheckoutQuery")] == [200, 400, 400]


def test_pre_checkout_query_refused(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """Ok=false needs an error_message; a refused query cannot be paid."""
    send_pro_invoice(bot)
    query_id = fake_telegram.inject_pre_checkout_query(CHAT)

    missing = api_error(bot.answer_pre_checkout_query, query_id, ok=False)
    assert bot.answer_pre_checkout_query(query_id, ok=False, error_message="Sold out") is True

    assert (missing.error_code, missing.description) == (
        400,
        'Bad Request: parameter "error_message" is required',
    )
    [answer] = fake_telegram.pre_checkout_answers()
    assert (answer["ok"], answer["error_message"]) == (False, "Sold out")
    with pytest.raises(ValueError, match="refused"):
        fake_telegram.inject_successful_payment(query_id)
    assert fake_telegram.payments() == []


def test_pre_checkout_query_with_another_price_or_without_invoice(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """A query may carry a changed amount or payload; an unknown invoice is a test error."""
    old = send_pro_invoice(bot)
    send_pro_invoice(bot)

    fake_telegram.inject_pre_checkout_query(CHAT, old.message_id, total_amount=100)
    fake_telegram.inject_pre_checkout_query(CHAT + 1, total_amount=7, invoice_payload="legacy")
    queries = [u.pre_checkout_query for u in bot.get_updates()]

    assert [(q.total_amount, q.invoice_payload) for q in queries] == [
        (100, "plan:pro"),
        (7, "legacy"),
    ]
    assert queries[1].from_user.id == CHAT + 1
    with pytest.raises(LookupError):
        fake_telegram.inject_pre_checkout_query(CHAT, 999)
    with pytest.raises(LookupError):
        fake_telegram.inject_pre_checkout_query(CHAT + 1, total_amount=7)
    bot.delete_message(CHAT, old.message_id)
    with pytest.raises(LookupError):
        fake_telegram.inject_pre_checkout_query(CHAT, old.message_id)


def test_pre_checkout_answer_after_the_timeout_is_refused() -> None:
    """Telegram forgets a query the bot did not answer in time (10 s; here 0.2 s)."""
    saved = apihelper.API_URL
    with FakeTelegram(pre_checkout_timeout=0.2) as fake:
        apihelper.API_URL = fake.api_url_template
        try:
            bot = telebot.TeleBot(fake.token, threaded=False)
            send_pro_invoice(bot)
            query_id = fake.inject_pre_checkout_query(CHAT)
            time.sleep(0.3)
            late = api_error(bot.answer_pre_checkout_query, query_id, ok=True)
        finally:
            apihelper.API_URL = saved

        assert (late.error_code, late.description) == (400, QUERY_TOO_OLD)
        assert fake.pre_checkout_answers() == []
        with pytest.raises(ValueError, match="not answered"):
            fake.inject_successful_payment(query_id)


# ------------------------------------------------------------------------------ payments


def test_successful_payment_is_delivered_in_a_message(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """After an ok answer the payment arrives as a message with successful_payment."""
    send_pro_invoice(bot)
    query_id = fake_telegram.inject_pre_checkout_query(CHAT)
    with pytest.raises(ValueError, match="not answered"):
        fake_telegram.inject_successful_payment(query_id)
    bot.answer_pre_checkout_query(query_id, ok=True)

    charge_id = fake_telegram.inject_successful_payment(query_id)
    message = bot.get_updates()[-1].message

    payment = message.successful_payment
    assert message.chat.id == CHAT
    assert message.from_user.id == CHAT
    assert (payment.currency, payment.total_amount, payment.invoice_payload) == (
        "XTR",
        250,
        "plan:pro",
    )
    assert payment.telegram_payment_charge_id == charge_id
    assert payment.provider_payment_charge_id == ""
    [recorded] = fake_telegram.payments()
    assert recorded["telegram_payment_charge_id"] == charge_id
    assert (recorded["user_id"], recorded["total_amount"], recorded["refunded"]) == (
        CHAT,
        250,
        False,
    )
    assert recorded["pre_checkout_query_id"] == query_id
    assert recorded["message"]["message_id"] == message.message_id
    with pytest.raises(ValueError, match="paid already"):
        fake_telegram.inject_successful_payment(query_id)
    with pytest.raises(LookupError):
        fake_telegram.inject_successful_payment("42")


def test_charge_ids_are_unique(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """Every payment gets its own charge id, across resets too."""
    charges = []
    for _ in range(2):
        send_pro_invoice(bot)
        for _ in range(2):
            query_id = fake_telegram.inject_pre_checkout_query(CHAT)
            bot.answer_pre_checkout_query(query_id, ok=True)
            charges.append(fake_telegram.inject_successful_payment(query_id))
        fake_telegram.reset()

    assert len(set(charges)) == 4
    assert all(charge.startswith("stx") for charge in charges)


def test_duplicate_delivery_has_the_same_charge_id(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """inject_duplicate_payment delivers the same payment again under a new update_id."""
    send_pro_invoice(bot)
    query_id = fake_telegram.inject_pre_checkout_query(CHAT)
    bot.answer_pre_checkout_query(query_id, ok=True)
    charge_id = fake_telegram.inject_successful_payment(query_id)

    duplicate = fake_telegram.inject_duplicate_payment(charge_id)
    updates = [u for u in bot.get_updates() if u.message is not None]

    assert len(updates) == 2
    first, second = updates
    assert second.update_id == duplicate["update_id"] > first.update_id
    assert second.message.message_id == first.message.message_id
    charges = [u.message.successful_payment.telegram_payment_charge_id for u in updates]
    assert charges == [charge_id, charge_id]
    assert fake_telegram.payments()[0]["update_ids"] == [first.update_id, second.update_id]
    with pytest.raises(LookupError):
        fake_telegram.inject_duplicate_payment("stx-unknown")


def test_pay_invoice_waits_for_the_bot(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """pay_invoice injects the query, waits for the bot's ok answer and completes the payment."""
    send_pro_invoice(bot)
    player = threading.Thread(target=answer_first_query, args=(bot, True))
    player.start()

    charge_id = fake_telegram.pay_invoice(CHAT, timeout=HANG_GUARD)
    player.join(HANG_GUARD)

    [payment] = fake_telegram.payments()
    assert payment["telegram_payment_charge_id"] == charge_id
    assert payment["invoice_payload"] == "plan:pro"
    [answer] = fake_telegram.pre_checkout_answers()
    assert answer["ok"] is True
    pending = fake_telegram.pending_updates()[-1]
    assert pending["message"]["successful_payment"]["telegram_payment_charge_id"] == charge_id


def test_pay_invoice_fails_on_refusal_or_silence(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """pay_invoice raises AssertionError when the bot refuses or does not answer."""
    send_pro_invoice(bot)
    player = threading.Thread(target=answer_first_query, args=(bot, False, "Price changed"))
    player.start()

    with pytest.raises(AssertionError, match="Price changed"):
        fake_telegram.pay_invoice(CHAT, timeout=HANG_GUARD)
    player.join(HANG_GUARD)
    with pytest.raises(AssertionError, match="answerPreCheckoutQuery"):
        fake_telegram.pay_invoice(CHAT, timeout=0.2)
    assert fake_telegram.payments() == []


# ------------------------------------------------------------------------------ allowed_updates


def test_get_updates_allowed_updates_filters_payment_updates(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """pre_checkout_query is its own update type; successful_payment comes as a message."""
    send_pro_invoice(bot)
    dropped = fake_telegram.inject_pre_checkout_query(CHAT)
    bot.answer_pre_checkout_query(dropped, ok=True)
    fake_telegram.inject_successful_payment(dropped)

    only_messages = bot.get_updates(allowed_updates=["message"])
    query_id = fake_telegram.inject_pre_checkout_query(CHAT)
    only_queries = bot.get_updates(allowed_updates=["pre_checkout_query"])
    everything = bot.get_updates(allowed_updates=[])

    assert [u.message.successful_payment is not None for u in only_messages] == [True]
    assert [u.pre_checkout_query.id for u in only_queries] == [query_id]
    assert [u.pre_checkout_query.id for u in everything] == [query_id]


def test_webhook_obeys_allowed_updates_for_payments(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram, receiver: Receiver
) -> None:
    """A webhook without pre_checkout_query in allowed_updates never gets the query."""
    send_pro_invoice(bot)
    bot.set_webhook(url=receiver.url, allowed_updates=["message"])
    query_id = fake_telegram.inject_pre_checkout_query(CHAT)
    bot.answer_pre_checkout_query(query_id, ok=True)
    charge_id = fake_telegram.inject_successful_payment(query_id)

    [received] = receiver.wait_for(1)
    fake_telegram.wait_for_delivery(lambda d: d.ok)
    bot.set_webhook(url=receiver.url, allowed_updates=["pre_checkout_query"])
    second = fake_telegram.inject_pre_checkout_query(CHAT)
    later = receiver.wait_for(2)[1]

    assert received["body"]["message"]["successful_payment"]["telegram_payment_charge_id"] == (
        charge_id
    )
    assert later["body"]["pre_checkout_query"]["id"] == second
    assert all("pre_checkout_query" not in r["body"] or r is later for r in receiver.received)


# ------------------------------------------------------------------------------ refunds


def paid(bot: telebot.TeleBot, fake: FakeTelegram, user_id: int = CHAT) -> str:
    """Send an invoice to ``user_id`` and pay it; returns the charge id."""
    send_pro_invoice(bot, user_id)
    query_id = fake.inject_pre_checkout_query(user_id)
    bot.answer_pre_checkout_query(query_id, ok=True)
    return fake.inject_successful_payment(query_id)


def test_refund_star_payment_once(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """A charge is refunded once; unknown charges, other users' charges and no user are 400."""
    charge_id = paid(bot, fake_telegram)
    other_charge = paid(bot, fake_telegram, CHAT + 1)

    assert bot.refund_star_payment(CHAT, charge_id) is True
    again = api_error(bot.refund_star_payment, CHAT, charge_id)
    unknown = api_error(bot.refund_star_payment, CHAT, "stx-unknown")
    not_theirs = api_error(bot.refund_star_payment, CHAT, other_charge)
    no_user = post(fake_telegram, "refundStarPayment", {"telegram_payment_charge_id": charge_id})

    assert (again.error_code, again.description) == (400, "Bad Request: CHARGE_ALREADY_REFUNDED")
    assert unknown.description == "Bad Request: CHARGE_ID_INVALID"
    assert not_theirs.description == "Bad Request: CHARGE_ID_INVALID"
    assert no_user.json()["description"] == "Bad Request: invalid user_id specified"
    [refund] = fake_telegram.refunds()
    assert refund["telegram_payment_charge_id"] == charge_id
    assert (refund["user_id"], refund["total_amount"], refund["invoice_payload"]) == (
        CHAT,
        250,
        "plan:pro",
    )
    assert [(p["telegram_payment_charge_id"], p["refunded"]) for p in fake_telegram.payments()] == [
        (charge_id, True),
        (other_charge, False),
    ]


def test_get_star_transactions_lists_payments_and_refunds(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """Payments come in with a source, refunds go out with a receiver, oldest first."""
    charge_id = paid(bot, fake_telegram)
    bot.refund_star_payment(CHAT, charge_id)

    transactions = bot.get_star_transactions().transactions
    second = bot.get_star_transactions(offset=1, limit=1).transactions

    assert [(t.id, t.amount) for t in transactions] == [(charge_id, 250), (charge_id, 250)]
    incoming, outgoing = transactions
    assert incoming.source.user.id == CHAT
    assert incoming.source.invoice_payload == "plan:pro"
    assert incoming.receiver is None
    assert outgoing.receiver.user.id == CHAT
    assert outgoing.source is None
    assert [t.receiver is not None for t in second] == [True]


# ------------------------------------------------------------------------------ reset


def test_reset_forgets_payments(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """Reset clears invoices, answers, payments, refunds and transactions."""
    charge_id = paid(bot, fake_telegram)
    bot.refund_star_payment(CHAT, charge_id)
    pending = fake_telegram.inject_pre_checkout_query(CHAT)

    fake_telegram.reset()

    assert fake_telegram.invoices() == []
    assert fake_telegram.pre_checkout_answers() == []
    assert fake_telegram.payments() == []
    assert fake_telegram.refunds() == []
    assert bot.get_star_transactions().transactions == []
    assert api_error(bot.answer_pre_checkout_query, pending, ok=True).error_code == 400
    assert api_error(bot.refund_star_payment, CHAT, charge_id).error_code == 400
    with pytest.raises(LookupError):
        fake_telegram.inject_pre_checkout_query(CHAT)
