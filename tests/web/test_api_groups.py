"""The admin API's groups, the models' vision and speech-to-text fields, attachments in the log.

Groups are registered as the bot registers them (``groups.register_group`` with Telegram's
``Chat`` object); log rows are written straight to the real database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from shared.db import db
from shared.models import (
    AuditEntry,
    Dialog,
    Group,
    GroupStatus,
    LLMModel,
    Request,
    RequestStatus,
    User,
)
from shared.services import groups
from shared.services.catalog import seed_catalog
from tests.shared.support import add_user
from tests.web.test_api import _error as error_of
from tests.web.test_api_plans import ApiClient

GROUP_FIELDS = {"id", "chat_id", "title", "kind", "is_forum", "status", "first_seen_at",
                "last_seen_at", "members", "requests", "last_request_at"}  # fmt: skip
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture()
def api(client, app: Flask) -> ApiClient:
    """An API client, with the default modes seeded and an empty audit log."""
    with app.app_context():
        seed_catalog(app.config["AI_ROUTER"])
        db.session.execute(AuditEntry.__table__.delete())
        db.session.commit()
    return ApiClient(client)


def register(app: Flask, chat_id: int, title: str, **chat: Any) -> int:
    """Register a group as its first request does; its row id."""
    with app.app_context():
        groups.register_group({"id": chat_id, "title": title, "type": "supergroup", **chat})
        db.session.commit()
        return db.session.scalar(select(Group.id).where(Group.chat_id == chat_id))


def ask(
    app: Flask,
    telegram_id: int,
    chat_id: int,
    at: datetime,
    *,
    thread_id: int | None = None,
    attachment: dict | None = None,
    attachment_text: str | None = None,
) -> int:
    """Log one request of ``telegram_id`` in ``chat_id`` at ``at``; its id."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.telegram_id == telegram_id))
        user = user or add_user(telegram_id)
        dialog = Dialog(user_id=user.id, chat_id=chat_id if chat_id < 0 else None, ended_at=at)
        db.session.add(dialog)
        db.session.flush()
        row = Request(
            dialog_id=dialog.id, number=1, user_id=user.id, chat_id=chat_id, thread_id=thread_id,
            request_text="q", request_at=at, status=RequestStatus.OK, attachment=attachment,
            attachment_text=attachment_text,
        )  # fmt: skip
        db.session.add(row)
        db.session.commit()
        return row.id


# -- groups -----------------------------------------------------------------------------------


def test_groups_are_listed_with_their_activity(api: ApiClient, app: Flask) -> None:
    """Every field; members and requests from the log; most recently seen first; paging."""
    quiet = register(app, -1001, "Quiet")
    busy = register(app, -1002, "Busy", is_forum=True)
    with app.app_context():  # «Busy» was seen last
        db.session.get(Group, busy).last_seen_at += timedelta(minutes=5)
        db.session.commit()
    ask(app, 11, -1002, T0)
    ask(app, 11, -1002, T0 + timedelta(minutes=1), thread_id=3)
    last = T0 + timedelta(minutes=2)
    ask(app, 12, -1002, last)
    ask(app, 11, 11, T0 + timedelta(hours=1))  # a private chat counts for no group

    listing = api.get("/groups").get_json()
    assert listing["total"] == 2
    first, second = listing["items"]
    assert set(first) == GROUP_FIELDS
    assert (first["id"], second["id"]) == (busy, quiet)
    assert first["chat_id"] == -1002 and first["title"] == "Busy"
    assert first["kind"] == "supergroup" and first["is_forum"] is True
    assert first["status"] == "active"
    assert (first["members"], first["requests"]) == (2, 3)
    assert datetime.fromisoformat(first["last_request_at"]) == last
    assert (second["members"], second["requests"], second["last_request_at"]) == (0, 0, None)
    assert second["is_forum"] is False and second["first_seen_at"] and second["last_seen_at"]
    assert api.get(f"/groups/{busy}").get_json() == first

    page = api.get("/groups?limit=1&offset=1").get_json()
    assert page["total"] == 2 and [g["id"] for g in page["items"]] == [quiet]


def test_blocking_a_group_through_the_api(api: ApiClient, app: Flask) -> None:
    """PATCH status: blocked, then active; the filter follows; each change audited once."""
    group_id = register(app, -1003, "Chatty")
    other = register(app, -1004, "Other")
    blocked = api.patch(f"/groups/{group_id}", json={"status": "blocked"})
    assert blocked.status_code == 200, blocked.get_data(as_text=True)
    assert blocked.get_json()["status"] == "blocked"
    assert set(blocked.get_json()) == GROUP_FIELDS
    with app.app_context():
        assert db.session.get(Group, group_id).status == GroupStatus.BLOCKED
    assert [g["id"] for g in api.get("/groups?status=blocked").get_json()["items"]] == [group_id]
    assert [g["id"] for g in api.get("/groups?status=active").get_json()["items"]] == [other]
    assert api.get("/groups?status=").get_json()["total"] == 2, "empty = no filter"

    unchanged = api.patch(f"/groups/{group_id}", json={})
    assert unchanged.status_code == 200 and unchanged.get_json()["status"] == "blocked"
    assert api.patch(f"/groups/{group_id}", json={"status": "active"}).status_code == 200
    with app.app_context():
        assert db.session.get(Group, group_id).status == GroupStatus.ACTIVE
        entries = db.session.scalars(
            select(AuditEntry).where(AuditEntry.kind == "group").order_by(AuditEntry.id)
        ).all()
        assert [(e.object_id, e.label, e.changes) for e in entries] == [
            (str(group_id), "Chatty (-1003)", {"status": ["active", "blocked"]}),
            (str(group_id), "Chatty (-1003)", {"status": ["blocked", "active"]}),
        ]
    audited = api.get("/audit?kind=group").get_json()
    assert audited["total"] == 2


@pytest.mark.parametrize(
    "body",
    [
        {"status": "banned"},
        {"status": None},
        {"status": True},
        {"title": "Renamed"},
        {"chat_id": -5},
        {"members": 3},
    ],
)
def test_only_a_known_status_can_be_patched(api: ApiClient, app: Flask, body: dict) -> None:
    """Unknown statuses and read-only fields are refused (400); nothing changes."""
    group_id = register(app, -1005, "Strict")
    error_of(api.patch(f"/groups/{group_id}", json=body), 400, "validation_error")
    with app.app_context():
        group = db.session.get(Group, group_id)
        assert (group.status, group.title, group.chat_id) == (GroupStatus.ACTIVE, "Strict", -1005)


@pytest.mark.parametrize("group_id", [0, 999_999, 2**31, 2**40])
def test_unknown_groups_are_404(api: ApiClient, group_id: int) -> None:
    """No such group: 404 for reading and changing it."""
    error_of(api.get(f"/groups/{group_id}"), 404, "not_found")
    error_of(api.patch(f"/groups/{group_id}", json={"status": "blocked"}), 404, "not_found")


@pytest.mark.parametrize(
    "query", ["status=banned", "limit=0", "offset=-1", "limit=x"], ids=lambda q: q
)
def test_bad_group_queries_are_refused(api: ApiClient, query: str) -> None:
    """A bad filter or page is a 400, not an empty list."""
    error_of(api.get(f"/groups?{query}"), 400, "validation_error")


def test_groups_need_a_token(client) -> None:
    """Without the bearer token nothing about groups is answered."""
    for path in ("/admin/api/groups", "/admin/api/groups/1"):
        error_of(client.get(path), 401, "unauthorized")
    error_of(client.patch("/admin/api/groups/1", json={"status": "blocked"}), 401)


# -- models: vision and speech-to-text --------------------------------------------------------

ENDPOINT = {"model": "gpt-x", "base_url": "http://127.0.0.1:9/v1"}


def test_models_carry_vision_and_a_transcription_model(api: ApiClient, app: Flask) -> None:
    """Defaults (no images, no voice), set on POST, changed and cleared on PATCH."""
    plain = api.post("/models", json={"name": "Plain", **ENDPOINT})
    assert plain.status_code == 201
    assert plain.get_json()["vision"] is False
    assert plain.get_json()["transcription_model"] is None

    created = api.post(
        "/models",
        json={"name": "Eyes", **ENDPOINT, "vision": True, "transcription_model": " whisper-1 "},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    model = created.get_json()
    assert model["vision"] is True and model["transcription_model"] == "whisper-1"
    assert api.get(f"/models/{model['id']}").get_json() == model

    changed = api.patch(
        f"/models/{model['id']}", json={"vision": False, "transcription_model": "   "}
    )
    assert changed.status_code == 200
    assert changed.get_json()["vision"] is False
    assert changed.get_json()["transcription_model"] is None, "blank means no voice"
    again = api.patch(f"/models/{model['id']}", json={"transcription_model": "x" * 128})
    assert again.get_json()["transcription_model"] == "x" * 128
    cleared = api.patch(f"/models/{model['id']}", json={"transcription_model": None})
    assert cleared.get_json()["transcription_model"] is None
    with app.app_context():
        stored = db.session.get(LLMModel, model["id"])
        assert (stored.vision, stored.transcription_model) == (False, None)
        audited = db.session.scalars(
            select(AuditEntry.changes).where(AuditEntry.kind == "model").order_by(AuditEntry.id)
        ).all()
    assert audited[1]["vision"] == [None, True]
    assert audited[1]["transcription_model"] == [None, "whisper-1"]
    assert audited[2]["transcription_model"] == ["whisper-1", None]


@pytest.mark.parametrize(
    "bad",
    [
        {"vision": 1},
        {"vision": "true"},
        {"vision": None},
        {"transcription_model": 5},
        {"transcription_model": "x" * 129},
        {"transcription_model": "whisper\x00"},
    ],
)
def test_bad_vision_or_transcription_values_are_refused(api: ApiClient, bad: dict) -> None:
    """JSON types as they are, at most 128 characters, no NUL: 400, nothing stored."""
    error_of(api.post("/models", json={"name": "Bad", **ENDPOINT, **bad}), 400)
    assert api.get("/models").get_json()["total"] == 0


def test_the_document_describes_the_new_model_fields(api: ApiClient) -> None:
    """The document: a boolean vision, a nullable transcription_model of at most 128 characters."""
    document = api.get("/openapi.json").get_json()
    model = document["components"]["schemas"]["Model"]["properties"]
    assert model["vision"]["type"] == "boolean"
    assert model["transcription_model"]["maxLength"] == 128
    assert model["transcription_model"]["nullable"] is True


# -- the message log --------------------------------------------------------------------------


def test_messages_show_the_chat_topic_and_attachment(api: ApiClient, app: Flask) -> None:
    """Listed: chat_id, thread_id, attachment (never attachment_text); one message: all four."""
    photo = {"kind": "photo", "file_id": "AgAD", "size": 122_880, "width": 800, "height": 600}
    document = {"kind": "document", "size": 3_000, "file_name": "notes.txt",
                "mime_type": "text/plain"}  # fmt: skip
    text_id = ask(app, 21, 21, T0)
    photo_id = ask(app, 21, -1006, T0 + timedelta(seconds=1), thread_id=4, attachment=photo)
    doc_id = ask(
        app, 22, -1006, T0 + timedelta(seconds=2), attachment=document,
        attachment_text="line one\nline two",
    )  # fmt: skip

    items = api.get("/messages").get_json()["items"]
    assert [m["id"] for m in items] == [doc_id, photo_id, text_id]
    by_id = {m["id"]: m for m in items}
    assert all("attachment_text" not in m for m in items)
    assert by_id[photo_id]["attachment"] == photo
    assert (by_id[photo_id]["chat_id"], by_id[photo_id]["thread_id"]) == (-1006, 4)
    assert by_id[doc_id]["attachment"] == document and by_id[doc_id]["thread_id"] is None
    assert by_id[text_id]["attachment"] is None and by_id[text_id]["chat_id"] == 21

    one = api.get(f"/messages/{doc_id}").get_json()
    assert one["attachment_text"] == "line one\nline two"
    assert {k: v for k, v in one.items() if k != "attachment_text"} == by_id[doc_id]
    assert api.get(f"/messages/{text_id}").get_json()["attachment_text"] is None

    in_group = api.get("/messages?chat_id=-1006").get_json()
    assert in_group["total"] == 2 and {m["id"] for m in in_group["items"]} == {photo_id, doc_id}
    error_of(api.get("/messages/999999"), 404, "not_found")
    error_of(api.get("/messages/0"), 404, "not_found")
