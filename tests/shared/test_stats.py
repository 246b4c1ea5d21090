"""Statistics (``shared.services.stats``): day buckets in a timezone, one query for the days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask

from shared.db import db
from shared.models import Payment, PaymentStatus, RequestStatus, User
from shared.services.stats import PeriodError, make_period, statistics
from tests.shared.support import add_request, add_user, count_queries

BERLIN = "Europe/Berlin"  # clocks go forward on 2025-03-30: that day has 23 hours


@pytest.fixture()
def ctx(app: Flask):
    """An app context on the real database; changes are rolled back."""
    with app.app_context():
        yield
        db.session.rollback()


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_days_follow_the_timezone_across_a_dst_change(ctx) -> None:
    """Rows fall in their local day, before and after the clocks change."""
    ann, bob = add_user(1), add_user(2)
    add_request(ann, _utc("2025-03-28T22:59:00"))  # 23:59 CET, 28 March
    add_request(ann, _utc("2025-03-28T23:00:00"))  # 00:00 CET, 29 March
    add_request(ann, _utc("2025-03-29T23:30:00"), RequestStatus.ERROR)  # 00:30 CET, 30 March
    add_request(bob, _utc("2025-03-30T21:59:00"), RequestStatus.DENIED)  # 23:59 CEST, 30 March
    add_request(bob, _utc("2025-03-30T22:30:00"), tokens=(1, 1), cost="0.5")  # 00:30, 31 March
    add_request(bob, _utc("2025-04-01T12:00:00"))  # after the period

    stats = statistics(make_period("2025-03-28", "2025-03-31", BERLIN))
    daily = {d["date"]: d for d in stats["daily"]}
    assert list(daily) == ["2025-03-28", "2025-03-29", "2025-03-30", "2025-03-31"]
    assert [d["requests"] for d in daily.values()] == [1, 1, 2, 1]
    assert [d["active_users"] for d in daily.values()] == [1, 1, 2, 1]
    assert [d["errors"] for d in daily.values()] == [0, 0, 1, 0]
    assert [d["total_tokens"] for d in daily.values()] == [15, 15, 30, 2]
    assert daily["2025-03-31"]["cost_usd"] == pytest.approx(0.5)
    assert stats["requests"] == 5 and stats["active_users"] == 2 and stats["errors"] == 1
    assert stats["total_tokens"] == sum(d["total_tokens"] for d in daily.values())


def test_datetime_bounds_cut_the_first_and_last_day(ctx) -> None:
    """ISO datetimes bound the period exactly; the edge days count only what is inside."""
    user = add_user(1)
    for stamp in ("2025-05-01T08:00:00", "2025-05-01T13:00:00", "2025-05-02T09:00:00"):
        add_request(user, _utc(stamp))
    period = make_period("2025-05-01T12:00:00+00:00", "2025-05-02T10:00:00+00:00", "UTC")
    daily = statistics(period)["daily"]
    assert [(d["date"], d["requests"]) for d in daily] == [("2025-05-01", 1), ("2025-05-02", 1)]


def test_a_year_of_days_takes_as_many_queries_as_a_week(ctx) -> None:
    """The per-day series is one grouped query, whatever the number of days."""
    user = add_user(1)
    today = date(2025, 12, 31)
    for days_ago in (0, 3, 200, 365):
        add_request(user, datetime(2025, 12, 31, 12, tzinfo=UTC) - timedelta(days=days_ago))
    week = make_period(None, None, "UTC", today)
    year = make_period((today - timedelta(days=365)).isoformat(), today.isoformat(), "UTC")
    with count_queries() as week_queries:
        week_stats = statistics(week)
    with count_queries() as year_queries:
        year_stats = statistics(year)
    assert len(week_stats["daily"]) == 7 and len(year_stats["daily"]) == 366
    assert len(week_queries) == len(year_queries)
    assert [d["requests"] for d in year_stats["daily"] if d["requests"]] == [1, 1, 1, 1]
    assert sum(d["requests"] for d in week_stats["daily"]) == 2


def test_bad_periods_are_refused() -> None:
    """Reversed, overlong or malformed periods raise ``PeriodError``."""
    for since, until in (("2025-02-01", "2025-01-01"), ("2020-01-01", "2025-01-01"), ("x", None)):
        with pytest.raises(PeriodError):
            make_period(since, until, "UTC", date(2025, 6, 1))


def test_stars_revenue_and_paying_users_per_day_without_refunds(ctx) -> None:
    """Stars taken per local day and in total; refunded payments do not count."""
    ann, bob = add_user(1), add_user(2)

    def pay(user: User, at: str, stars: int, status: PaymentStatus = PaymentStatus.PAID) -> None:
        db.session.add(
            Payment(
                user_id=user.id, telegram_id=user.telegram_id, plan_name="Paid", stars=stars,
                period_days=30, telegram_payment_charge_id=f"c-{user.id}-{at}",
                invoice_payload="plan:1:250:1", status=status, created_at=_utc(at),
            )
        )  # fmt: skip

    pay(ann, "2025-03-28T22:59:00", 250)  # 28 March in Berlin
    pay(ann, "2025-03-28T23:00:00", 250)  # 29 March
    pay(bob, "2025-03-29T10:00:00", 100)
    pay(bob, "2025-03-29T11:00:00", 100, PaymentStatus.REFUNDED)
    pay(bob, "2025-04-02T10:00:00", 999)  # after the period
    db.session.flush()
    stats = statistics(make_period("2025-03-28", "2025-03-30", BERLIN))
    assert (stats["stars_revenue"], stats["paying_users"]) == (600, 2)
    days = [(d["date"], d["stars_revenue"], d["paying_users"]) for d in stats["daily"]]
    assert days == [("2025-03-28", 250, 1), ("2025-03-29", 350, 2), ("2025-03-30", 0, 0)]
