"""The audit log's capture: what an actor changes is recorded once, secrets never, the bot never."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import inspect, select
from werkzeug.security import generate_password_hash

from shared.celery_setup import enqueue_update
from shared.db import db
from shared.models import (
    AdminUser,
    ApiToken,
    AuditAction,
    AuditEntry,
    LLMModel,
    Mode,
    Plan,
    User,
    UserStatus,
)
from shared.services import audit
from shared.services.api_tokens import issue_token, revoke_token
from shared.services.bootstrap import initialize
from shared.services.catalog import make_default, save_mode, save_model, seed_catalog, set_api_key
from shared.services.configuration import update_settings
from shared.services.plans import save_plan
from shared.services.settings import set_setting
from shared.services.users import choose_mode, create_user, register_sender, update_user
from tests.fakes.llm import LLMock
from tests.fakes.telegram import FakeTelegram
from tests.shared.support import count_queries
from tests.test_deploy_files import _python

ALICE = "alice"


@pytest.fixture()
def ctx(app: Flask) -> Iterator[None]:
    """An app context on an empty audit log (the session's bootstrap may have written some)."""
    with app.app_context():
        db.session.execute(AuditEntry.__table__.delete())
        db.session.commit()
        yield
        db.session.rollback()


def _entries(**where: object) -> list[AuditEntry]:
    """The committed entries, oldest first (read afresh)."""
    db.session.expire_all()
    query = select(AuditEntry).filter_by(**where).order_by(AuditEntry.id)
    return list(db.session.scalars(query))


def _model(name: str = "GPT", **values: object) -> LLMModel:
    return save_model(
        LLMModel(enabled=True, is_default=False),
        {"name": name, "model": "gpt-x", "base_url": "http://127.0.0.1:9/v1", **values},
    )


def test_every_column_is_classified() -> None:
    """Each column of an audited class is a field, a secret or ignored — exactly one of them."""
    for cls, watched in audit.WATCHED.items():
        columns = {prop.key for prop in inspect(cls).column_attrs}
        groups = [set(watched.fields), set(watched.secrets), set(watched.ignored)]
        assert set().union(*groups) == columns, cls.__name__
        assert sum(len(group) for group in groups) == len(columns), cls.__name__


def test_nothing_is_recorded_without_an_actor(ctx) -> None:
    """No actor: changes to every audited kind write no entry and send no audit statement."""
    with count_queries() as statements:
        user = create_user(5, username="ann")
        update_user(user, {"status": UserStatus.BLOCKED, "note": "x"})
        _model(api_key="sk-none-1234")
        set_setting("telegram_bot_token", "1:NOACTOR")
        issue_token("ci")
        db.session.commit()
    assert statements and not [s for s in statements if "audit_entries" in s]
    assert _entries() == []


def test_an_actor_s_changes_are_recorded_with_old_and_new(ctx) -> None:
    """Create, then change a user: two entries with the actor, the Telegram id and the values."""
    with audit.acting_as(ALICE):
        user = create_user(111, username="ann", first_name="Ann")
        db.session.commit()
        update_user(user, {"status": UserStatus.BLOCKED, "daily_request_limit": 5, "note": "spam"})
        db.session.commit()
    created, changed = _entries()
    assert (created.actor, created.action, created.kind) == (ALICE, AuditAction.CREATE, "user")
    assert created.object_id == "111" and created.label == "@ann (111)"
    assert created.changes == {
        "telegram_id": [None, 111],
        "username": [None, "ann"],
        "first_name": [None, "Ann"],
        "status": [None, "active"],
    }
    assert changed.action == AuditAction.UPDATE
    assert changed.changes == {
        "status": ["active", "blocked"],
        "daily_request_limit": [None, 5],
        "note": [None, "spam"],
    }
    assert created.at.tzinfo is not None and changed.at >= created.at


def test_secrets_are_recorded_only_as_set_cleared_or_re_encrypted(ctx) -> None:
    """Keys, the bot token, token and password hashes: only that they changed, never a value."""
    with audit.acting_as(ALICE):
        model = _model(api_key="sk-secret-9876")
        set_setting("telegram_bot_token", "42:SECRET")
        db.session.commit()
        set_setting("telegram_bot_token", "42:SECRET")  # same token again: a new ciphertext
        set_setting("registration", "approval")
        db.session.commit()
        set_setting("telegram_bot_token", None)
        set_api_key(model, "sk-other-1111")
        _, plaintext = issue_token("ci")
        admin = AdminUser(username="bob", password_hash=generate_password_hash("pw-bob-secret"))
        db.session.add(admin)
        db.session.commit()
        admin.password_hash = generate_password_hash("pw-bob-new")
        db.session.commit()
    stored = [
        db.session.get(LLMModel, model.id).api_key_encrypted,
        db.session.scalar(select(ApiToken.token_hash)),
        db.session.get(AdminUser, admin.id).password_hash,
    ]
    everything = json.dumps([[e.label, e.changes] for e in _entries()], ensure_ascii=False)
    for secret in ("sk-secret", "sk-other", "42:SECRET", plaintext, "pw-bob", *stored):
        assert secret not in everything
    assert "1111" not in _entries(kind="model")[0].changes.get("api_key", "")
    token_entries = [
        e.changes["value"] for e in _entries(kind="setting", object_id="telegram_bot_token")
    ]
    assert token_entries == ["set", "re-encrypted", "cleared"]
    assert _entries(kind="setting", object_id="registration")[0].changes == {
        "value": [None, "approval"]
    }
    model_entries = _entries(kind="model")
    assert model_entries[0].changes["api_key"] == "set"
    assert model_entries[0].changes["api_key_last4"] == [None, "9876"]
    assert model_entries[1].changes == {"api_key": "set", "api_key_last4": ["9876", "1111"]}
    assert _entries(kind="api_token")[0].changes["token"] == "set"
    assert [e.changes.get("password") for e in _entries(kind="admin")] == ["set", "set"]


def test_one_transaction_makes_one_entry_per_object(ctx) -> None:
    """A save that flushes twice is one entry; the default it takes away is recorded too."""
    with audit.acting_as(ALICE):
        first = _model("First", is_default=True)
        db.session.commit()
        second = _model("Second", is_default=True, input_price_per_1m=0.15)
        db.session.commit()
    entries = _entries()
    assert [(e.object_id, e.action) for e in entries] == [
        (str(first.id), AuditAction.CREATE),
        (str(second.id), AuditAction.CREATE),
        (str(first.id), AuditAction.UPDATE),
    ]
    assert entries[0].changes["is_default"] == [None, True]
    assert entries[1].changes["is_default"] == [None, True]
    assert entries[1].changes["input_price_per_1m"] == [None, 0.15]
    assert entries[2].changes == {"is_default": [True, False]}
    assert entries[2].label == "First"


def test_bulk_statements_are_recorded_row_by_row(ctx) -> None:
    """Clearing the default model through settings (an UPDATE … WHERE) names the row it cleared."""
    model = _model("Active")
    make_default(model)
    db.session.commit()
    with audit.acting_as(ALICE):
        update_settings({"default_model_id": None})
        db.session.commit()
    (entry,) = _entries()
    assert (entry.kind, entry.object_id, entry.label) == ("model", str(model.id), "Active")
    assert entry.changes == {"is_default": [True, False]}


def test_old_values_are_read_when_memory_lacks_them(ctx) -> None:
    """A change to an expired object (after a commit) still records the stored old value."""
    user = create_user(7, note="before")
    db.session.commit()  # expires every loaded attribute
    with audit.acting_as(ALICE):
        user.note = "after"
        user.status = UserStatus.PENDING
        db.session.commit()
    (entry,) = _entries()
    assert entry.changes == {"note": ["before", "after"], "status": ["active", "pending"]}


def test_deletions_keep_the_last_values(ctx) -> None:
    """A deleted mode's entry keeps what it was; one created and deleted at once leaves none."""
    mode = save_mode(Mode(), {"name": "Pirate", "system_prompt": "Arr."})
    db.session.commit()
    with audit.acting_as(ALICE):
        db.session.delete(mode)
        db.session.commit()
        brief = save_mode(Mode(), {"name": "Brief"})
        db.session.delete(brief)
        db.session.commit()
    (entry,) = _entries()
    assert (entry.action, entry.label) == (AuditAction.DELETE, "Pirate")
    assert entry.changes["name"] == ["Pirate", None]
    assert entry.changes["system_prompt"] == ["Arr.", None]


def test_a_rolled_back_change_leaves_no_entry(ctx) -> None:
    """The entry is in the change's transaction: a rollback takes both away."""
    with audit.acting_as(ALICE):
        create_user(9)
        db.session.flush()
        db.session.rollback()
        create_user(10)
        db.session.commit()
    assert [e.object_id for e in _entries()] == ["10"]


def test_activity_is_not_audited_even_under_an_actor(ctx) -> None:
    """The bot's writes (profile, last seen, reachable) are never admin changes."""
    user = create_user(12)
    db.session.commit()
    with audit.acting_as(ALICE):
        register_sender({"id": 12, "first_name": "Zed", "language_code": "en"})
        user = db.session.get(User, user.id, populate_existing=True)
        user.last_seen_at = user.created_at
        user.reachable = False
        db.session.commit()
    assert _entries() == []


def test_tokens_revoked_and_settings_cleared(ctx) -> None:
    """Revoking a token is a change of ``revoked_at``; its last use is not."""
    row, _ = issue_token("ci")
    db.session.commit()
    with audit.acting_as(ALICE):
        row.last_used_at = row.created_at
        db.session.commit()
        revoke_token(row.id)
        db.session.commit()
    (entry,) = _entries()
    assert entry.label.startswith("ci (air_") and set(entry.changes) == {"revoked_at"}
    assert entry.changes["revoked_at"][0] is None


def test_the_actor_is_scoped(ctx) -> None:
    """``acting_as`` restores the previous actor; nothing leaks out of the block."""
    assert audit.current_actor() is None
    with audit.acting_as(ALICE):
        with audit.acting_as(audit.CLI):
            assert audit.current_actor() == audit.CLI
        assert audit.current_actor() == ALICE
    assert audit.current_actor() is None


def test_bootstrap_acts_as_system_unless_someone_acts(app: Flask, ctx) -> None:
    """First-start seeding is the system's; ``flask init`` (the CLI) records as ``cli``."""
    initialize(app)
    assert {e.actor for e in _entries()} == {audit.SYSTEM}
    assert {e.label for e in _entries(kind="mode")} == {"Краткий ответ", "Развёрнутый ответ"}
    db.session.execute(Mode.__table__.delete())
    db.session.execute(AuditEntry.__table__.delete())
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    assert {(e.actor, e.kind) for e in _entries()} == {(audit.CLI, "mode")}
    assert audit.current_actor() is None


def test_a_user_writing_to_the_bot_adds_no_entries(
    app: Flask, celery_worker, telegram: FakeTelegram, llm_server: str
) -> None:
    """A question answered and a mode chosen through the real worker record nothing.

    The test thread acts as an admin meanwhile: the worker's threads never inherit the actor.
    """
    with app.app_context():
        db.session.execute(AuditEntry.__table__.delete())
        seed_catalog(app.config["AI_ROUTER"])
        set_setting("telegram_bot_token", telegram.token)
        model = LLMModel(name="Mock", model="gpt-mock", base_url=llm_server, enabled=True)
        set_api_key(model, "sk-test-key-1234")
        make_default(model)
        db.session.commit()
    LLMock(llm_server).reset()
    chat = 5150
    with audit.acting_as(ALICE):
        enqueue_update(app, telegram.inject_message(chat, "/settings"))
        (settings,) = telegram.wait_for_calls(
            "sendMessage", 1, lambda c: str(c.params.get("chat_id")) == str(chat), timeout=30
        )
        buttons = [b for row in settings.params["reply_markup"]["inline_keyboard"] for b in row]
        detailed = next(b for b in buttons if "Развёрнутый ответ" in b["text"])
        press = telegram.press_button(
            chat, settings.result["message_id"], detailed["callback_data"]
        )
        enqueue_update(app, press)
        telegram.wait_for_calls("editMessageText", 1, timeout=30)
        enqueue_update(app, telegram.inject_message(chat, "hello"))
        telegram.wait_for_calls(
            "sendMessage", 2, lambda c: str(c.params.get("chat_id")) == str(chat), timeout=30
        )
    with app.app_context():
        user = db.session.scalar(select(User).where(User.telegram_id == chat))
        assert user.last_seen_at is not None and user.mode.name == "Развёрнутый ответ"
        assert db.session.scalars(select(AuditEntry)).all() == []


def test_choosing_a_mode_in_the_bot_is_not_recorded(app: Flask, ctx) -> None:
    """The handler's ORM change of ``mode_id`` with no actor: no entry, no audit statement."""
    seed_catalog(app.config["AI_ROUTER"])
    user = create_user(13)
    mode = db.session.scalar(select(Mode).order_by(Mode.position.desc()))
    db.session.commit()
    with count_queries() as statements:
        choose_mode(user, mode.id)
        db.session.commit()
    assert not [s for s in statements if "audit_entries" in s]
    assert _entries() == []


def test_the_worker_and_the_listener_have_no_audit_listeners(tmp_path: Path) -> None:
    """Processes that build only the core app never register the audit log's session events."""
    code = (
        "import celery_app, bot.listener; from sqlalchemy import event; "
        "from sqlalchemy.orm import Session; from shared.services import audit; "
        "print([event.contains(Session, name, fn) for name, fn in ("
        "('before_flush', audit._before_flush), ('after_flush', audit._after_flush), "
        "('do_orm_execute', audit._bulk))])"
    )
    result = _python(code, tmp_path / "instance", SECRET_KEY="x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[False, False, False]"


def test_a_plans_models_are_recorded_as_ids(ctx) -> None:
    """The models a plan allows (a many-to-many) are recorded as ``model_ids`` lists."""
    first, second = _model("First"), _model("Second")
    db.session.commit()
    with audit.acting_as(ALICE):
        plan = save_plan(Plan(name="Team"), {"model_ids": [first.id], "period_days": 30})
        db.session.commit()
        save_plan(plan, {"model_ids": [first.id, second.id]})
        db.session.commit()
        save_plan(plan, {"model_ids": [first.id, second.id]})  # the same list: no entry
        db.session.commit()
        db.session.delete(plan)
        db.session.commit()
    created, changed, deleted = _entries(kind="plan")
    assert created.changes["model_ids"] == [None, [first.id]]
    assert changed.changes == {"model_ids": [[first.id], [first.id, second.id]]}
    assert deleted.action == AuditAction.DELETE
    assert deleted.changes["model_ids"] == [[first.id, second.id], None]
