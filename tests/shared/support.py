"""Helpers of the service tests: log rows written straight to the real database, query counts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

from sqlalchemy import event

from shared.db import db
from shared.models import Dialog, Request, RequestStatus, User


def add_user(telegram_id: int, **fields: object) -> User:
    """Store a user (flushed)."""
    user = User(telegram_id=telegram_id, **fields)
    db.session.add(user)
    db.session.flush()
    return user


def add_request(
    user: User,
    at: datetime,
    status: RequestStatus = RequestStatus.OK,
    *,
    tokens: tuple[int, int] = (10, 5),
    cost: str = "0.001",
    model: str = "GPT",
) -> Request:
    """Store one log row of ``user`` at ``at`` (in an ended dialog of its own; flushed)."""
    dialog = Dialog(user_id=user.id, ended_at=at)
    db.session.add(dialog)
    db.session.flush()
    row = Request(
        dialog_id=dialog.id,
        number=1,
        user_id=user.id,
        request_text="q",
        request_at=at,
        status=status,
        model_name=model,
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        cost_usd=Decimal(cost),
    )
    db.session.add(row)
    db.session.flush()
    return row


@contextmanager
def count_queries() -> Iterator[list[str]]:
    """Collect the SQL statements the database receives inside the block."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
