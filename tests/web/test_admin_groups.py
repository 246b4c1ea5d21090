"""The admin's Groups page, the models' vision and speech-to-text fields, attachments in the log.

Everything runs on the real app, database and Redis, through the real forms and buttons (with
their CSRF tokens). Groups are registered as the bot registers them.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from shared.db import db
from shared.models import AuditEntry, Group, GroupStatus, LLMModel, Request
from shared.services.catalog import seed_catalog
from tests.support import ADMIN_USERNAME
from tests.web.test_admin_login import login
from tests.web.test_admin_plans import _csrf, _flashes, _row, _text
from tests.web.test_api_groups import T0, ask, register
from web.admin.views import attachment_cell


@pytest.fixture()
def admin(client, app: Flask):
    """A logged-in admin, with the default modes seeded and an empty audit log."""
    with app.app_context():
        seed_catalog(app.config["AI_ROUTER"])
        db.session.execute(AuditEntry.__table__.delete())
        db.session.commit()
    assert login(client).status_code == 302
    return client


def _status(app: Flask, group_id: int) -> GroupStatus | None:
    with app.app_context():
        group = db.session.get(Group, group_id)
        return None if group is None else GroupStatus(group.status)


def _press(client, group_id: int, status: str, back: str = "/admin/group/") -> str:
    """Press a row's Block / Unblock button; the list page it returns to."""
    token = _csrf(client, "/admin/group/")
    response = client.post(
        f"/admin/group/status/{group_id}", data={"csrf_token": token, "status": status, "url": back}
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(back), "back to the list as it was"
    return client.get(back).text


def _cell(row: str, column: str) -> str:
    match = re.search(rf'class="col-{column}">(.*?)</td>', row, re.S)
    assert match, column
    return _text(match.group(1))


# -- the Groups page --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/group/", "/admin/group/details/?id=1"])
def test_anonymous_gets_no_groups(client, path: str) -> None:
    """The Groups page sends anonymous visitors to the login form."""
    response = client.get(path)
    assert response.status_code == 302 and "/admin/login/" in response.headers["Location"]


def test_groups_are_listed_after_users_with_their_activity(admin, app: Flask) -> None:
    """Title, chat id, kind, forum, status, members seen, requests, last seen; details too."""
    forum = register(app, -1001500, "Book <club>", is_forum=True)
    register(app, -1001600, "Empty")
    ask(app, 41, -1001500, T0)
    ask(app, 42, -1001500, T0 + timedelta(minutes=1), thread_id=9)
    page = admin.get("/admin/group/").text
    menu = re.findall(r'<a[^>]*href="(/admin/[a-z_]+/)"', page)
    assert menu.index("/admin/group/") == menu.index("/admin/user/") + 1, "Groups after Users"
    row = _row(page, "title", "Book <club>")
    assert row, "the title is shown (escaped)"
    assert "Book &lt;club&gt;" in row
    assert _cell(row, "chat_id") == "-1001500" and _cell(row, "kind") == "supergroup"
    assert _cell(row, "status") == "active"
    assert (_cell(row, "members"), _cell(row, "requests")) == ("2", "2")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", _cell(row, "last_seen_at"))
    assert "Block" in _cell(row, "buttons") and "Unblock" not in _cell(row, "buttons")
    empty = _row(page, "title", "Empty")
    assert (_cell(empty, "members"), _cell(empty, "requests")) == ("0", "0")

    details = _text(admin.get(f"/admin/group/details/?id={forum}").text)
    assert "Members seen 2" in details and "Requests 2" in details
    assert "Last request 2026-03-01 12:01:00 UTC" in details


def test_groups_cannot_be_created_or_edited_here(admin, app: Flask) -> None:
    """Groups come from Telegram: no create form, no edit form."""
    group_id = register(app, -1001700, "Fixed")
    assert admin.get("/admin/group/new/").status_code == 302
    assert admin.get(f"/admin/group/edit/?id={group_id}").status_code == 302
    page = admin.get("/admin/group/").text
    assert "/admin/group/new/" not in page and "/admin/group/edit/" not in page


def test_block_and_unblock_buttons_change_the_status(admin, app: Flask) -> None:
    """«Block» refuses the group, «Unblock» lets it in again; both audited under the admin."""
    group_id = register(app, -1001800, "Noisy")
    back = "/admin/group/?flt0_status_equals=blocked"
    page = _press(admin, group_id, "blocked", back)
    assert "Group «Noisy» blocked." in _flashes(page)
    assert _status(app, group_id) == GroupStatus.BLOCKED
    row = _row(page, "title", "Noisy")
    assert row and _cell(row, "status") == "blocked" and "Unblock" in _cell(row, "buttons")

    page = _press(admin, group_id, "active")
    assert "Group «Noisy» unblocked." in _flashes(page)
    assert _status(app, group_id) == GroupStatus.ACTIVE
    with app.app_context():
        entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [(e.actor, e.kind, e.object_id, e.changes) for e in entries] == [
            (ADMIN_USERNAME, "group", str(group_id), {"status": ["active", "blocked"]}),
            (ADMIN_USERNAME, "group", str(group_id), {"status": ["blocked", "active"]}),
        ]


@pytest.mark.parametrize("status", ["banned", ""])
def test_a_button_with_a_bad_status_changes_nothing(admin, app: Flask, status: str) -> None:
    """A forged status (or an unknown group) is flashed as an error; nothing changes."""
    group_id = register(app, -1001900, "Safe")
    page = _press(admin, group_id, status)
    assert "No such group or status." in _flashes(page)
    assert _status(app, group_id) == GroupStatus.ACTIVE
    for unknown in (group_id + 1000, 2**31, 2**63):  # beyond any row: not found, no DB error
        assert "No such group or status." in _flashes(_press(admin, unknown, "blocked"))


def test_button_needs_the_csrf_token(admin, app: Flask) -> None:
    """Without its CSRF token the button's POST is refused (400)."""
    group_id = register(app, -1002000, "Guarded")
    response = admin.post(f"/admin/group/status/{group_id}", data={"status": "blocked"})
    assert response.status_code == 400
    assert _status(app, group_id) == GroupStatus.ACTIVE


def test_bulk_block_and_unblock_and_the_status_filter(admin, app: Flask) -> None:
    """The list's actions change the selected groups; the Status filter shows each side."""
    ids = [register(app, -1002100 - n, f"G{n}") for n in range(3)]
    token = _csrf(admin, "/admin/group/")
    response = admin.post(
        "/admin/group/action/",
        data={"csrf_token": token, "action": "block", "rowid": [str(i) for i in ids[:2]]},
    )
    assert response.status_code == 302
    assert "Blocked 2 group(s)." in _flashes(admin.get("/admin/group/").text)
    assert [_status(app, i) for i in ids] == [GroupStatus.BLOCKED] * 2 + [GroupStatus.ACTIVE]
    blocked = admin.get("/admin/group/?flt0_status_equals=blocked").text
    assert _row(blocked, "title", "G0") and _row(blocked, "title", "G1")
    assert not _row(blocked, "title", "G2")
    active = admin.get("/admin/group/?flt0_status_equals=active").text
    assert _row(active, "title", "G2") and not _row(active, "title", "G0")

    forged = [str(i) for i in ids] + ["0", "-1", str(2**40), "x"]  # ignored, no DB error
    admin.post(
        "/admin/group/action/", data={"csrf_token": token, "action": "unblock", "rowid": forged}
    )
    assert "Unblocked 2 group(s)." in _flashes(admin.get("/admin/group/").text)
    assert {_status(app, i) for i in ids} == {GroupStatus.ACTIVE}


def test_an_active_group_can_be_deleted_a_blocked_one_cannot(admin, app: Flask) -> None:
    """Deleting an active group forgets it; a blocked one is refused (it would come back active)."""
    active = register(app, -1002200, "Gone")
    blocked = register(app, -1002300, "Kept")
    _press(admin, blocked, "blocked")
    token = _csrf(admin, "/admin/group/")
    for group_id in (active, blocked):
        response = admin.post(
            "/admin/group/delete/",
            data={"csrf_token": token, "id": str(group_id), "url": "/admin/group/"},
        )
        assert response.status_code == 302
    page = admin.get("/admin/group/").text
    assert "Group «Kept» not deleted: a blocked group cannot be deleted" in _flashes(page)
    assert _status(app, active) is None
    assert _status(app, blocked) == GroupStatus.BLOCKED
    with app.app_context():
        gone = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "delete"))
        assert (gone.kind, gone.object_id, gone.label) == ("group", str(active), "Gone (-1002200)")
    register(app, -1002200, "Gone")  # its next message registers it again, active
    with app.app_context():
        again = db.session.scalar(select(Group).where(Group.chat_id == -1002200))
        assert again.status == GroupStatus.ACTIVE


# -- the Models page: vision and speech-to-text -----------------------------------------------


def test_model_form_sets_vision_and_the_transcription_model(admin, app: Flask) -> None:
    """The form's two fields are stored (the name trimmed, blank = no voice); the list shows it."""
    token = _csrf(admin, "/admin/llm_model/new/")
    form = {"csrf_token": token, "name": "Seer", "model": "gpt-x",
            "base_url": "http://127.0.0.1:9/v1", "enabled": "y", "vision": "y",
            "transcription_model": "  whisper-1 ", "input_price_per_1m": "0",
            "output_price_per_1m": "0"}  # fmt: skip
    page = admin.get("/admin/llm_model/new/").text
    assert 'name="vision"' in page and 'name="transcription_model"' in page
    response = admin.post("/admin/llm_model/new/", data=form)
    assert response.status_code == 302, response.text
    with app.app_context():
        model = db.session.scalar(select(LLMModel).where(LLMModel.name == "Seer"))
        assert (model.vision, model.transcription_model) == (True, "whisper-1")
        model_id = model.id
    listing = admin.get("/admin/llm_model/").text
    assert "Images" in listing and 'class="col-vision"' in listing

    edit = f"/admin/llm_model/edit/?id={model_id}"
    form = {**form, "csrf_token": _csrf(admin, edit), "transcription_model": "   "}
    del form["vision"]  # an unticked box is not sent
    assert admin.post(edit, data=form).status_code == 302
    with app.app_context():
        model = db.session.get(LLMModel, model_id)
        assert (model.vision, model.transcription_model) == (False, None)
    too_long = {**form, "csrf_token": _csrf(admin, edit), "transcription_model": "w" * 129}
    assert admin.post(edit, data=too_long).status_code == 200, "the form shows the error"
    with app.app_context():
        assert db.session.get(LLMModel, model_id).transcription_model is None


# -- the message log --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attachment", "shown"),
    [
        (None, ""),
        ({"kind": "photo", "size": 122_880, "width": 800, "height": 600}, "photo 120 KB"),
        ({"kind": "photo", "size": 900}, "photo 900 B"),
        ({"kind": "voice", "size": 20_000, "duration": 12}, "voice 0:12"),
        ({"kind": "audio", "duration": 3725, "file_name": "talk.mp3"}, "audio talk.mp3 1:02:05"),
        ({"kind": "document", "size": 3_000, "file_name": "notes.txt"}, "document notes.txt 3 KB"),
        ({"kind": "document", "size": 1_572_864}, "document 1.5 MB"),
        ({"kind": "photo", "size": "big", "duration": True}, "photo"),
        ({}, "file"),
        ("not a dict", ""),
    ],
)
def test_attachment_cell(attachment: object, shown: str) -> None:
    """A short description of what came with a message; odd fields are left out."""
    assert attachment_cell(attachment) == shown


def test_the_log_shows_topics_and_attachments(admin, app: Flask) -> None:
    """The list's Topic and Attachment columns, the CSV export, and a group's dialog thread."""
    register(app, -1002400, "Readers", is_forum=True)
    voice = {"kind": "voice", "size": 20_000, "duration": 12, "mime_type": "audio/ogg"}
    evil = {"kind": "document", "size": 3_000, "file_name": "=cmd().txt"}
    ask(app, 51, -1002400, T0, thread_id=77, attachment=voice)
    ask(app, 52, -1002400, T0 + timedelta(seconds=1), attachment=evil, attachment_text="secret")
    page = admin.get("/admin/message/").text
    assert 'class="col-thread_id"' in page and ">Topic<" in page
    row = _row(page, "attachment", "voice 0:12")
    assert row and _cell(row, "thread_id") == "77"
    assert _row(page, "attachment", "document =cmd().txt 3 KB")
    assert "secret" not in page, "a document's text is not listed"

    header = page[: page.index("</thead>")]
    sorts = sorted(set(re.findall(r'href="(/admin/message/\?sort=\d+[^"]*)"', header)))
    assert len(sorts) >= 13, "every plain column sorts"
    for link in sorts:  # the attachment (JSON) is not among them: PostgreSQL cannot order it
        assert admin.get(link.replace("&amp;", "&")).status_code == 200, link
    assert "Attachment</a>" not in header

    exported = admin.get("/admin/message/export/csv/").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(exported)))
    cells = {(r["Topic"], r["Attachment"]) for r in rows}
    assert cells == {("77", "voice 0:12"), ("", "document =cmd().txt 3 KB")}, "kind first: inert"
    assert {r["Chat id"] for r in rows} == {"-1002400"}

    with app.app_context():
        dialog_id = db.session.scalar(select(Request.dialog_id).where(Request.thread_id == 77))
    thread = _text(admin.get(f"/admin/message/dialog/{dialog_id}").text)
    assert "Group chat -1002400" in thread and "topic 77" in thread
    assert "from 51" in thread and "voice 0:12" in thread
