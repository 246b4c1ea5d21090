"""The admin API's payments: the list, and refunds through the (fake) Bot API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from shared.db import db
from shared.models import Payment, Plan, PlanChange, User
from shared.services import payments
from shared.services.plans import PlanSpec
from shared.services.users import get_user
from shared.telegram.client import ATTEMPTS
from tests.fakes.telegram import FakeTelegram
from tests.web.test_api_plans import ApiClient, error_of, plans_by_name, seeded_api

PAYMENT_FIELDS = {"id", "telegram_id", "plan_id", "plan_name", "stars", "period_days",
                  "telegram_payment_charge_id", "status", "created_at", "refunded_at",
                  "refunded_by"}  # fmt: skip


def pay(app: Flask, fake: FakeTelegram, telegram_id: int, plan_id: int) -> int:
    """A user buys a plan in Stars: Telegram charges them, the product records the payment.

    The user pays in the fake Bot API (pre-checkout query, answered ``ok`` the way the bot
    answers it, then ``successful_payment``), so the fake knows the charge and can refund it;
    the ``successful_payment`` it delivered is recorded by ``payments.record_payment``.

    Args:
        app: The app (the user must exist).
        fake: The fake Bot API.
        telegram_id: The buyer.
        plan_id: A plan on sale.

    Returns:
        The payment's id.
    """
    with app.app_context():
        spec = PlanSpec.from_plan(db.session.get(Plan, plan_id))
    query_id = fake.inject_pre_checkout_query(
        telegram_id,
        total_amount=spec.price_stars,
        invoice_payload=payments.invoice_payload(spec, telegram_id),
    )
    answer = requests.post(
        fake.api_url_template.format(fake.token, "answerPreCheckoutQuery"),
        json={"pre_checkout_query_id": query_id, "ok": True},
        timeout=10,
    )
    assert answer.ok, answer.text
    charge_id = fake.inject_successful_payment(query_id)
    [paid] = [p for p in fake.payments() if p["telegram_payment_charge_id"] == charge_id]
    with app.app_context():
        purchase = payments.record_payment(
            get_user(telegram_id), paid["message"]["successful_payment"]
        )
        db.session.commit()
    assert purchase is not None
    return purchase.payment_id


@pytest.fixture()
def api(client: FlaskClient, app: Flask, telegram: FakeTelegram) -> ApiClient:
    """An API client; plans seeded; the bot token is the fake Bot API's; users 111 and 222."""
    api = seeded_api(client, app)
    assert api.patch("/settings", json={"telegram_bot_token": telegram.token}).status_code == 200
    for telegram_id in (111, 222):
        assert api.post("/users", json={"telegram_id": telegram_id}).status_code == 201
    return api


def _user_plan(app: Flask, telegram_id: int) -> tuple[int | None, datetime | None, int]:
    """The user's stored plan, its end, and how many plan changes they have."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.telegram_id == telegram_id))
        changes = db.session.scalar(
            select(func.count()).select_from(PlanChange).where(PlanChange.user_id == user.id)
        )
        return user.plan_id, user.plan_expires_at, changes


def test_payments_are_listed_newest_first_and_filtered(
    api: ApiClient, app: Flask, telegram: FakeTelegram
) -> None:
    """Every field; newest first; by buyer, by status, paged; bad filters are 400s."""
    paid = plans_by_name(api)["Paid"]
    first = pay(app, telegram, 111, paid["id"])
    second = pay(app, telegram, 222, paid["id"])
    third = pay(app, telegram, 111, paid["id"])
    assert api.post(f"/payments/{first}/refund").status_code == 200

    listing = api.get("/payments").get_json()
    assert listing["total"] == 3
    assert [p["id"] for p in listing["items"]] == [third, second, first]
    item = listing["items"][0]
    assert set(item) == PAYMENT_FIELDS
    charges = {p["telegram_payment_charge_id"] for p in telegram.payments()}
    assert item["telegram_payment_charge_id"] in charges
    assert (item["telegram_id"], item["plan_id"], item["plan_name"]) == (111, paid["id"], "Paid")
    assert (item["stars"], item["period_days"], item["status"]) == (250, 30, "paid")
    assert item["refunded_at"] is None and item["refunded_by"] is None
    assert datetime.fromisoformat(item["created_at"]) <= datetime.now(UTC)

    mine = api.get("/payments?telegram_id=111").get_json()
    assert mine["total"] == 2 and [p["id"] for p in mine["items"]] == [third, first]
    refunded = api.get("/payments?status=refunded").get_json()
    assert refunded["total"] == 1 and refunded["items"][0]["id"] == first
    assert api.get("/payments?status=paid&telegram_id=111").get_json()["total"] == 1
    assert api.get("/payments?telegram_id=333").get_json() == {"items": [], "total": 0}
    page = api.get("/payments?limit=1&offset=1").get_json()
    assert page["total"] == 3 and [p["id"] for p in page["items"]] == [second]
    assert api.get("/payments?status=").get_json()["total"] == 3  # empty = absent
    for bad in ("status=lost", "telegram_id=x", "telegram_id=0", "limit=0", "offset=-1",
                f"telegram_id={2**64}"):  # fmt: skip
        error_of(api.get(f"/payments?{bad}"), 400, "validation_error")


def test_a_refund_returns_the_stars_and_takes_the_period_back(
    api: ApiClient, app: Flask, telegram: FakeTelegram
) -> None:
    """Two purchases (60 days); refunding one takes 30 days back, the other the plan itself."""
    plans = plans_by_name(api)
    paid = plans["Paid"]
    first = pay(app, telegram, 111, paid["id"])
    second = pay(app, telegram, 111, paid["id"])
    plan_id, bought_until, changes = _user_plan(app, 111)
    assert plan_id == paid["id"] and changes == 2
    assert bought_until > datetime.now(UTC) + timedelta(days=59)

    refunded = api.post(f"/payments/{second}/refund")

    assert refunded.status_code == 200, refunded.get_data(as_text=True)
    body = refunded.get_json()
    assert set(body) == PAYMENT_FIELDS and body["id"] == second
    assert body["status"] == "refunded" and body["refunded_by"] == "ADMIN_API_TOKEN"
    assert datetime.now(UTC) - datetime.fromisoformat(body["refunded_at"]) < timedelta(minutes=5)
    [refund] = telegram.refunds()
    assert refund["user_id"] == 111
    assert refund["telegram_payment_charge_id"] == body["telegram_payment_charge_id"]
    plan_id, until, changes = _user_plan(app, 111)
    assert plan_id == paid["id"] and until == bought_until - timedelta(days=30)
    user = api.get("/users/111").get_json()
    assert user["plan_id"] == paid["id"]
    assert datetime.fromisoformat(user["plan_expires_at"]) == until
    change = user["plan_history"][0]
    assert change["reason"] == "refund" and change["actor"] == "ADMIN_API_TOKEN"
    assert change["payment_id"] == second and change["to_plan_name"] == "Paid"

    assert api.post(f"/payments/{first}/refund").status_code == 200
    user = api.get("/users/111").get_json()
    assert user["plan_id"] == plans["Free"]["id"] and user["plan_expires_at"] is None
    assert user["plan_history"][0]["reason"] == "refund"
    assert user["plan_history"][0]["to_plan_name"] is None
    assert len(telegram.refunds()) == 2
    assert api.get("/payments?status=paid").get_json()["total"] == 0


def test_a_payment_is_refunded_once(api: ApiClient, app: Flask, telegram: FakeTelegram) -> None:
    """A second refund is a 409, and Telegram is not asked again."""
    payment_id = pay(app, telegram, 111, plans_by_name(api)["Paid"]["id"])
    assert api.post(f"/payments/{payment_id}/refund").status_code == 200
    before = _user_plan(app, 111)

    error = error_of(api.post(f"/payments/{payment_id}/refund"), 409, "conflict")

    assert "refunded" in error["message"]
    assert len(telegram.calls("refundStarPayment")) == 1
    assert _user_plan(app, 111) == before


@pytest.mark.parametrize(
    ("refusal", "times"),
    [
        ({"error_code": 400, "description": "Bad Request: CHARGE_ID_INVALID"}, 1),
        ({"error_code": 429, "retry_after": 1}, ATTEMPTS),  # waited out, then given up
        ({"error_code": 500, "description": "Internal Server Error"}, ATTEMPTS),
    ],
)
def test_when_telegram_refuses_nothing_changes(
    api: ApiClient, app: Flask, telegram: FakeTelegram, refusal: dict, times: int
) -> None:
    """Telegram says no: 502 bad_gateway, the payment stays paid, the plan stays; retry works."""
    payment_id = pay(app, telegram, 111, plans_by_name(api)["Paid"]["id"])
    before = _user_plan(app, 111)
    telegram.fail_next("refundStarPayment", times=times, **refusal)

    error = error_of(api.post(f"/payments/{payment_id}/refund"), 502, "bad_gateway")

    assert "Telegram" in error["message"]
    assert telegram.refunds() == []
    assert api.get("/payments").get_json()["items"][0]["status"] == "paid"
    assert _user_plan(app, 111) == before
    with app.app_context():
        row = db.session.get(Payment, payment_id)
        assert (row.refunded_at, row.refunded_by) == (None, None)

    # Telegram answers again: the same refund goes through.
    assert api.post(f"/payments/{payment_id}/refund").status_code == 200
    assert len(telegram.refunds()) == 1


def test_without_a_bot_token_a_refund_is_refused(
    api: ApiClient, app: Flask, telegram: FakeTelegram
) -> None:
    """No bot token: Telegram cannot be asked, so nothing is refunded (502)."""
    payment_id = pay(app, telegram, 111, plans_by_name(api)["Paid"]["id"])
    api.patch("/settings", json={"telegram_bot_token": None})
    error = error_of(api.post(f"/payments/{payment_id}/refund"), 502, "bad_gateway")
    assert "reached" in error["message"]
    assert api.get("/payments?status=paid").get_json()["total"] == 1


def test_unknown_payments_are_404(api: ApiClient) -> None:
    """Ids no payment has (or can have) are 404 not_found."""
    for payment_id in (1, 99999, 2**31, 2**63):
        error_of(api.post(f"/payments/{payment_id}/refund"), 404, "not_found")
    error_of(api.get("/payments/1/refund"), 405)


def test_openapi_documents_payments_and_the_refund_refusals(client: FlaskClient) -> None:
    """The list's filters, the payment's fields and every answer of the refund."""
    document = client.get("/admin/api/openapi.json").get_json()
    assert set(document["components"]["schemas"]["Payment"]["properties"]) == PAYMENT_FIELDS
    refund = document["paths"]["/admin/api/payments/{payment_id}/refund"]["post"]
    assert {"200", "401", "404", "409", "502"} <= set(refund["responses"])
    assert refund["responses"]["502"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Error"
    )
    assert "requestBody" not in refund
