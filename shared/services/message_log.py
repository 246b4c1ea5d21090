"""Reading the message log for the admin: filters, search, paging."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, or_, select

from shared.db import page_of
from shared.models import Request, RequestStatus, User


@dataclass(frozen=True)
class LogFilter:
    """Filters of the message log; None means "any".

    Attributes:
        telegram_id: One user's requests.
        dialog_id: One dialog.
        chat_id: One chat (a group's id gives what was asked there).
        since: Requests at or after this instant.
        until: Requests before this instant.
        status: ``ok``, ``error``, ``denied`` or ``pending``.
        model: The model's display name at the time.
        search: Text searched in request and response (case-insensitive where the DB allows).
    """

    telegram_id: int | None = None
    dialog_id: int | None = None
    chat_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: RequestStatus | None = None
    model: str | None = None
    search: str | None = None


def _filtered(query: Select, filters: LogFilter) -> Select:
    if filters.telegram_id is not None:
        query = query.where(User.telegram_id == filters.telegram_id)
    if filters.dialog_id is not None:
        query = query.where(Request.dialog_id == filters.dialog_id)
    if filters.chat_id is not None:
        query = query.where(Request.chat_id == filters.chat_id)
    if filters.since is not None:
        query = query.where(Request.request_at >= filters.since)
    if filters.until is not None:
        query = query.where(Request.request_at < filters.until)
    if filters.status is not None:
        query = query.where(Request.status == filters.status)
    if filters.model:
        query = query.where(Request.model_name == filters.model)
    if filters.search:
        pattern = f"%{filters.search}%"
        query = query.where(
            or_(Request.request_text.ilike(pattern), Request.response_text.ilike(pattern))
        )
    return query


def query_log(filters: LogFilter, limit: int = 50, offset: int = 0) -> tuple[list[Request], int]:
    """One page of the log, newest first, and the number of rows matching the filters.

    Args:
        filters: What to select.
        limit: Page size (capped at :data:`shared.db.MAX_PAGE`).
        offset: Rows to skip.

    Returns:
        The rows (with ``user`` loaded) and the total count.
    """
    query = _filtered(select(Request).join(User, User.id == Request.user_id), filters)
    return page_of(query, (Request.request_at.desc(), Request.id.desc()), limit, offset)
