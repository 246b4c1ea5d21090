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
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, select

from shared.db import db
from shared.models import Request, RequestStatus


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
