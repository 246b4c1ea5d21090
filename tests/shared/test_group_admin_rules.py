"""The admin's side of ``shared.services.groups``: status, deletion, the list, activity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from shared.db import db
from shared.models import Group, GroupStatus, RequestStatus
from shared.services import groups
from shared.services.groups import GroupBlocked, activity_of, delete_group, find_groups, set_status
from tests.shared.support import add_request, add_user


@pytest.fixture()
def ctx(app: Flask):
    """An app context on the real database."""
    with app.app_context():
        yield
        db.session.rollback()


def _group(chat_id: int, title: str = "G") -> Group:
    groups.register_group({"id": chat_id, "title": title, "type": "supergroup"})
    return db.session.scalar(select(Group).where(Group.chat_id == chat_id))


def test_only_active_groups_can_be_deleted(ctx) -> None:
    """Deleting a blocked group is refused (it would come back active); an active one goes."""
    kept, gone = _group(-100101), _group(-100102)
    set_status(kept, GroupStatus.BLOCKED)
    with pytest.raises(GroupBlocked):
        delete_group(kept)
    delete_group(gone)
    db.session.commit()
    assert db.session.scalars(select(Group.chat_id)).all() == [-100101]
    assert groups.register_group({"id": -100102, "type": "group"}) == GroupStatus.ACTIVE
    assert groups.register_group({"id": -100101, "type": "group"}) == GroupStatus.BLOCKED


def test_find_groups_pages_and_filters(ctx) -> None:
    """Most recently seen first; the status filter; paging; the total counts every match."""
    made = [_group(-100200 - n, f"G{n}") for n in range(4)]
    for n, group in enumerate(made):
        group.last_seen_at += timedelta(minutes=n)
    set_status(made[1], GroupStatus.BLOCKED)
    found, total = find_groups()
    assert total == 4 and [g.title for g in found] == ["G3", "G2", "G1", "G0"]
    found, total = find_groups(status=GroupStatus.ACTIVE, limit=1, offset=1)
    assert total == 3 and [g.title for g in found] == ["G2"]
    found, total = find_groups(status=GroupStatus.BLOCKED)
    assert total == 1 and [g.title for g in found] == ["G1"]


def test_activity_counts_members_and_requests_of_each_group(ctx) -> None:
    """Distinct senders, every request (denied too), the newest; zeros for a quiet group."""
    ann, bob = add_user(301), add_user(302)
    rows = [
        add_request(ann, _at(0)),
        add_request(ann, _at(1), RequestStatus.DENIED),
        add_request(bob, _at(2)),
        add_request(bob, _at(3)),  # a private one
    ]
    for row in rows[:3]:
        row.chat_id = -100300
    rows[3].chat_id = 302
    db.session.flush()
    activity = activity_of([-100300, -100301])
    assert (activity[-100300].members, activity[-100300].requests) == (2, 3)
    assert activity[-100300].last_request_at == _at(2)
    assert activity[-100301] == groups.GroupActivity(0, 0, None)
    assert activity_of([]) == {}


def _at(minutes: int) -> datetime:
    return datetime(2026, 1, 2, 3, 4, tzinfo=UTC) + timedelta(minutes=minutes)
