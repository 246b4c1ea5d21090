"""The admin's plans and payments: the Plans and Payments pages, and plans on the user pages.

Everything runs on the real app, database and Redis; a refund goes to the fake Bot API, which
only refunds a charge it made (a payment played through it: invoice, pre-checkout, payment).
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from shared.db import db
from shared.models import (
    LLMModel,
    Payment,
    PaymentStatus,
    Plan,
    PlanChange,
    PlanChangeReason,
    RequestStatus,
    User,
)
from shared.models.types import utcnow
from shared.services import payments, plans
from shared.services.catalog import seed_catalog
from shared.services.settings import set_setting
from tests.fakes.telegram import FakeTelegram
from tests.shared.support import add_request, add_user
from tests.support import ADMIN_USERNAME
from tests.web.test_admin_login import login

#: The plan form with every field; tests override what they check.
PLAN_FORM = {
    "name": "Pro",
    "description": "",
    "requests_per_day": "",
    "tokens_per_day": "",
    "tokens_per_month": "",
    "cost_usd_per_month": "",
    "fallback_model_id": "0",
    "price_stars": "",
    "period_days": "30",
}


@pytest.fixture()
def admin(client, app: Flask):
    """A logged-in admin, with the seeded modes and plans («Free» the default, «Paid»)."""
    with app.app_context():
        seed_catalog(app.config["AI_ROUTER"])
        plans.seed_plans()
        db.session.commit()
    assert login(client).status_code == 302
    return client


def _text(page: str) -> str:
    """A page's visible text (tags dropped, entities read, spaces collapsed)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _csrf(client, path: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get(path).text)
    assert match, f"{path} has a CSRF token"
    return match.group(1)


def _flashes(page: str) -> str:
    """The text of the page's flashed messages (Bootstrap alerts)."""
    return " ".join(
        _text(m) for m in re.findall(r'<div class="alert[^"]*"[^>]*>(.*?)</div>', page, re.S)
    )


def _plan_id(app: Flask, name: str) -> int:
    with app.app_context():
        return db.session.scalar(select(Plan.id).where(Plan.name == name))


def _defaults(app: Flask) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Plan.name).where(Plan.is_default)))


def _add_models(app: Flask, *names: str) -> list[int]:
    with app.app_context():
        models = [LLMModel(name=n, model=n, base_url="http://127.0.0.1:9/v1") for n in names]
        db.session.add_all(models)
        db.session.commit()
        return [m.id for m in models]


def _row(page: str, column: str, value: str) -> str | None:
    """The list row (its HTML) whose ``column`` cell reads ``value``."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S):
        cell = re.search(rf'class="col-{column}">(.*?)</td>', row, re.S)
        if cell and _text(cell.group(1)) == value:
            return row
    return None


def _post_plan(client, path: str, **fields: object) -> object:
    data = {**PLAN_FORM, **fields, "csrf_token": _csrf(client, path)}
    return client.post(path, data={k: v for k, v in data.items() if v is not None})


# -- pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/plan/", "/admin/plan/new/", "/admin/payment/"])
def test_anonymous_gets_no_plans_or_payments(client, path: str) -> None:
    """The new pages send anonymous visitors to the login form."""
    response = client.get(path)
    assert response.status_code == 302 and "/admin/login/" in response.headers["Location"]


def test_every_new_page_renders(admin, app: Flask) -> None:
    """Plans (list, new, edit, details), Payments (list, details) and the user's Plan section."""
    with app.app_context():
        user = add_user(501)
        payment = Payment(
            user_id=user.id,
            telegram_id=501,
            plan_id=None,
            plan_name="Paid",
            stars=250,
            period_days=30,
            telegram_payment_charge_id="stx-page",
            invoice_payload="plan:2:250:501",
        )
        db.session.add(payment)
        db.session.commit()
        user_id, payment_id = user.id, payment.id
    free = _plan_id(app, "Free")
    menu = admin.get("/admin/").text
    assert (
        menu.index('href="/admin/mode/"')
        < menu.index('href="/admin/plan/"')
        < menu.index('href="/admin/payment/"')
        < menu.index('href="/admin/message/"')
    ), "Plans and Payments come after Modes in the menu"
    for path in (
        "/admin/plan/",
        "/admin/plan/new/",
        f"/admin/plan/edit/?id={free}",
        f"/admin/plan/details/?id={free}",
        "/admin/payment/",
        f"/admin/payment/details/?id={payment_id}",
    ):
        assert admin.get(path).status_code == 200, path
    plans_page = _text(admin.get("/admin/plan/").text)
    for header in (
        "Requests / day",
        "Tokens / day",
        "Tokens / month",
        "$ / month",
        "Models",
        "Price ⭐",
        "Period, days",
        "Default",
    ):
        assert header in plans_page, header
    assert "Free" in plans_page and "Paid" in plans_page and "250 ⭐" in plans_page
    user_page = admin.get(f"/admin/user/activity/{user_id}").text
    assert 'id="plan-section"' in user_page and 'id="plan-history"' in user_page
    assert "Change plan" in user_page
    # No create, edit or delete of payments: the pages send back to the list.
    assert admin.get("/admin/payment/new/").status_code == 302
    assert admin.get(f"/admin/payment/edit/?id={payment_id}").status_code == 302


# -- plans ------------------------------------------------------------------------------------


def test_create_a_plan_with_every_field(admin, app: Flask) -> None:
    """The form saves through the service: models, fallback, price; empty limits = unlimited."""
    fast, slow = _add_models(app, "Fast", "Slow")
    response = _post_plan(
        admin,
        "/admin/plan/new/",
        name="Pro",
        description="For power users",
        requests_per_day="100",
        tokens_per_day="",
        tokens_per_month="2000000",
        cost_usd_per_month="12.5",
        model_ids=[str(fast), str(slow)],
        fallback_model_id=str(slow),
        price_stars="400",
        period_days="90",
    )
    assert response.status_code == 302, _flashes(response.text)
    with app.app_context():
        plan = db.session.scalar(select(Plan).where(Plan.name == "Pro"))
        assert plan.description == "For power users"
        assert (plan.requests_per_day, plan.tokens_per_day, plan.tokens_per_month) == (
            100,
            None,
            2_000_000,
        )
        assert plan.cost_usd_per_month == Decimal("12.5")
        assert sorted(plan.model_ids) == sorted([fast, slow])
        assert plan.fallback_model_id == slow
        assert (plan.price_stars, plan.period_days, plan.is_default) == (400, 90, False)
    row = _row(admin.get("/admin/plan/").text, "name", "Pro")
    assert row, "the list has a row for Pro"
    cells = _text(row)
    assert "100" in cells and "∞" in cells and "2 000 000" in cells and "12.5" in cells
    assert "Fast, Slow" in cells and "400 ⭐" in cells and "90" in cells


def test_edit_a_plan_clears_limits_and_models(admin, app: Flask) -> None:
    """Emptied fields become unlimited (None); no model selected = every enabled model."""
    [fast] = _add_models(app, "Fast")
    paid = _plan_id(app, "Paid")
    with app.app_context():
        plans.save_plan(db.session.get(Plan, paid), {"model_ids": [fast]})
        db.session.commit()
    edit = f"/admin/plan/edit/?id={paid}"
    form = admin.get(edit).text
    assert re.search(rf'<option selected value="{fast}">Fast</option>', form), "models prefilled"
    assert re.search(r'name="price_stars"[^>]*value="250"', form), "price prefilled"
    response = _post_plan(admin, edit, name="Paid", description="Everything", price_stars="")
    assert response.status_code == 302, _flashes(response.text)
    with app.app_context():
        plan = db.session.get(Plan, paid)
        assert plan.model_ids == [] and plan.price_stars is None
        assert plan.requests_per_day is None and plan.cost_usd_per_month is None
        assert plan.description == "Everything"
    assert "all enabled" in _text(admin.get("/admin/plan/").text)


def test_a_taken_name_is_refused(admin, app: Flask) -> None:
    """Renaming a plan to another plan's name is flashed as an error and changes nothing."""
    paid = _plan_id(app, "Paid")
    response = _post_plan(admin, f"/admin/plan/edit/?id={paid}", name="Free", price_stars="9")
    assert response.status_code == 200
    assert "a plan with this name exists" in _flashes(response.text)
    with app.app_context():
        plan = db.session.get(Plan, paid)
        assert (plan.name, plan.price_stars) == ("Paid", 250)
    response = _post_plan(admin, "/admin/plan/new/", name="Paid")
    assert "a plan with this name exists" in _flashes(response.text)
    with app.app_context():
        assert db.session.scalar(select(Plan.id).where(Plan.name == "Paid")) == paid


def test_an_unknown_model_is_refused(admin, app: Flask) -> None:
    """A fallback model deleted meanwhile: the form refuses it, the service is not fooled."""
    [gone] = _add_models(app, "Gone")
    path = "/admin/plan/new/"
    data = {**PLAN_FORM, "name": "Ghost", "csrf_token": _csrf(admin, path)}
    with app.app_context():
        db.session.delete(db.session.get(LLMModel, gone))
        db.session.commit()
    response = admin.post(path, data={**data, "fallback_model_id": str(gone)})
    assert response.status_code == 200
    with app.app_context():
        assert db.session.scalar(select(Plan).where(Plan.name == "Ghost")) is None


def test_ticking_default_moves_it_and_unticking_is_refused(admin, app: Flask) -> None:
    """Exactly one default: a new default takes the flag; the default cannot be unticked."""
    response = _post_plan(admin, "/admin/plan/new/", name="Starter", is_default="y")
    assert response.status_code == 302, _flashes(response.text)
    assert _defaults(app) == ["Starter"]
    free = _plan_id(app, "Free")
    response = _post_plan(admin, f"/admin/plan/edit/?id={free}", name="Free", is_default="y")
    assert response.status_code == 302, _flashes(response.text)
    assert _defaults(app) == ["Free"]
    # Unticking «default» on the default plan: refused, flashed, still the default.
    response = _post_plan(admin, f"/admin/plan/edit/?id={free}", name="Free renamed")
    assert response.status_code == 200
    assert "make another plan the default instead" in _flashes(response.text)
    assert _defaults(app) == ["Free"]
    with app.app_context():
        assert db.session.get(Plan, free).name == "Free"


def test_delete_moves_users_and_the_default_cannot_go(admin, app: Flask) -> None:
    """Deleting a plan moves its users to the default (recorded); the default stays."""
    paid, free = _plan_id(app, "Paid"), _plan_id(app, "Free")
    with app.app_context():
        user = add_user(601)
        plans.change_plan(user, paid, None, reason=PlanChangeReason.ADMIN, actor="setup")
        db.session.commit()
        user_id = user.id
    token = _csrf(admin, "/admin/plan/")
    page = admin.post(
        "/admin/plan/delete/",
        data={"csrf_token": token, "id": str(free), "url": "/admin/plan/"},
        follow_redirects=True,
    ).text
    assert "the default plan cannot be deleted" in _flashes(page)
    assert _defaults(app) == ["Free"]
    page = admin.post(
        "/admin/plan/delete/",
        data={"csrf_token": token, "id": str(paid), "url": "/admin/plan/"},
        follow_redirects=True,
    ).text
    assert "Plan «Paid» deleted; 1 user(s) moved to the default plan." in _flashes(page)
    with app.app_context():
        assert db.session.get(Plan, paid) is None
        assert db.session.get(User, user_id).plan_id is None
        last = plans.history_of(user_id)[0]
        assert (last.actor, last.from_plan_name, last.to_plan_id) == (ADMIN_USERNAME, "Paid", None)
        assert last.note == "plan «Paid» deleted"


# -- payments ---------------------------------------------------------------------------------


def _pay(app: Flask, fake: FakeTelegram, telegram_id: int, plan_name: str = "Paid") -> int:
    """Play a purchase through the fake Bot API and record it; returns the payment's id.

    The invoice is sent to the fake, the user presses Pay (a pre-checkout query), the bot's
    answer is ok, Telegram charges the user; the ``successful_payment`` is then recorded by
    ``payments.record_payment`` as the bot does.
    """
    with app.app_context():
        user = db.session.scalar(select(User).where(User.telegram_id == telegram_id))
        spec = plans.PlanSpec.from_plan(
            db.session.scalar(select(Plan).where(Plan.name == plan_name))
        )
    fake.inject_message(telegram_id, "/buy")

    def call(method: str, body: dict) -> dict:
        response = requests.post(
            fake.api_url_template.format(fake.token, method), json=body, timeout=10
        )
        assert response.ok, response.text
        return response.json()["result"]

    call(
        "sendInvoice",
        {
            "chat_id": telegram_id,
            "title": spec.name,
            "description": "d",
            "payload": payments.invoice_payload(spec, telegram_id),
            "currency": "XTR",
            "prices": [{"label": spec.name, "amount": spec.price_stars}],
        },
    )
    query_id = fake.inject_pre_checkout_query(telegram_id)
    call("answerPreCheckoutQuery", {"pre_checkout_query_id": query_id, "ok": True})
    charge = fake.inject_successful_payment(query_id)
    [paid] = [p for p in fake.payments() if p["telegram_payment_charge_id"] == charge]
    with app.app_context():
        user = db.session.scalar(select(User).where(User.telegram_id == telegram_id))
        purchase = payments.record_payment(user, paid["message"]["successful_payment"])
        db.session.commit()
        assert purchase is not None
        return purchase.payment_id


def _refund(client, payment_id: int) -> str:
    back = "/admin/payment/?flt0_telegram_id_equals=701"
    token = _csrf(client, "/admin/payment/")
    response = client.post(
        f"/admin/payment/refund/{payment_id}", data={"csrf_token": token, "url": back}
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(back), "back to the list as it was filtered"
    return client.get(back).text


def test_refund_returns_the_stars_and_takes_the_period_back(
    admin, app: Flask, telegram: FakeTelegram
) -> None:
    """«Refund» reaches Telegram and takes the period back; a second refund is an error.

    ``refundStarPayment`` reaches the fake Bot API, the payment is refunded by the admin, the
    plan's end moves back by the period bought; a second refund is flashed, nothing changes.
    """
    paid = _plan_id(app, "Paid")
    ends = (utcnow() + timedelta(days=10)).replace(microsecond=0)
    with app.app_context():
        set_setting("telegram_bot_token", telegram.token)
        user = add_user(701)
        plans.change_plan(user, paid, ends, reason=PlanChangeReason.ADMIN, actor="setup")
        db.session.commit()
        user_id = user.id
    payment_id = _pay(app, telegram, 701)
    with app.app_context():
        assert db.session.get(User, user_id).plan_expires_at == ends + timedelta(days=30)
    listing = admin.get("/admin/payment/").text
    assert f'action="/admin/payment/refund/{payment_id}"' in listing

    page = _refund(admin, payment_id)
    assert (
        f"Payment {payment_id} refunded: 250 ⭐ returned to 701; their plan now: "
        f"Paid until {ends:%Y-%m-%d %H:%M} UTC." in _flashes(page)
    )
    [refund] = telegram.refunds()
    assert (refund["user_id"], refund["total_amount"]) == (701, 250)
    with app.app_context():
        payment = db.session.get(Payment, payment_id)
        assert payment.status == PaymentStatus.REFUNDED
        assert payment.refunded_by == ADMIN_USERNAME and payment.refunded_at is not None
        assert db.session.get(User, user_id).plan_expires_at == ends
        last = plans.history_of(user_id)[0]
        assert (last.reason, last.actor, last.payment_id) == (
            PlanChangeReason.REFUND,
            ADMIN_USERNAME,
            payment_id,
        )
    assert f'action="/admin/payment/refund/{payment_id}"' not in page, "no button once refunded"
    assert "refunded" in _text(page) and ADMIN_USERNAME in _text(page)

    page = _refund(admin, payment_id)
    assert f"Payment {payment_id} not refunded" in _flashes(page)
    assert "was refunded on" in _flashes(page)
    assert len(telegram.refunds()) == 1
    with app.app_context():
        assert db.session.get(User, user_id).plan_expires_at == ends


def test_a_refund_telegram_refuses_is_flashed(admin, app: Flask, telegram: FakeTelegram) -> None:
    """A charge Telegram does not know: the refusal is flashed, the payment stays paid."""
    with app.app_context():
        set_setting("telegram_bot_token", telegram.token)
        user = add_user(701)
        payment = Payment(
            user_id=user.id,
            telegram_id=701,
            plan_name="Paid",
            stars=250,
            period_days=30,
            telegram_payment_charge_id="stx-unknown",
            invoice_payload="x",
        )
        db.session.add(payment)
        db.session.commit()
        payment_id = payment.id
    page = _refund(admin, payment_id)
    assert "Telegram refused the refund: Bad Request: CHARGE_ID_INVALID" in _flashes(page)
    with app.app_context():
        assert db.session.get(Payment, payment_id).status == PaymentStatus.PAID
    page = _refund(admin, payment_id + 1000)
    assert f"no payment {payment_id + 1000}" in _flashes(page)


def test_refund_needs_login_and_csrf(admin, app: Flask, telegram: FakeTelegram) -> None:
    """Without its CSRF token the refund is refused (400); anonymously it goes to the login."""
    with app.app_context():
        set_setting("telegram_bot_token", telegram.token)
        add_user(701)
        db.session.commit()
    payment_id = _pay(app, telegram, 701)
    assert admin.post(f"/admin/payment/refund/{payment_id}").status_code == 400
    anonymous = app.test_client()
    token = _csrf(anonymous, "/admin/login/")
    response = anonymous.post(f"/admin/payment/refund/{payment_id}", data={"csrf_token": token})
    assert response.status_code == 302 and "/admin/login/" in response.headers["Location"]
    assert telegram.refunds() == []
    with app.app_context():
        assert db.session.get(Payment, payment_id).status == PaymentStatus.PAID


def test_payments_list_newest_first_with_filters(admin, app: Flask) -> None:
    """Newest first; the Telegram id links to the user; status and Telegram id filter."""
    now = utcnow()
    with app.app_context():
        alice, bob = add_user(801), add_user(802)
        rows = [
            Payment(
                user_id=alice.id,
                telegram_id=801,
                plan_name="Paid",
                stars=250,
                period_days=30,
                telegram_payment_charge_id="stx-old",
                invoice_payload="x",
                created_at=now - timedelta(days=2),
            ),
            Payment(
                user_id=bob.id,
                telegram_id=802,
                plan_name="Paid",
                stars=300,
                period_days=30,
                telegram_payment_charge_id="stx-new",
                invoice_payload="x",
                created_at=now,
            ),
            Payment(
                user_id=alice.id,
                telegram_id=801,
                plan_name="Paid",
                stars=250,
                period_days=30,
                telegram_payment_charge_id="stx-refunded",
                invoice_payload="x",
                created_at=now - timedelta(days=1),
                status=PaymentStatus.REFUNDED,
                refunded_at=now,
                refunded_by="carol",
            ),
        ]
        db.session.add_all(rows)
        db.session.commit()
        alice_id = alice.id
    page = admin.get("/admin/payment/").text
    charges = re.findall(r"stx-(old|new|refunded)", page)
    assert charges == ["new", "refunded", "old"]
    assert f'href="/admin/user/activity/{alice_id}">801<' in page
    assert page.count('action="/admin/payment/refund/') == 2, "paid rows only"
    assert "carol" in page
    refunded = admin.get("/admin/payment/?flt0_status_equals=refunded").text
    assert re.findall(r"stx-(old|new|refunded)", refunded) == ["refunded"]
    paid = admin.get("/admin/payment/?flt0_status_equals=paid").text
    assert re.findall(r"stx-(old|new|refunded)", paid) == ["new", "old"]
    by_user = admin.get("/admin/payment/?flt0_telegram_id_equals=801").text
    assert re.findall(r"stx-(old|new|refunded)", by_user) == ["refunded", "old"]


# -- users ------------------------------------------------------------------------------------


def _plan_cells(page: str) -> dict[str, str]:
    """Telegram id → the «Plan» cell of each row of the users list."""
    cells = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        tid = re.search(r'class="col-telegram_id">\s*<a[^>]*>(\d+)</a>', row)
        plan = re.search(r'class="col-plan">\s*(.*?)\s*</td>', row, re.S)
        if tid and plan:
            cells[tid.group(1)] = _text(plan.group(1))
    return cells


def _plan_filter(page: str) -> tuple[str, list[list[str]]]:
    """The users list's «Plan» filter: its URL argument and options (the page's filter data)."""
    match = re.search(r'<div id="filter-groups-data"[^>]*>(.*?)</div>', page, re.S)
    assert match, "the list carries its filters"
    [plan_filter] = json.loads(html.unescape(match.group(1)))["Plan"]
    return f"flt0_{plan_filter['arg']}", plan_filter["options"]


def test_users_list_shows_and_filters_by_plan(admin, app: Flask) -> None:
    """The Plan column shows the plan in force (with its end); the filter lists its users."""
    paid = _plan_id(app, "Paid")
    ends = datetime(2031, 5, 6, 7, 8, tzinfo=UTC)
    with app.app_context():
        add_user(901)  # no plan: the default
        on_paid = add_user(902)
        plans.change_plan(on_paid, paid, ends, reason=PlanChangeReason.ADMIN, actor="setup")
        ended = add_user(903)
        plans.change_plan(
            ended,
            paid,
            utcnow() - timedelta(minutes=1),
            reason=PlanChangeReason.ADMIN,
            actor="setup",
        )
        db.session.commit()
    page = admin.get("/admin/user/").text
    assert _plan_cells(page) == {"901": "Free", "902": "Paid until 2031-05-06", "903": "Free"}
    arg, options = _plan_filter(page)
    assert options == [[str(_plan_id(app, "Free")), "Free"], [str(paid), "Paid"]]
    on_paid = _plan_cells(admin.get(f"/admin/user/?{arg}={paid}").text)
    assert sorted(on_paid) == ["902"], "an ended plan no longer counts"
    on_free = _plan_cells(admin.get(f"/admin/user/?{arg}={_plan_id(app, 'Free')}").text)
    assert sorted(on_free) == ["901", "903"], "no plan, or an ended one: the default"


def test_user_page_shows_use_against_the_limits(admin, app: Flask) -> None:
    """Use today and this month beside the plan's limits; the user's own limit wins."""
    now = datetime.now(UTC)
    with app.app_context():
        user = add_user(950)
        add_request(user, now, tokens=(100, 20), cost="0.25")
        add_request(user, now, RequestStatus.DENIED)  # does not count against the limit
        db.session.commit()
        user_id = user.id
    page = admin.get(f"/admin/user/activity/{user_id}").text
    usage = _text(re.search(r'id="plan-usage">(.*?)</table>', page, re.S).group(1))
    assert "Requests today 1 30 " in usage
    assert "Tokens today 135 50 000" in usage
    assert "Tokens this month 135 500 000" in usage
    assert "Cost this month, $ 0.2510 ∞" in usage
    assert "Free" in _text(re.search(r'id="plan-section">(.*?)</p>', page, re.S).group(1))
    with app.app_context():
        db.session.get(User, user_id).daily_request_limit = 5
        db.session.commit()
    page = admin.get(f"/admin/user/activity/{user_id}").text
    usage = _text(re.search(r'id="plan-usage">(.*?)</table>', page, re.S).group(1))
    assert "Requests today 1 5 (the user's own limit)" in usage


def test_user_plan_change_is_recorded_as_the_admins(admin, app: Flask) -> None:
    """The user page's form changes plan and end through the service; history names the admin."""
    paid, free = _plan_id(app, "Paid"), _plan_id(app, "Free")
    with app.app_context():
        user_id = add_user(960).id
        db.session.commit()
    page_path = f"/admin/user/activity/{user_id}"
    token = _csrf(admin, page_path)
    response = admin.post(
        f"{page_path}/plan",
        data={"csrf_token": token, "plan_id": str(paid), "plan_expires_at": "2030-01-02T03:04"},
    )
    assert response.status_code == 302
    page = admin.get(page_path).text
    assert "Plan of 960: Paid until 2030-01-02 03:04 UTC." in _flashes(page)
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user.plan_id == paid
        assert user.plan_expires_at == datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
        [change] = db.session.scalars(select(PlanChange).where(PlanChange.user_id == user_id))
        assert (change.reason, change.actor) == (PlanChangeReason.ADMIN, ADMIN_USERNAME)
        assert (change.from_plan_id, change.to_plan_name) == (None, "Paid")
    history = _text(re.search(r'id="plan-history">(.*?)</table>', page, re.S).group(1))
    assert f"admin {ADMIN_USERNAME} default → Paid 2030-01-02 03:04 UTC" in history
    assert "until 2030-01-02 03:04 UTC" in _text(
        re.search(r'id="plan-section">(.*?)</p>', page, re.S).group(1)
    )

    # A date that is not one: refused and flashed, nothing changes.
    admin.post(
        f"{page_path}/plan",
        data={"csrf_token": token, "plan_id": str(free), "plan_expires_at": "soon"},
    )
    assert "Plan not changed" in _flashes(admin.get(page_path).text)
    with app.app_context():
        assert db.session.get(User, user_id).plan_id == paid

    # Back to the default plan: no end, a second change in the history.
    admin.post(
        f"{page_path}/plan", data={"csrf_token": token, "plan_id": str(free), "plan_expires_at": ""}
    )
    with app.app_context():
        user = db.session.get(User, user_id)
        assert (user.plan_id, user.plan_expires_at) == (None, None)
        assert [c.to_plan_name for c in plans.history_of(user_id)] == [None, "Paid"]


def test_the_only_model_of_a_plan_cannot_be_deleted_in_the_admin(admin, app: Flask) -> None:
    """The Models page refuses to delete a plan's only model (flashed, nothing deleted)."""
    with app.app_context():
        model = LLMModel(name="Only", model="m", base_url="http://127.0.0.1:9/v1")
        db.session.add(model)
        db.session.flush()
        db.session.get(Plan, _plan_id(app, "Free")).models = [model]
        db.session.commit()
        model_id = model.id
    token = _csrf(admin, "/admin/llm_model/")
    page = admin.post(
        "/admin/llm_model/delete/",
        data={"csrf_token": token, "id": str(model_id), "url": "/admin/llm_model/"},
        follow_redirects=True,
    ).text
    assert "is the only model of plan(s) Free" in page
    with app.app_context():
        assert db.session.get(LLMModel, model_id) is not None
