"""Per-user request and token counts: the one place that decides what is counted.

Every count is a batch (a dict keyed by user id, one grouped query whatever the number of
users), so list pages cost the same for 1 row or 100; the single-user helpers are the batch
with one id. Two counts exist on purpose:

- ``requests_total``: every logged request, denied and failed included (what the admin lists
  and ``GET /admin/api/users`` report as ``requests_total``).
- ``requests_today``: requests that count against the daily limit: not denied, made since
  midnight in the given timezone (``over_daily_limit`` on the bot side uses this one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, select

from shared.db import db
from shared.models import Request, RequestStatus


def month_start(tz_name: str, now: datetime | None = None) -> datetime:
    """Midnight of the first day of this month in ``tz_name``, as an aware datetime.

    Args:
        tz_name: IANA timezone of "this month".
        now: The current instant (tests pass it); default: now.

    Returns:
        The start of the month.
    """
    return day_start(tz_name, now).replace(day=1)


def next_day_start(tz_name: str, now: datetime | None = None) -> datetime:
    """Midnight of tomorrow in ``tz_name``: when the daily limits reset."""
    start = day_start(tz_name, now)
    return datetime.combine(start.date() + timedelta(days=1), time(), start.tzinfo)


def next_month_start(tz_name: str, now: datetime | None = None) -> datetime:
    """Midnight of the first day of next month in ``tz_name``: when the monthly limits reset."""
    start = month_start(tz_name, now)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month)


def day_start(tz_name: str, now: datetime | None = None) -> datetime:
    """Midnight of today in ``tz_name``, as an aware datetime.

    Args:
        tz_name: IANA timezone of "today".
        now: The current instant (tests pass it); default: now.

    Returns:
        The start of the day.
    """
    tz = ZoneInfo(tz_name)
    today = (now or datetime.now(tz)).astimezone(tz).date()
    return datetime.combine(today, time(), tz)


def _counts_toward_limit(since: datetime) -> ColumnElement[bool]:
    """The rule of the daily limit: made at or after ``since`` and not denied."""
    return and_(Request.request_at >= since, Request.status != RequestStatus.DENIED)


def _ids(user_ids: Iterable[int]) -> list[int]:
    return sorted({int(i) for i in user_ids})


def count_requests(
    user_ids: Iterable[int], *, since: datetime | None = None, limit_only: bool = False
) -> dict[int, int]:
    """Logged requests per user, in one grouped query.

    Args:
        user_ids: The users (database ids).
        since: Only requests at or after this instant (aware); None = all time.
        limit_only: Only requests that count against the daily limit (not denied); needs
            ``since``.

    Returns:
        ``{user_id: count}`` with an entry (possibly 0) for every id asked for.

    Raises:
        ValueError: If ``limit_only`` is asked without ``since``.
    """
    ids = _ids(user_ids)
    counts = dict.fromkeys(ids, 0)
    if not ids:
        return counts
    conditions: list[ColumnElement[bool]] = [Request.user_id.in_(ids)]
    if limit_only:
        if since is None:
            raise ValueError("limit_only counts need a start (since)")
        conditions.append(_counts_toward_limit(since))
    elif since is not None:
        conditions.append(Request.request_at >= since)
    rows = db.session.execute(
        select(Request.user_id, func.count(Request.id)).where(*conditions).group_by(Request.user_id)
    )
    counts.update({user_id: int(n) for user_id, n in rows})
    return counts


def requests_today(user_ids: Iterable[int], tz_name: str) -> dict[int, int]:
    """Requests that count against the daily limit, made today in ``tz_name``, per user.

    Args:
        user_ids: The users (database ids).
        tz_name: IANA timezone of "today".

    Returns:
        ``{user_id: count}`` for every id asked for.
    """
    return count_requests(user_ids, since=day_start(tz_name), limit_only=True)


def tokens_used(user_ids: Iterable[int], *, since: datetime | None = None) -> dict[int, int]:
    """Prompt plus completion tokens per user, in one grouped query.

    Args:
        user_ids: The users (database ids).
        since: Only requests at or after this instant; None = all time.

    Returns:
        ``{user_id: tokens}`` for every id asked for.
    """
    ids = _ids(user_ids)
    tokens = dict.fromkeys(ids, 0)
    if not ids:
        return tokens
    total = func.coalesce(func.sum(Request.prompt_tokens), 0) + func.coalesce(
        func.sum(Request.completion_tokens), 0
    )
    query = select(Request.user_id, total).where(Request.user_id.in_(ids))
    if since is not None:
        query = query.where(Request.request_at >= since)
    rows = db.session.execute(query.group_by(Request.user_id))
    tokens.update({user_id: int(n) for user_id, n in rows})
    return tokens


@dataclass(frozen=True)
class Spent:
    """What a user used in a period, as the limits count it.

    Attributes:
        requests: Requests not denied (pending, answered, failed and stopped ones count).
        tokens: Prompt plus completion tokens of the answered ones.
        cost_usd: Their cost.
    """

    requests: int = 0
    tokens: int = 0
    cost_usd: Decimal = Decimal(0)


def spent_since(user_ids: Iterable[int], since: datetime) -> dict[int, Spent]:
    """Requests counting against the limits, tokens and cost per user since an instant.

    One grouped query: the database's truth that the quota counters are rebuilt from.

    Args:
        user_ids: The users (database ids).
        since: The period's start (aware).

    Returns:
        ``{user_id: Spent}`` for every id asked for.
    """
    ids = _ids(user_ids)
    spent = dict.fromkeys(ids, Spent())
    if not ids:
        return spent
    counted = case((Request.status != RequestStatus.DENIED, 1), else_=0)
    conditions = [Request.user_id.in_(ids), Request.request_at >= since]
    rows = db.session.execute(
        select(
            Request.user_id,
            func.coalesce(func.sum(counted), 0),
            func.coalesce(func.sum(Request.prompt_tokens), 0)
            + func.coalesce(func.sum(Request.completion_tokens), 0),
            func.coalesce(func.sum(Request.cost_usd), 0),
        )
        .where(*conditions)
        .group_by(Request.user_id)
    )
    for user_id, requests, tokens, cost in rows:
        spent[user_id] = Spent(int(requests), int(tokens), Decimal(cost or 0))
    return spent


@dataclass(frozen=True)
class PlanUsage:
    """A user's use this day and month, as the plan limits count it (``usage`` in the API).

    Attributes:
        requests_today: Requests today that count against the daily limit.
        tokens_today: Tokens today.
        tokens_month: Tokens this month.
        cost_usd_month: Cost this month (USD).
    """

    requests_today: int = 0
    tokens_today: int = 0
    tokens_month: int = 0
    cost_usd_month: Decimal = Decimal(0)


def plan_usage(
    user_ids: Iterable[int], tz_name: str, now: datetime | None = None
) -> dict[int, PlanUsage]:
    """Use today and this month for a page of users: two grouped queries for any page size.

    Args:
        user_ids: The users (database ids).
        tz_name: IANA timezone of "today" and "this month".
        now: The current instant (tests pass it).

    Returns:
        ``{user_id: PlanUsage}`` for every id asked for.
    """
    ids = _ids(user_ids)
    today = spent_since(ids, day_start(tz_name, now))
    month = spent_since(ids, month_start(tz_name, now))
    return {
        i: PlanUsage(today[i].requests, today[i].tokens, month[i].tokens, month[i].cost_usd)
        for i in ids
    }


@dataclass(frozen=True)
class UserUsage:
    """What the admin shows about one user's use of the bot.

    Attributes:
        requests_total: Every logged request, denied and failed included.
        requests_today: Requests counting against today's limit.
        tokens_total: Prompt plus completion tokens, all time.
    """

    requests_total: int = 0
    requests_today: int = 0
    tokens_total: int = 0


def usage_by_user(user_ids: Iterable[int], tz_name: str) -> dict[int, UserUsage]:
    """Requests (all, today) and tokens for a page of users: three queries for any page size.

    Args:
        user_ids: The users (database ids).
        tz_name: IANA timezone of "today".

    Returns:
        ``{user_id: UserUsage}`` for every id asked for.
    """
    ids = _ids(user_ids)
    totals, today, tokens = count_requests(ids), requests_today(ids, tz_name), tokens_used(ids)
    return {i: UserUsage(totals[i], today[i], tokens[i]) for i in ids}
