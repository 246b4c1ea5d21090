"""Per-user counts (``shared.services.usage``): what counts, batches, the bot's daily limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from shared.db import db
from shared.models import RequestStatus
from shared.services import usage
from tests.shared.support import add_request, add_user, count_queries

TZ = "Asia/Tokyo"  # UTC+9, no DST: "today" there is not "today" in UTC for 9 hours a day


@pytest.fixture()
def ctx(app: Flask):
    """An app context on the real database; changes are rolled back."""
    with app.app_context():
        yield
        db.session.rollback()


def test_day_start_is_midnight_in_the_timezone() -> None:
    """Today starts at local midnight, whatever the UTC date."""
    now = datetime(2026, 1, 10, 20, 0, tzinfo=UTC)  # already 11 January in Tokyo
    start = usage.day_start(TZ, now)
    assert start.isoformat() == "2026-01-11T00:00:00+09:00"
    assert usage.day_start("UTC", now) == datetime(2026, 1, 10, tzinfo=UTC)


def test_totals_count_everything_today_counts_the_limit(ctx) -> None:
    """``requests_total`` includes denied and failed; today = since local midnight, not denied."""
    midnight = usage.day_start(TZ)
    ann, bob, idle = add_user(1), add_user(2), add_user(3)
    add_request(ann, midnight - timedelta(minutes=1))  # yesterday in Tokyo
    add_request(ann, midnight + timedelta(seconds=1))
    add_request(ann, midnight + timedelta(seconds=2), RequestStatus.DENIED)
    add_request(ann, midnight + timedelta(seconds=3), RequestStatus.ERROR, tokens=(7, 0))
    add_request(bob, midnight + timedelta(seconds=4), tokens=(100, 50))

    ids = [ann.id, bob.id, idle.id]
    assert usage.count_requests(ids) == {ann.id: 4, bob.id: 1, idle.id: 0}
    assert usage.requests_today(ids, TZ) == {ann.id: 2, bob.id: 1, idle.id: 0}
    assert usage.tokens_used(ids) == {ann.id: 52, bob.id: 150, idle.id: 0}
    assert usage.usage_by_user(ids, TZ)[ann.id] == usage.UserUsage(4, 2, 52)
    assert usage.usage_by_user(ids, TZ)[idle.id] == usage.UserUsage(0, 0, 0)
    assert usage.count_requests([]) == {} and usage.usage_by_user([], TZ) == {}


def test_limit_counts_need_a_start(ctx) -> None:
    """Counting "toward the limit" without a day start is a programming error."""
    with pytest.raises(ValueError):
        usage.count_requests([1], limit_only=True)


def test_plan_usage_counts_what_the_limits_count(ctx) -> None:
    """Today and this month in the timezone: requests not denied, tokens and cost of all rows."""
    now = datetime(2026, 3, 1, 0, 30, tzinfo=UTC) + timedelta(hours=-9)  # 1 March 00:30 in Tokyo
    midnight = usage.day_start(TZ, now)
    assert midnight.isoformat() == "2026-03-01T00:00:00+09:00"
    assert usage.month_start(TZ, now) == midnight
    assert usage.next_day_start(TZ, now).isoformat() == "2026-03-02T00:00:00+09:00"
    assert usage.next_month_start(TZ, now).isoformat() == "2026-04-01T00:00:00+09:00"
    december = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)  # 1 January 2027 in Tokyo
    assert usage.next_month_start(TZ, december).isoformat() == "2027-02-01T00:00:00+09:00"
    user = add_user(5)
    add_request(user, midnight - timedelta(days=1), tokens=(1000, 0))  # February
    add_request(user, midnight + timedelta(seconds=1), tokens=(10, 5), cost="0.25")
    add_request(
        user, midnight + timedelta(seconds=2), RequestStatus.DENIED, tokens=(0, 0), cost="0"
    )
    add_request(user, midnight + timedelta(seconds=3), RequestStatus.ERROR, tokens=(0, 0), cost="0")
    today = usage.spent_since([user.id], midnight)[user.id]
    assert (today.requests, today.tokens, float(today.cost_usd)) == (2, 15, 0.25)
    march = usage.plan_usage([user.id], TZ, now)[user.id]
    assert march == usage.PlanUsage(2, 15, 15, today.cost_usd)
    assert (
        usage.spent_since([user.id], usage.month_start(TZ, midnight - timedelta(hours=1)))[
            user.id
        ].tokens
        == 1015
    ), "February's month counts since 1 February"


def test_a_page_of_users_costs_the_same_queries_as_one(ctx) -> None:
    """The batch runs a fixed number of queries, not one per user."""
    users = [add_user(100 + i) for i in range(25)]
    for user in users:
        add_request(user, datetime.now(UTC))
    with count_queries() as one:
        usage.usage_by_user([users[0].id], TZ)
    with count_queries() as page:
        result = usage.usage_by_user([u.id for u in users], TZ)
    assert len(page) == len(one) == 3
    assert {u.requests_total for u in result.values()} == {1}
