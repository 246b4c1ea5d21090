"""Plan limits in Redis (``shared.services.quotas``): atomic reservations, settling, rebuilding."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from flask import Flask
from sqlalchemy import delete, func, select

from shared.db import db
from shared.models import Plan, RequestStatus
from shared.models.types import utcnow
from shared.services import quotas, usage
from shared.services.plans import InvalidPlanValue, PlanSpec, save_plan, seed_plans
from shared.services.quotas import LimitHit, Limits
from tests.shared.support import add_request, add_user


@pytest.fixture()
def ctx(app: Flask):
    """An app context on the real database and Redis."""
    with app.app_context():
        yield
        db.session.rollback()


def _plan(**limits: object) -> PlanSpec:
    values: dict[str, object] = {
        "requests_per_day": None,
        "tokens_per_day": None,
        "tokens_per_month": None,
        "cost_usd_per_month": None,
    }
    values.update(limits)
    return PlanSpec(
        id=1,
        name="Test",
        description="",
        model_ids=frozenset(),
        is_default=True,
        price_stars=None,
        period_days=30,
        fallback_model_id=None,
        **values,  # type: ignore[arg-type]
    )


def test_limits_of_a_plan_with_the_users_own_daily_limit_first() -> None:
    """A user's own daily request limit overrides the plan's; the rest is the plan's."""
    plan = _plan(requests_per_day=30, tokens_per_day=1000, cost_usd_per_month=Decimal("2"))
    assert Limits.of(plan) == Limits(30, 1000, None, Decimal("2"))
    assert Limits.of(plan, 5).requests_per_day == 5
    assert Limits.of(None, 7) == Limits(requests_per_day=7)
    assert Limits.of(None).unlimited and not Limits.of(plan).unlimited


def test_a_limit_hit_round_trips_through_the_rows_error() -> None:
    """The refusal's text is rebuilt from the log row: the limit, its value and the reset."""
    resets = datetime(2026, 12, 7, tzinfo=UTC)
    hit = LimitHit("requests_per_day", 3, resets)
    assert hit.to_error() == "limit requests_per_day=3 reached; resets at 2026-12-07T00:00:00+00:00"
    assert LimitHit.parse(hit.to_error()) == hit
    dollars = LimitHit("cost_usd_per_month", Decimal("2.5"), resets)
    assert LimitHit.parse(dollars.to_error()) == dollars
    assert LimitHit.parse("user is blocked") is None
    assert LimitHit.parse("limit nonsense=1 reached; resets at 2026-12-07T00:00:00") is None
    assert LimitHit.parse(None) is None


def test_fifty_reservations_at_once_let_exactly_the_limit_through(app: Flask, ctx) -> None:
    """50 threads reserve for one user with 3 requests left: exactly 3 get through."""
    user = add_user(42)
    midnight = usage.day_start("UTC")
    add_request(user, midnight + timedelta(seconds=1))
    add_request(user, midnight + timedelta(seconds=2))
    db.session.commit()
    user_id = user.id  # read here: the threads must not touch this session's objects
    limits = Limits(requests_per_day=5)
    now = utcnow()
    start = threading.Barrier(50)
    outcomes: list[LimitHit | None] = []
    lock = threading.Lock()

    def reserve(request_id: int) -> None:
        with app.app_context():
            start.wait()
            outcome = quotas.reserve(user_id, request_id, limits, (10, 0), at=now)
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=reserve, args=(1000 + i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(outcome is None for outcome in outcomes) == 3
    hits = [outcome for outcome in outcomes if outcome is not None]
    assert len(hits) == 47 and {hit.limit for hit in hits} == {"requests_per_day"}
    assert hits[0].resets_at == usage.next_day_start("UTC", now)


def test_settling_replaces_the_reservation_with_the_real_usage(app: Flask, ctx) -> None:
    """Tokens and dollars reserved become what the model used; a failed call settles at zero."""
    user = add_user(43)
    db.session.commit()
    limits = Limits(tokens_per_day=1000, cost_usd_per_month=Decimal("0.01"))
    now = utcnow()
    period = quotas.Period.of(user.id, "UTC", now)
    redis = app.extensions["redis"]
    assert quotas.reserve(user.id, 1, limits, (600, 5_000_000), at=now) is None
    assert quotas.reserve(user.id, 2, limits, (600, 1_000), at=now) is None
    assert redis.hget(period.day_key, "tok") == "1200"
    quotas.settle(user.id, 1, now, 100, Decimal("0.004"))
    quotas.settle(user.id, 2, now, 0, None)  # the second call failed
    assert redis.hget(period.day_key, "tok") == "100"
    assert redis.hget(period.month_key, "usd") == "4000000"
    assert redis.hget(period.day_key, "req") == "2", "failed requests still count"
    assert not redis.hexists(period.day_key, "r:1")
    quotas.settle(user.id, 1, now, 100, Decimal("0.004"))  # settled again: no reservation left
    assert redis.hget(period.day_key, "tok") == "200", "a settle without reservation adds all"
    quotas.settle(user.id, 1, now, 800, Decimal("0.01"))
    hit = quotas.reserve(user.id, 3, limits, (10, 0), at=now)
    assert hit is not None and hit.limit == "tokens_per_day"


def test_a_release_uncounts_a_request_that_was_never_committed(app: Flask, ctx) -> None:
    """A reservation whose row was rolled back gives the request back (once)."""
    user = add_user(44)
    db.session.commit()
    now = utcnow()
    limits = Limits(requests_per_day=1)
    assert quotas.reserve(user.id, 7, limits, (1, 0), at=now) is None
    assert quotas.reserve(user.id, 8, limits, (1, 0), at=now) is not None
    quotas.release(user.id, 7, now)
    quotas.release(user.id, 7, now)  # twice: nothing more is given back
    assert quotas.reserve(user.id, 9, limits, (1, 0), at=now) is None
    assert quotas.reserve(user.id, 10, limits, (1, 0), at=now) is not None


def test_counters_lost_with_redis_are_rebuilt_from_the_database(app: Flask, ctx) -> None:
    """Without its keys, the next check counts the database's rows, then itself once."""
    user = add_user(45)
    now = utcnow()
    add_request(user, now - timedelta(seconds=2), tokens=(300, 200), cost="0.5")
    add_request(user, now - timedelta(seconds=1), RequestStatus.DENIED, tokens=(0, 0), cost="0")
    db.session.commit()
    name = 5000  # the update being checked: its row is written after the check
    period = quotas.Period.of(user.id, "UTC", now)
    redis = app.extensions["redis"]
    redis.delete(period.day_key, period.month_key)
    limits = Limits(requests_per_day=2, tokens_per_month=10_000)
    assert quotas.reserve(user.id, name, limits, (50, 0), at=now) is None
    assert redis.hget(period.day_key, "req") == "2", "one answered row + this one"
    assert redis.hget(period.month_key, "tok") == "550"
    assert redis.ttl(period.day_key) > 86400 and redis.ttl(period.month_key) > 30 * 86400
    assert quotas.reserve(user.id, name, limits, (50, 0), at=now) is quotas.HELD, "redelivered"
    assert redis.hget(period.day_key, "req") == "2", "a held reservation is not counted again"
    hit = quotas.reserve(user.id, name + 1, limits, (50, 0), at=now)
    assert hit is not None and hit.limit == "requests_per_day"
    dollars = Limits(cost_usd_per_month=Decimal("0.5"))
    hit = quotas.reserve(user.id, name + 2, dollars, (1, 0), at=now)
    assert hit is not None and hit.limit == "cost_usd_per_month" and hit.value == Decimal("0.5")
    assert quotas.reserve(user.id, name + 3, dollars, (1, 0), at=now, ignore_cost=True) is None


def test_the_day_and_month_follow_the_configured_timezone() -> None:
    """A request just after midnight in Tokyo counts in that day's key and resets then."""
    at = datetime(2026, 3, 31, 15, 30, tzinfo=UTC)  # 1 April 00:30 in Tokyo
    period = quotas.Period.of(9, "Asia/Tokyo", at)
    assert period.day_key.endswith(":quota:9:d:2026-04-01")
    assert period.month_key.endswith(":quota:9:m:2026-04")
    assert period.resets_at("requests_per_day").isoformat() == "2026-04-02T00:00:00+09:00"
    assert period.resets_at("tokens_per_month").isoformat() == "2026-05-01T00:00:00+09:00"


def test_seeded_plans_limit_a_new_install_but_not_an_upgraded_one(ctx) -> None:
    """A new install's «Free» has modest limits; after an upgrade its users keep theirs."""
    db.session.execute(delete(Plan))  # the app's start seeded them: start again
    seed_plans()
    free, paid = (db.session.scalar(select(Plan).where(Plan.name == n)) for n in ("Free", "Paid"))
    assert free.is_default and free.requests_per_day == 30 and free.tokens_per_day == 50_000
    assert not paid.is_default and paid.price_stars == 250 and paid.period_days == 30
    seed_plans()  # idempotent
    assert db.session.scalar(select(func.count()).select_from(Plan)) == 2
    db.session.execute(delete(Plan))
    add_user(77)
    seed_plans(legacy_daily_limit=None)
    free = db.session.scalar(select(Plan).where(Plan.name == "Free"))
    assert (free.requests_per_day, free.tokens_per_day, free.tokens_per_month) == (None,) * 3
    db.session.execute(delete(Plan))
    seed_plans(legacy_daily_limit=12)
    free = db.session.scalar(select(Plan).where(Plan.name == "Free"))
    assert (free.requests_per_day, free.tokens_per_day) == (12, None)


@pytest.mark.parametrize(
    "values",
    [
        {"requests_per_day": -1},
        {"cost_usd_per_month": Decimal("-0.01")},
        {"period_days": 0},
        {"period_days": 3661},
        {"period_days": None},
        {"price_stars": 0},
        {"price_stars": 10_001},
    ],
)
def test_plan_values_out_of_range_are_refused_by_the_service(ctx, values: dict) -> None:
    """The service has the last word on a plan's values, whatever form or schema let through."""
    with pytest.raises(InvalidPlanValue):
        save_plan(Plan(name="Bad"), {"period_days": 30, **values})
