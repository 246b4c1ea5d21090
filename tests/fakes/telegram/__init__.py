"""A fake Telegram Bot API server for tests.

:class:`FakeTelegram` is a real HTTP server on ``127.0.0.1`` (a random free port) that answers
``/bot<token>/<method>`` the way ``api.telegram.org`` does, so the product can be driven through
its real client (pyTelegramBotAPI) by pointing ``telebot.apihelper.API_URL`` at
:attr:`FakeTelegram.api_url_template` (and ``FILE_URL`` at :attr:`FakeTelegram.file_url_template`).
Tests drive the "user side" with :meth:`~FakeTelegram.inject_message`,
:meth:`~FakeTelegram.inject_photo`, :meth:`~FakeTelegram.inject_voice`,
:meth:`~FakeTelegram.inject_audio`, :meth:`~FakeTelegram.inject_document`,
:meth:`~FakeTelegram.press_button` and :meth:`~FakeTelegram.inject_update`, and inspect what the
bot did with :meth:`~FakeTelegram.calls`, :meth:`~FakeTelegram.wait_for_call`,
:meth:`~FakeTelegram.messages` and :meth:`~FakeTelegram.downloads`::

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
* a user's text (or caption) gets a ``bot_command`` entity for a leading ``/command`` and a
  ``mention`` entity for every ``@username``, in UTF-16 code units;
* files: the injected photos (one file per size), voice messages, audio files and documents, and
  :meth:`~FakeTelegram.add_file`, go to a file store; ``getFile`` hands out a ``file_path``
  (``photos/file_3.jpg``, ``voice/file_4.oga``...) and ``GET /file/bot<token>/<file_path>``
  answers the bytes (:meth:`~FakeTelegram.fail_next_download` makes downloads fail); a file
  over :data:`MAX_DOWNLOAD_SIZE` (20 MB, a size a test may declare without the bytes) is
  refused ("file is too big"), as is an unknown ``file_id``;
* groups and forum topics: :meth:`~FakeTelegram.add_group` names a group (``title``, ``type``,
  ``is_forum``); a message injected with ``thread_id`` is a topic message
  (``message_thread_id``, ``is_topic_message``) and ``sendMessage``/``sendInvoice`` keep the
  ``message_thread_id`` they are given; a message injected with ``reply_to_message_id`` embeds
  the replied message (the bot's messages are ``from`` the bot user);
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
text is stored unparsed, a message in a forum topic only has a ``reply_to_message`` when the
test gives ``reply_to_message_id`` (Telegram also sets it to the topic's creation message), a
user's text only gets ``bot_command`` (leading) and ``mention`` entities (no URLs, hashtags...),
each size of a photo downloads as the whole injected bytes whatever its ``file_size``, a
``file_path`` only downloads after ``getFile`` handed it out (until a reset),
payments only exist in Telegram Stars (``sendInvoice`` with another currency answers
``PAYMENT_PROVIDER_INVALID`` whatever the provider token), and only the methods listed in
:data:`SUPPORTED_METHODS` exist (any other answers 404 ``Not Found``, so an
unexpected call is loud). Errors Telegram would give on its own (403 blocked by the user...) only
happen when a test asks for them with :meth:`FakeTelegram.fail_next`; flood control (429 with
``retry_after``) is enforced when the fake is given :class:`FloodLimits` (``flood.py``: a
bot-wide and a per-chat token bucket, 20 per minute per group, growing penalties for calls sent
into a 429).

Layout (the names exported here are the API; ``_``-prefixed names in the modules are internal
to the package):

* ``fake.py`` -- :class:`FakeTelegram`: lifecycle and everything a test calls on it;
* ``api.py`` -- request dispatch and the Bot API methods (:data:`SUPPORTED_METHODS`);
* ``state.py`` -- the bookkeeping shared by the parts: calls, chats and messages, users, groups,
  files, pending updates, webhook settings;
* ``files.py`` -- the file store, ``file_path`` naming and the downloads
  (:data:`MAX_DOWNLOAD_SIZE`);
* ``flood.py`` -- :class:`FloodLimits`, the flood control;
* ``webhook.py`` -- the webhook delivery thread;
* ``server.py`` -- the HTTP server and request handler (Bot API calls and file downloads);
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
from tests.fakes.telegram.files import MAX_DOWNLOAD_SIZE
from tests.fakes.telegram.flood import COUNTED_METHODS, FloodLimits
from tests.fakes.telegram.html import HtmlParseError, parse_html, utf16_length
from tests.fakes.telegram.markup import MAX_CALLBACK_DATA_BYTES
from tests.fakes.telegram.payments import PRE_CHECKOUT_TIMEOUT, STARS_CURRENCY
from tests.fakes.telegram.records import Call, Delivery, UploadedFile

__all__ = [
    "COUNTED_METHODS",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_DOWNLOAD_SIZE",
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
