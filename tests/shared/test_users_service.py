"""User rules (``shared.services.users``): status changes, admin edits, the users page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask

from shared.db import db
from shared.models import UserStatus
from shared.services.users import find_users, set_status, update_user
from tests.shared.support import add_user


@pytest.fixture()
def ctx(app: Flask):
    """An app context on the real database; changes are rolled back."""
    with app.app_context():
        yield
        db.session.rollback()


def test_set_status_reports_how_many_changed(ctx) -> None:
    """Blocking counts only users whose status actually changes."""
    users = [add_user(1), add_user(2, status=UserStatus.BLOCKED), add_user(3)]
    assert set_status(users, UserStatus.BLOCKED) == 2
    assert {u.status for u in users} == {UserStatus.BLOCKED}
    assert set_status(users, UserStatus.BLOCKED) == 0


def test_update_user_changes_status_and_fields_but_not_the_address(ctx) -> None:
    """Status and limit change; the Telegram id is not editable."""
    user = add_user(10, status=UserStatus.PENDING)
    update_user(user, {"status": "active", "daily_request_limit": 3, "note": "ok"})
    assert (user.status, user.daily_request_limit, user.note) == (UserStatus.ACTIVE, 3, "ok")
    with pytest.raises(ValueError, match="telegram_id"):
        update_user(user, {"telegram_id": 11})
    assert user.telegram_id == 10


def test_find_users_filters_searches_and_pages(ctx) -> None:
    """Most recently seen first; status and name filters; total counts all matches."""
    now = datetime.now(UTC)
    add_user(1, username="anna", last_seen_at=now - timedelta(hours=2))
    add_user(2, username="boris", first_name="Anatoly", last_seen_at=now)
    add_user(3, username="carl", status=UserStatus.BLOCKED)
    users, total = find_users()
    assert [u.telegram_id for u in users] == [2, 1, 3] and total == 3
    users, total = find_users(search="AN")
    assert [u.telegram_id for u in users] == [2, 1] and total == 2
    users, total = find_users(status=UserStatus.BLOCKED)
    assert [u.telegram_id for u in users] == [3] and total == 1
    users, total = find_users(limit=1, offset=1)
    assert [u.telegram_id for u in users] == [1] and total == 3
