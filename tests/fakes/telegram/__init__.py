"""A fake Telegram Bot API server for tests.

:class:`FakeTelegram` is a real HTTP server on ``127.0.0.1`` (a random free port) that answers
``/bot<token>/<method>`` the way ``api.telegram.org`` does, so the product can be driven through
its real client (pyTelegramBotAPI) by pointing ``telebot.apihelper.API_URL`` at
:attr:`FakeTelegram.api_url_template`. Tests drive the "user side" with
:meth:`~FakeTelegram.inject_message`, :meth:`~FakeTelegram.press_button` and
:meth:`~FakeTelegram.inject_update`, and inspect what the bot did with
:meth:`~FakeTelegram.calls`, :meth:`~FakeTelegram.wait_for_call` and
:meth:`~FakeTelegram.messages`::

    with FakeTelegram() as fake:
        telebot.apihelper.API_URL = fake.api_url_template
        fake.inject_message(7, "/start")
        call = fake.wait_for_call("sendMessage")

Behaviour that mirrors Telegram:

* parameters are read from the query string (GET and POST), from urlencoded, multipart and JSON
  bodies; JSON-typed parameters sent as strings (``reply_markup``, ``commands``...) are decoded;
* answers are ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
  "description": ..., "parameters": ...}`` with the HTTP status equal to ``error_code``;
* ``getUpdates`` is a real long poll with offset acknowledgement and ``allowed_updates``; a newer
  ``getUpdates`` terminates an older one with 409, and an active webhook forbids it (409);
* with a webhook set, updates are POSTed to it one at a time, in order, and retried on failure;
* ``parse_mode=HTML`` is validated like Telegram's parser (a port of TDLib's ``parse_html``), the
  stored message holds the parsed text and entities (offsets in UTF-16 code units) and the
  leading/trailing whitespace is trimmed;
* Telegram Stars payments: ``sendInvoice`` posts an invoice message; the user side is
  :meth:`~FakeTelegram.pay_invoice`, or step by step
  :meth:`~FakeTelegram.inject_pre_checkout_query` (a ``pre_checkout_query`` update the bot must
  answer within 10 s, once), :meth:`~FakeTelegram.inject_successful_payment` (a ``message`` with
  ``successful_payment`` and a new charge id) and :meth:`~FakeTelegram.inject_duplicate_payment`
  (the same payment delivered again); ``refundStarPayment`` refunds a charge once and
  ``getStarTransactions`` lists payments and refunds.

Deliberate differences: a ``&`` that does not start ``&lt;``, ``&gt;``, ``&amp;``, ``&quot;`` or a
numeric reference is rejected (Telegram keeps it literally; pass ``strict_html_entities=False``
to get that), webhooks may use plain ``http://`` URLs on any port, ``Markdown``/``MarkdownV2``
text is stored unparsed, payments only exist in Telegram Stars (``sendInvoice`` with another
currency answers ``PAYMENT_PROVIDER_INVALID`` whatever the provider token), and only the methods
listed in :data:`SUPPORTED_METHODS` exist (any other answers 404 ``Not Found``, so an
unexpected call is loud). Errors Telegram would give on its own (403 blocked by the user...) only
happen when a test asks for them with :meth:`FakeTelegram.fail_next`; flood control (429 with
``retry_after``) is enforced when the fake is given :class:`FloodLimits` (``flood.py``: a
bot-wide and a per-chat token bucket, 20 per minute per group, growing penalties for calls sent
into a 429).

Layout (the names exported here are the API; ``_``-prefixed names in the modules are internal
to the package):

* ``fake.py`` -- :class:`FakeTelegram`: lifecycle and everything a test calls on it;
* ``api.py`` -- request dispatch and the Bot API methods (:data:`SUPPORTED_METHODS`);
* ``state.py`` -- the bookkeeping shared by the parts: calls, chats and messages, users, pending
  updates, webhook settings;
* ``flood.py`` -- :class:`FloodLimits`, the flood control;
* ``webhook.py`` -- the webhook delivery thread;
* ``server.py`` -- the HTTP server and request handler;
* ``html.py`` -- the port of Telegram's HTML parser (:func:`parse_html`);
* ``params.py`` -- reading and decoding request parameters;
* ``markup.py`` -- keyboard (reply markup) validation;
* ``payments.py`` -- ``sendInvoice`` parameter checks and the Telegram Stars payment objects;
* ``answers.py`` -- answer envelopes and Telegram's error texts;
* ``records.py`` -- :class:`Call`, :class:`Delivery` and :class:`UploadedFile`;
* ``tests/`` -- the fake's own tests.
"""

from tests.fakes.telegram.answers import (
    NOT_MODIFIED,
    POLLING_CONFLICT,
    QUERY_TOO_OLD,
    WEBHOOK_CONFLICT,
)
from tests.fakes.telegram.api import MAX_MESSAGE_LENGTH, SUPPORTED_METHODS
from tests.fakes.telegram.fake import FakeTelegram
from tests.fakes.telegram.flood import COUNTED_METHODS, FloodLimits
from tests.fakes.telegram.html import HtmlParseError, parse_html, utf16_length
from tests.fakes.telegram.markup import MAX_CALLBACK_DATA_BYTES
from tests.fakes.telegram.payments import PRE_CHECKOUT_TIMEOUT, STARS_CURRENCY
from tests.fakes.telegram.records import Call, Delivery, UploadedFile

__all__ = [
    "COUNTED_METHODS",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_MESSAGE_LENGTH",
    "NOT_MODIFIED",
    "POLLING_CONFLICT",
    "PRE_CHECKOUT_TIMEOUT",
    "QUERY_TOO_OLD",
    "STARS_CURRENCY",
    "SUPPORTED_METHODS",
    "WEBHOOK_CONFLICT",
    "Call",
    "Delivery",
    "FakeTelegram",
    "FloodLimits",
    "HtmlParseError",
    "UploadedFile",
    "parse_html",
    "utf16_length",
]
