"""The data model: constraints that protect the data, and migrations that match the models."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy.exc import IntegrityError, StatementError

from shared.db import db
from shared.models import Dialog, LLMModel, Mode, Request, User, UserStatus
from shared.models.types import utcnow


@pytest.fixture()
def ctx(app: Flask):
    """An app context with a clean session, rolled back at the end."""
    with app.app_context():
        yield db.session
        db.session.rollback()


def _user(telegram_id: int = 1) -> User:
    return User(telegram_id=telegram_id, first_name="T")


def test_migrations_match_the_models(app: Flask) -> None:
    """The migrated schema is exactly what the models declare (no forgotten migration)."""
    with app.app_context(), db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == []


def test_user_defaults(ctx) -> None:
    """New users are active and timestamped in UTC."""
    user = _user()
    ctx.add(user)
    ctx.flush()
    ctx.expire_all()
    user = ctx.get(User, user.id)
    assert user.status is UserStatus.ACTIVE
    assert user.created_at.tzinfo is not None
    assert user.created_at.utcoffset().total_seconds() == 0


def test_telegram_id_is_unique(ctx) -> None:
    """Two users cannot share a Telegram id."""
    ctx.add_all([_user(7), _user(7)])
    with pytest.raises(IntegrityError):
        ctx.flush()


def test_update_id_is_unique(ctx) -> None:
    """One Telegram update can be logged only once (the idempotency key)."""
    user = _user()
    dialog = Dialog(user=user)
    ctx.add_all([user, dialog])
    ctx.flush()
    ctx.add(Request(dialog=dialog, number=1, user=user, update_id=99, request_text="a"))
    ctx.add(Request(dialog=dialog, number=2, user=user, update_id=99, request_text="b"))
    with pytest.raises(IntegrityError):
        ctx.flush()


def test_message_number_is_unique_within_a_dialog(ctx) -> None:
    """Request numbers never repeat within a dialog, but restart in another one."""
    user = _user()
    first, second = Dialog(user=user, ended_at=utcnow()), Dialog(user=user)
    ctx.add_all([user, first, second])
    ctx.flush()
    ctx.add(Request(dialog=first, number=1, user=user, request_text="a"))
    ctx.add(Request(dialog=second, number=1, user=user, request_text="b"))
    ctx.flush()
    ctx.add(Request(dialog=first, number=1, user=user, request_text="c"))
    with pytest.raises(IntegrityError):
        ctx.flush()


def test_a_user_has_one_open_dialog(ctx) -> None:
    """A second open dialog of the same user is refused by the database; ended ones are not."""
    user = _user()
    ctx.add_all([user, Dialog(user=user, ended_at=utcnow()), Dialog(user=user)])
    ctx.flush()
    ctx.add(Dialog(user=user))
    with pytest.raises(IntegrityError):
        ctx.flush()


@pytest.mark.parametrize("model", [Mode, LLMModel])
def test_only_one_default(ctx, model) -> None:
    """At most one default mode and one default LLM model exist."""
    extra = {"model": "m", "base_url": "http://x/v1"} if model is LLMModel else {}
    ctx.add(model(name="a", is_default=True, **extra))
    ctx.add(model(name="b", is_default=False, **extra))
    ctx.flush()
    ctx.add(model(name="c", is_default=True, **extra))
    with pytest.raises(IntegrityError):
        ctx.flush()


def test_invalid_status_is_refused(ctx) -> None:
    """Status columns accept only their enum's values."""
    user = _user()
    user.status = "vip"
    ctx.add(user)
    with pytest.raises((StatementError, LookupError)):
        ctx.flush()


def test_naive_datetimes_are_refused(ctx) -> None:
    """A naive timestamp (local time by mistake) never reaches the database."""
    user = _user()
    user.last_seen_at = datetime(2026, 1, 1, 12, 0)
    ctx.add(user)
    with pytest.raises(StatementError, match="naive"):
        ctx.flush()
