"""Per-user counts (``shared.services.usage``): what counts, batches, the bot's daily limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from shared.db import db
from shared.models import RequestStatus
from shared.services import usage
from shared.services.settings import set_setting
from shared.services.users import over_daily_limit, requests_today
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


def test_the_bot_side_helpers_use_the_same_count(ctx) -> None:
    """``users.requests_today`` and ``over_daily_limit`` agree with the batch count."""
    midnight = usage.day_start(TZ)
    user = add_user(5, daily_request_limit=2)
    add_request(user, midnight + timedelta(seconds=1))
    add_request(user, midnight + timedelta(seconds=2), RequestStatus.DENIED)
    assert requests_today(user, TZ) == usage.requests_today([user.id], TZ)[user.id] == 1
    assert not over_daily_limit(user, TZ)
    add_request(user, midnight + timedelta(seconds=3))
    assert over_daily_limit(user, TZ)
    user.daily_request_limit = None
    assert not over_daily_limit(user, TZ), "no own limit and no default: unlimited"
    set_setting("default_daily_limit", "2")
    db.session.commit()  # settings reach the bot through the runtime snapshot, once committed
    assert over_daily_limit(user, TZ)


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
