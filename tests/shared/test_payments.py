"""Payments and purchases (``shared.services.payments``, ``plans.extend_by_purchase``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from shared.db import db
from shared.models import Payment, Plan, User
from shared.models.types import utcnow
from shared.redis import KEY_PREFIX
from shared.services import payments, quotas
from shared.services.plans import change_plan, extend_by_purchase, seed_plans
from shared.services.quotas import Limits
from shared.services.settings import set_setting
from tests.fakes.telegram import FakeTelegram

BUYER = 4242


@pytest.fixture()
def ctx(app: Flask):
    """An app context on the real database, with the plans seeded."""
    with app.app_context():
        seed_plans()
        db.session.commit()
        yield
        db.session.rollback()


def _plan(name: str) -> Plan:
    plan = db.session.scalar(select(Plan).where(Plan.name == name))
    assert plan is not None
    return plan


def _buyer() -> User:
    user = User(telegram_id=BUYER)
    db.session.add(user)
    db.session.flush()
    return user


def _paid(plan: Plan, charge: str = "charge-1", **changes: object) -> dict:
    payment = {
        "currency": "XTR",
        "total_amount": plan.price_stars,
        "invoice_payload": f"plan:{plan.id}:{plan.price_stars}:{BUYER}",
        "telegram_payment_charge_id": charge,
        "provider_payment_charge_id": "",
    }
    payment.update(changes)
    return payment


def test_a_retry_of_the_recording_update_thanks_again_a_duplicate_does_not(ctx) -> None:
    """The same update handled again gets its purchase back; another update with it, None."""
    user, paid = _buyer(), _plan("Paid")
    first = payments.record_payment(user, _paid(paid), update_id=10)
    assert first is not None and first.new and first.plan_name == "Paid"
    again = payments.record_payment(user, _paid(paid), update_id=10)
    assert again is not None and not again.new and again.expires_at == first.expires_at
    assert payments.record_payment(user, _paid(paid), update_id=11) is None
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1


@pytest.mark.parametrize(
    "forged",
    [
        {"currency": "USD"},
        {"total_amount": 1},
        {"invoice_payload": f"plan:1:250:{BUYER + 1}"},
        {"invoice_payload": "something else"},
    ],
)
def test_a_payment_that_is_no_purchase_of_ours_extends_nothing(ctx, forged: dict) -> None:
    """Wrong currency, price or buyer: the Stars are recorded for a refund, no plan is given."""
    user, paid = _buyer(), _plan("Paid")
    assert payments.record_payment(user, _paid(paid, **forged), update_id=12) is None
    row = db.session.scalar(select(Payment))
    assert row is not None and row.plan_id is None and row.plan_name == "?"
    assert (user.plan_id, user.plan_expires_at) == (None, None)


def test_a_purchase_keeps_the_days_left_and_never_shortens_a_plan(ctx) -> None:
    """Days left of the current plan are kept; the plan one has without an end stays so."""
    user, paid = _buyer(), _plan("Paid")
    now = utcnow()
    team = Plan(name="Team", period_days=10)
    db.session.add(team)
    db.session.flush()
    change_plan(user, team.id, now + timedelta(days=20), reason="admin", actor="admin")
    ends = extend_by_purchase(user, paid, 30, payment_id=None, now=now)
    assert ends == now + timedelta(days=50) and user.plan_id == paid.id, "20 days kept"
    change_plan(user, paid.id, None, reason="admin", actor="admin")  # a gift without an end
    assert extend_by_purchase(user, paid, 30, payment_id=None, now=now) is None
    assert (user.plan_id, user.plan_expires_at) == (paid.id, None)
    change_plan(user, None, None, reason="admin", actor="admin")
    assert extend_by_purchase(user, paid, 30, payment_id=None, now=now) == now + timedelta(days=30)


def test_a_refund_in_progress_refuses_a_second_one(app: Flask, ctx, telegram: FakeTelegram) -> None:
    """Two refunds of one payment at once: the second is refused, Telegram is asked once."""
    set_setting("telegram_bot_token", telegram.token)
    user, paid = _buyer(), _plan("Paid")
    purchase = payments.record_payment(user, _paid(paid), update_id=13)
    db.session.commit()
    assert purchase is not None
    hold = f"{KEY_PREFIX}refund:{purchase.payment_id}"
    app.extensions["redis"].set(hold, "another admin", ex=60)
    with pytest.raises(payments.RefundInProgress):
        payments.refund(purchase.payment_id, actor="admin")
    assert telegram.calls("refundStarPayment") == []
    app.extensions["redis"].delete(hold)
    with pytest.raises(payments.RefundRefused):  # the fake has no such charge: refused
        payments.refund(purchase.payment_id, actor="admin")
    assert app.extensions["redis"].get(hold) is None, "a refused refund lets go at once"


def test_a_plan_change_drops_the_quota_counters(app: Flask, ctx) -> None:
    """Counters kept under one plan are rebuilt after a change (they may lack unmetered use)."""
    user = _buyer()
    db.session.commit()
    now = utcnow()
    assert quotas.reserve(user.id, 77, Limits(requests_per_day=5), (1, 0), at=now) is None
    period = quotas.Period.of(user.id, "UTC", now)
    redis = app.extensions["redis"]
    assert redis.exists(period.day_key)
    change_plan(user, _plan("Paid").id, None, reason="admin", actor="admin")
    assert not redis.exists(period.day_key) and not redis.exists(period.month_key)
