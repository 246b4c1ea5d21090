"""Usage statistics for a period: requests, active users, tokens, cost, errors, Stars, per day.

Days are calendar days in the configured timezone (``STATS_TIMEZONE``, UTC by default). The
day boundaries are computed in Python (right across daylight-saving changes) and the per-day
series comes from ONE query grouped by day over ``requests.request_at`` (indexed), on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Integer, case, func, literal, select

from shared.db import db
from shared.models import Payment, PaymentStatus, Request, RequestStatus, User
from shared.models.types import UtcDateTime

#: The longest period one request may ask for.
MAX_DAYS = 366
DEFAULT_DAYS = 7


class PeriodError(ValueError):
    """The requested period is malformed, reversed or too long."""


@dataclass(frozen=True)
class Period:
    """A range of whole days in a timezone (both ends inclusive), or an exact datetime range.

    Attributes:
        start: First instant (aware).
        end: First instant after the period (aware).
        tz: The timezone of the day buckets.
    """

    start: datetime
    end: datetime
    tz: ZoneInfo

    def days(self) -> list[date]:
        """The calendar days the period touches, in order."""
        first = self.start.astimezone(self.tz).date()
        last = (self.end - timedelta(microseconds=1)).astimezone(self.tz).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


#: Period bounds outside these years are refused (they would overflow date arithmetic).
MIN_YEAR, MAX_YEAR = 1970, 9000


def _parse(value: str, tz: ZoneInfo, *, end: bool) -> datetime:
    """A date (whole day) or an ISO datetime (naive ones are in ``tz``), years 1970–9000."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            instant = datetime.combine(day + timedelta(days=1) if end else day, time(), tz)
        else:
            instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
            instant = instant if instant.tzinfo else instant.replace(tzinfo=tz)
        year = instant.astimezone(UTC).year
    except (ValueError, OverflowError) as exc:
        raise PeriodError(f"not a date or ISO datetime: {value!r}") from exc
    if not MIN_YEAR <= year < MAX_YEAR:
        raise PeriodError(f"out of range (years {MIN_YEAR}–{MAX_YEAR - 1}): {value!r}")
    return instant


def parse_bound(value: str, tz_name: str, *, end: bool) -> datetime:
    """Parse one end of a period: a date means the whole day in ``tz_name``.

    Args:
        value: ``YYYY-MM-DD`` or an ISO datetime (naive ones are in ``tz_name``).
        tz_name: IANA timezone.
        end: The upper bound (a date then means the end of that day, exclusive).

    Returns:
        An aware datetime.

    Raises:
        PeriodError: On a malformed value.
    """
    return _parse(value, ZoneInfo(tz_name), end=end)


def make_period(
    since: str | None, until: str | None, tz_name: str, today: date | None = None
) -> Period:
    """Build a period from API/form parameters.

    Args:
        since: First day (``YYYY-MM-DD``, inclusive) or ISO datetime; default: 6 days before
            ``until`` (so 7 days in all).
        until: Last day (inclusive) or ISO datetime; default: today.
        tz_name: IANA timezone of the day buckets.
        today: "Today" in that timezone (tests pass it).

    Returns:
        The period.

    Raises:
        PeriodError: On a malformed value, a reversed period or one longer than a year.
    """
    tz = ZoneInfo(tz_name)
    today = today or datetime.now(tz).date()
    end = (
        _parse(until, tz, end=True) if until else datetime.combine(today + timedelta(1), time(), tz)
    )
    if since:
        start = _parse(since, tz, end=False)
    else:
        last_day = (end - timedelta(microseconds=1)).astimezone(tz).date()
        start = datetime.combine(last_day - timedelta(days=DEFAULT_DAYS - 1), time(), tz)
    if start >= end:
        raise PeriodError("since must be before until")
    if end - start > timedelta(days=MAX_DAYS):
        raise PeriodError(f"a period is at most {MAX_DAYS} days")
    return Period(start.astimezone(UTC), end.astimezone(UTC), tz)


def _sums(log: Any = Request) -> tuple[Any, ...]:
    """The aggregates of a group of log rows, in :func:`_row_dict` order.

    Args:
        log: ``Request``, or the columns of a subquery of log rows (``subquery.c``).
    """
    return (
        func.count(log.id),
        func.count(func.distinct(log.user_id)),
        func.coalesce(func.sum(log.prompt_tokens), 0),
        func.coalesce(func.sum(log.completion_tokens), 0),
        func.coalesce(func.sum(log.cost_usd), 0),
        func.coalesce(func.sum(case((log.status == RequestStatus.ERROR, 1), else_=0)), 0),
    )


def _row_dict(row: Sequence[Any]) -> dict[str, Any]:
    requests_, users, prompt_tokens, completion_tokens, cost, errors = row
    return {
        "requests": int(requests_),
        "active_users": int(users),
        "prompt_tokens": int(prompt_tokens),
        "completion_tokens": int(completion_tokens),
        "total_tokens": int(prompt_tokens) + int(completion_tokens),
        "cost_usd": float(Decimal(cost or 0)),
        "errors": int(errors),
    }


def _day_index(
    starts: Sequence[datetime], low: int, high: int, column: Any = Request.request_at
) -> ColumnElement[int]:
    """SQL giving the index (``low`` ≤ i < ``high``) of the day a row's ``column`` falls in.

    ``starts[i]`` is the first instant of day ``i``. The CASE is a binary search, so each row
    costs a handful of comparisons even for a year of days; it runs on SQLite and PostgreSQL
    alike because the day boundaries (DST included) are computed here, not by the database.
    """
    if high - low == 1:
        return literal(low, Integer)
    middle = (low + high) // 2
    before_middle = column < literal(starts[middle], UtcDateTime)
    return case(
        (before_middle, _day_index(starts, low, middle, column)),
        else_=_day_index(starts, middle, high, column),
    )


def _revenue(period: Period, starts: Sequence[datetime]) -> tuple[dict[str, int], dict[int, Any]]:
    """Telegram Stars taken in a period (refunded payments excluded) and the users who paid.

    Two queries: the totals and one grouped by day (``starts`` as in :func:`_daily`).

    Returns:
        ``({"stars_revenue", "paying_users"}, {day index: (stars, paying users)})``.
    """
    paid = (
        Payment.created_at >= period.start,
        Payment.created_at < period.end,
        Payment.status == PaymentStatus.PAID,
    )
    sums = (
        func.coalesce(func.sum(Payment.stars), 0),
        func.count(func.distinct(Payment.telegram_id)),
    )
    stars, payers = db.session.execute(select(*sums).where(*paid)).one()
    day = _day_index(starts, 0, len(starts), Payment.created_at).label("day")
    rows = select(day, Payment.stars, Payment.telegram_id).where(*paid).subquery()
    by_day = {
        int(index): (int(day_stars), int(day_payers))
        for index, day_stars, day_payers in db.session.execute(
            select(
                rows.c.day,
                func.coalesce(func.sum(rows.c.stars), 0),
                func.count(func.distinct(rows.c.telegram_id)),
            ).group_by(rows.c.day)
        )
    }
    return {"stars_revenue": int(stars), "paying_users": int(payers)}, by_day


def _daily(period: Period) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The per-day series of a period (days without requests are 0) and its Stars totals.

    One grouped query for the requests, two for the payments (:func:`_revenue`).
    """
    days = period.days()
    starts = [datetime.combine(day, time(), period.tz).astimezone(UTC) for day in days]
    rows = (
        select(
            _day_index(starts, 0, len(days)).label("day"),
            Request.id,
            Request.user_id,
            Request.prompt_tokens,
            Request.completion_tokens,
            Request.cost_usd,
            Request.status,
        )
        .where(Request.request_at >= period.start, Request.request_at < period.end)
        .subquery()
    )
    grouped = db.session.execute(select(rows.c.day, *_sums(rows.c)).group_by(rows.c.day)).all()
    by_day = {int(row[0]): _row_dict(row[1:]) for row in grouped}
    empty = _row_dict((0, 0, 0, 0, 0, 0))
    revenue_totals, revenue = _revenue(period, starts)
    daily = []
    for index, day in enumerate(days):
        totals = by_day.get(index, empty)
        stars, payers = revenue.get(index, (0, 0))
        daily.append(
            {
                "date": day.isoformat(),
                "requests": totals["requests"],
                "active_users": totals["active_users"],
                "total_tokens": totals["total_tokens"],
                "cost_usd": totals["cost_usd"],
                "errors": totals["errors"],
                "stars_revenue": stars,
                "paying_users": payers,
            }
        )
    return daily, revenue_totals


def statistics(period: Period) -> dict[str, Any]:
    """Totals, a per-day series, per-model and top-user breakdowns for a period.

    ``requests`` counts every logged request, denied and failed included; ``errors`` the failed.
    Six queries whatever the length of the period: totals, the days (one grouped query),
    models, top users, and the Telegram Stars taken (``stars_revenue``, ``paying_users``; in
    total and per day; refunded payments excluded).

    Args:
        period: From :func:`make_period`.

    Returns:
        The ``GET /admin/api/stats`` object (plus ``by_model`` and ``top_users``).
    """
    in_period = (Request.request_at >= period.start, Request.request_at < period.end)
    result = _row_dict(db.session.execute(select(*_sums()).where(*in_period)).one())
    daily, revenue = _daily(period)
    result.update(revenue)
    tokens = func.coalesce(func.sum(Request.prompt_tokens), 0) + func.coalesce(
        func.sum(Request.completion_tokens), 0
    )
    by_model = db.session.execute(
        select(
            Request.model_name,
            func.count(Request.id),
            tokens,
            func.coalesce(func.sum(Request.cost_usd), 0),
        )
        .where(*in_period)
        .group_by(Request.model_name)
        .order_by(func.count(Request.id).desc())
    ).all()
    top_users = db.session.execute(
        select(User.telegram_id, User.username, func.count(Request.id), tokens)
        .join(User, User.id == Request.user_id)
        .where(*in_period)
        .group_by(User.telegram_id, User.username)
        .order_by(func.count(Request.id).desc())
        .limit(10)
    ).all()
    result.update(
        since=period.start.isoformat(),
        until=period.end.isoformat(),
        timezone=str(period.tz),
        daily=daily,
        by_model=[
            {"model": name, "requests": n, "total_tokens": int(t), "cost_usd": float(c)}
            for name, n, t, c in by_model
        ],
        top_users=[
            {"telegram_id": tid, "username": uname, "requests": n, "total_tokens": int(t)}
            for tid, uname, n, t in top_users
        ],
    )
    return result
