"""The audit log seen from the web: actors named by the admin UI and the API, the page, the API."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from shared.db import db
from shared.models import AuditEntry, LLMModel, Setting, User, UserStatus
from shared.services import audit
from shared.services.api_tokens import issue_token
from shared.services.catalog import seed_catalog
from shared.services.settings import set_setting
from shared.services.users import create_user, update_user
from tests.support import ADMIN_API_TOKEN, ADMIN_USERNAME
from tests.web.test_admin_login import login

AUTH = {"Authorization": f"Bearer {ADMIN_API_TOKEN}"}


@pytest.fixture()
def fresh(app: Flask) -> Flask:
    """The app with the default modes seeded and an empty audit log."""
    with app.app_context():
        seed_catalog(app.config["AI_ROUTER"])
        db.session.execute(AuditEntry.__table__.delete())
        db.session.commit()
    return app


@pytest.fixture()
def admin(client, fresh: Flask):
    """A logged-in admin browser session."""
    assert login(client).status_code == 302
    return client


def _csrf(client, path: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get(path).text)
    assert match, f"{path} has a CSRF token"
    return match.group(1)


def _entries(app: Flask, **where: object) -> list[AuditEntry]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEntry).filter_by(**where).order_by(AuditEntry.id))
        entries = list(rows)
        db.session.expunge_all()
        return entries


def _visible(page: str) -> str:
    """A page's visible text (tags dropped, entities decoded, spaces collapsed)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split()).replace(" : ", ": ")


def test_admin_ui_changes_are_recorded_with_the_admin_s_name(admin, fresh: Flask) -> None:
    """A form, a list action, a button and the settings page: each change names the admin."""
    with fresh.app_context():
        db.session.add_all([User(telegram_id=31), LLMModel(name="M", model="m", base_url="x")])
        db.session.commit()
        user_id = db.session.scalar(select(User.id))
        model_id = db.session.scalar(select(LLMModel.id))
    token = _csrf(admin, "/admin/mode/new/")
    form = {"csrf_token": token, "name": "Pirate", "system_prompt": "Arr.", "position": "5"}
    created = admin.post("/admin/mode/new/", data=form)
    assert created.status_code == 302, created.text
    admin.post("/admin/user/action/", data={"csrf_token": token, "action": "block",
                                            "rowid": [str(user_id)]})  # fmt: skip
    admin.post(f"/admin/llm_model/activate/{model_id}", data={"csrf_token": token})
    saved = admin.post(
        "/admin/settings/",
        data={"csrf_token": token, "telegram_bot_token": "42:SECRET", "registration": "approval",
              "default_model_id": str(model_id), "default_mode_id": "0", "webhook_url": ""},
    )  # fmt: skip
    assert saved.status_code == 302
    entries = _entries(fresh)
    assert {entry.actor for entry in entries} == {ADMIN_USERNAME}
    found = {(entry.kind, entry.label): entry.changes for entry in entries}
    assert found[("mode", "Pirate")]["system_prompt"] == [None, "Arr."]
    assert found[("user", "31")] == {"status": ["active", "blocked"]}
    assert found[("model", "M")] == {"is_default": [False, True]}
    assert found[("setting", "telegram_bot_token")] == {"value": "set"}
    assert found[("setting", "registration")] == {"value": [None, "approval"]}
    page = admin.get("/admin/audit/").text
    assert "42:SECRET" not in page and "42:SECRET" not in json.dumps(list(found.values()))
    assert audit.current_actor() is None, "the request's actor ends with the request"


def test_the_page_lists_newest_first_filters_and_shows_changes(admin, fresh: Flask) -> None:
    """Readable changes (old → new, secrets as «set»), filters by kind and actor, details."""
    with fresh.app_context():
        with audit.acting_as("alice"):
            user = create_user(77, username="ann")
            db.session.commit()
            update_user(user, {"status": UserStatus.BLOCKED, "note": "x" * 300})
            set_setting("telegram_bot_token", "77:TOKEN")
            db.session.commit()
        with audit.acting_as("bob"):
            set_setting("registration", "approval")
            db.session.commit()
        with audit.acting_as("<b>eve</b>"):
            create_user(78, username="<script>alert(1)</script>")
            db.session.commit()
    raw = admin.get("/admin/audit/").text
    assert "<script>alert(1)" not in raw and "<b>eve" not in raw, "names are escaped"
    page = _visible(raw)
    assert 'status: "active" → "blocked"' in page
    assert "value: set" in page and "77:TOKEN" not in page
    assert '"' + "x" * 300 not in page, "long values are cut in the list"
    assert page.index("registration") < page.index("telegram_bot_token") < page.index("@ann")
    settings_only = _visible(admin.get("/admin/audit/?flt0_kind_equals=setting").text)
    assert "telegram_bot_token" in settings_only and "@ann" not in settings_only
    bobs = _visible(admin.get("/admin/audit/?flt0_actor_equals=bob").text)
    assert "registration" in bobs and "telegram_bot_token" not in bobs
    since = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    later = _visible(admin.get(f"/admin/audit/?flt0_when_greater_than={since}").text)
    assert "registration" not in later
    note_entry = _entries(fresh, kind="user", action="update")[0]
    details = _visible(admin.get(f"/admin/audit/details/?id={note_entry.id}").text)
    assert '"' + "x" * 300 + '"' in details


def test_the_page_is_read_only(admin, fresh: Flask) -> None:
    """No create, edit or delete: a forged delete leaves the entry."""
    with fresh.app_context(), audit.acting_as("alice"):
        create_user(88)
        db.session.commit()
    (entry,) = _entries(fresh)
    token = _csrf(admin, "/admin/audit/")
    admin.post("/admin/audit/delete/", data={"csrf_token": token, "id": str(entry.id)})
    assert admin.get("/admin/audit/new/").status_code == 302
    assert admin.get(f"/admin/audit/edit/?id={entry.id}").status_code == 302
    assert len(_entries(fresh)) == 1


def test_api_changes_are_recorded_with_the_token_s_name(client, fresh: Flask) -> None:
    """An issued token is named by its id and name; ``ADMIN_API_TOKEN`` as such."""
    with fresh.app_context():
        row, token = issue_token("ci-bot")
        db.session.commit()
        token_id = row.id
    issued = {"Authorization": f"Bearer {token}"}
    assert client.post("/admin/api/users", json={"telegram_id": 111}, headers=issued).status_code
    response = client.patch("/admin/api/users/111", json={"status": "blocked"}, headers=AUTH)
    assert response.status_code == 200
    assert audit.current_actor() is None, "the request's actor ends with the request"
    created, blocked = _entries(fresh, kind="user")
    assert (created.actor, created.action, created.object_id) == (
        f"token #{token_id} ci-bot",
        "create",
        "111",
    )
    assert (blocked.actor, blocked.changes) == (
        "ADMIN_API_TOKEN",
        {"status": ["active", "blocked"]},
    )
    assert [e.actor for e in _entries(fresh, kind="api_token")] == [], "last_used_at is no change"


def test_secrets_never_appear_in_entries_or_answers(client, fresh: Flask) -> None:
    """Keys and the bot token: «set» in the log, and neither they nor their ciphertexts leave."""
    client.patch("/admin/api/settings", json={"telegram_bot_token": "9:BOT-SECRET"}, headers=AUTH)
    model = client.post(
        "/admin/api/models",
        json={"name": "GPT", "model": "m", "base_url": "http://127.0.0.1:9/v1",
              "api_key": "sk-api-secret-4242"},
        headers=AUTH,
    ).get_json()  # fmt: skip
    client.patch(f"/admin/api/models/{model['id']}", json={"api_key": None}, headers=AUTH)
    with fresh.app_context():
        token_ciphertext = db.session.get(Setting, "telegram_bot_token").value
    answer = client.get("/admin/api/audit", headers=AUTH)
    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    for secret in ("9:BOT-SECRET", "sk-api-secret", token_ciphertext):
        assert secret not in text
    items = answer.get_json()["items"]
    by_kind = {(item["kind"], item["action"]): item["changes"] for item in items}
    assert by_kind[("setting", "create")] == {"value": "set"}
    assert by_kind[("model", "create")]["api_key"] == "set"
    assert by_kind[("model", "update")] == {"api_key": "cleared", "api_key_last4": ["4242", None]}


def test_api_filters_and_pages(client, fresh: Flask) -> None:
    """kind, object_id, actor, since/until and paging; newest first; bad values are 400."""
    with fresh.app_context():
        with audit.acting_as("alice"):
            create_user(1)
            create_user(2)
            db.session.commit()
        with audit.acting_as("bob"):
            update_user(db.session.scalar(select(User).where(User.telegram_id == 2)), {"note": "n"})
            set_setting("streaming", "false")
            db.session.commit()
        long_ago = datetime.now(UTC) - timedelta(days=10)
        first = db.session.scalar(select(AuditEntry.id).order_by(AuditEntry.id))
        db.session.execute(update(AuditEntry).where(AuditEntry.id == first).values(at=long_ago))
        db.session.commit()

    def get(query: str = "") -> dict:
        response = client.get(f"/admin/api/audit{query}", headers=AUTH)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    everything = get()
    assert everything["total"] == 4
    assert [(i["kind"], i["object_id"]) for i in everything["items"]] == [
        ("setting", "streaming"), ("user", "2"), ("user", "2"), ("user", "1"),
    ]  # fmt: skip
    item = everything["items"][0]
    assert set(item) == {"id", "at", "actor", "action", "kind", "object_id", "label", "changes"}
    assert item["changes"] == {"value": [None, "false"]}
    assert get("?kind=user")["total"] == 3
    assert get("?kind=user&object_id=2")["total"] == 2
    assert [i["actor"] for i in get("?actor=bob")["items"]] == ["bob", "bob"]
    recent = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    assert get(f"?since={recent}")["total"] == 3
    assert get(f"?until={recent}")["total"] == 1
    page = get("?limit=1&offset=1")
    assert page["total"] == 4 and [i["object_id"] for i in page["items"]] == ["2"]
    assert get("?kind=")["total"] == 4, "an empty parameter counts as absent"
    for bad in ("?kind=payment", "?since=yesterday", "?limit=0", "?object_id=" + "9" * 65):
        response = client.get(f"/admin/api/audit{bad}", headers=AUTH)
        assert response.status_code == 400, bad
        assert response.get_json()["error"]["code"] == "validation_error"
    assert client.get("/admin/api/audit").status_code == 401
