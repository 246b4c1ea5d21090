"""Telegram Stars payments: checking ``sendInvoice`` parameters and building payment objects.

The fake only speaks Telegram Stars (currency ``XTR``, no payment provider). The checks follow the
Bot API server (missing parameters, unparsable prices), TDLib (the total must be positive) and
Telegram's own answers (``STARS_INVOICE_INVALID``, ``PAYMENT_PROVIDER_INVALID``...). The names
answered for a too long title or description are a guess: Telegram documents only the limits.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.fakes.telegram.answers import _ApiError, _bad_request
from tests.fakes.telegram.markup import _checked_inline_markup

#: The currency code of Telegram Stars, the only currency the fake accepts.
STARS_CURRENCY = "XTR"
#: Seconds Telegram waits for ``answerPreCheckoutQuery`` before the query expires.
PRE_CHECKOUT_TIMEOUT = 10.0

_MAX_TITLE_LENGTH = 32
_MAX_DESCRIPTION_LENGTH = 255
_MAX_PAYLOAD_BYTES = 128


def _required_string(params: dict[str, Any], name: str) -> str:
    """A required string parameter, with the Bot API's answer when it is missing or empty."""
    value = params.get(name)
    if value is None or value == "":
        raise _bad_request(f'parameter "{name}" is required')
    return value if isinstance(value, str) else str(value)


def _checked_invoice(params: dict[str, Any]) -> dict[str, Any]:
    """Check the invoice parameters of ``sendInvoice``.

    Returns:
        ``title``, ``description``, ``payload``, ``currency``, ``prices`` (the LabeledPrice
        objects), ``total_amount`` and ``start_parameter``.
    """
    title = _required_string(params, "title")
    description = _required_string(params, "description")
    payload = _required_string(params, "payload")
    currency = _required_string(params, "currency")
    if "prices" not in params or params["prices"] == "":
        raise _bad_request('parameter "prices" is required')
    prices = _checked_prices(params["prices"])
    total_amount = sum(price["amount"] for price in prices)
    if total_amount <= 0:
        raise _bad_request("total price must be positive")
    if not 1 <= len(title) <= _MAX_TITLE_LENGTH:
        raise _bad_request("TITLE_INVALID")
    if not 1 <= len(description) <= _MAX_DESCRIPTION_LENGTH:
        raise _bad_request("DESCRIPTION_INVALID")
    if len(payload.encode("utf-8")) > _MAX_PAYLOAD_BYTES:
        raise _bad_request("INVOICE_PAYLOAD_INVALID")
    if currency != STARS_CURRENCY:
        # With a real provider token Telegram would take other currencies; the fake has none.
        raise _bad_request("PAYMENT_PROVIDER_INVALID")
    if (
        params.get("provider_token")
        or len(prices) != 1
        or params.get("max_tip_amount")
        or params.get("suggested_tip_amounts")
    ):
        raise _bad_request("STARS_INVOICE_INVALID")
    start_parameter = params.get("start_parameter") or ""
    return {
        "title": title,
        "description": description,
        "payload": payload,
        "currency": currency,
        "prices": prices,
        "total_amount": total_amount,
        "start_parameter": str(start_parameter),
    }


def _checked_prices(value: Any) -> list[dict[str, Any]]:
    """Parse the ``prices`` array of LabeledPrice objects the way the Bot API does."""
    if not isinstance(value, list):
        raise _bad_request("expected an Array of labeled prices")
    prices = []
    for item in value:
        if not isinstance(item, dict):
            raise _price_error("LabeledPrice must be an Object")
        label = item.get("label")
        if label is None:
            raise _price_error('Can\'t find field "label"')
        if not isinstance(label, str):
            raise _price_error('Field "label" must be of type String')
        if not label:
            raise _price_error("LabeledPrice label must be non-empty")
        amount = item.get("amount")
        if amount is None:
            raise _price_error('Can\'t find field "amount"')
        if isinstance(amount, str) and amount.lstrip("-").isdigit():
            amount = int(amount)
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise _price_error('Field "amount" must be a valid Number')
        prices.append({"label": label, "amount": amount})
    if not prices:
        raise _bad_request("there must be at least one price")
    return prices


def _price_error(reason: str) -> _ApiError:
    return _bad_request(f"can't parse labeled price: {reason}")


def _checked_invoice_markup(markup: Any) -> dict[str, Any] | None:
    """Check an invoice's inline keyboard: when given, its first button must be a Pay button."""
    checked = _checked_inline_markup(markup)
    if checked is not None:
        first = next(button for row in checked["inline_keyboard"] for button in row)
        if first.get("pay") is not True:
            raise _bad_request("REPLY_MARKUP_BUY_EMPTY")
    return checked


def _invoice_object(invoice: dict[str, Any]) -> dict[str, Any]:
    """The ``Invoice`` object of the message ``sendInvoice`` creates."""
    return {
        "title": invoice["title"],
        "description": invoice["description"],
        "start_parameter": invoice["start_parameter"],
        "currency": invoice["currency"],
        "total_amount": invoice["total_amount"],
    }


def _star_transaction(payment: dict[str, Any], *, refund: bool, date: int) -> dict[str, Any]:
    """A ``StarTransaction``: the user's payment (``source``) or its refund (``receiver``)."""
    partner = {
        "type": "user",
        "transaction_type": "invoice_payment",
        "user": copy.deepcopy(payment["user"]),
        "invoice_payload": payment["invoice_payload"],
    }
    return {
        "id": payment["telegram_payment_charge_id"],
        "amount": payment["total_amount"],
        "date": date,
        "receiver" if refund else "source": partner,
    }
