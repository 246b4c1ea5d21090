"""Handlers called directly: a message in, database changes and queued replies out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from telebot.types import CallbackQuery, Message

from bot.handlers import commands, dialog, settings
from bot.middleware import Outbox
from shared.db import db
from shared.models import Dialog, Mode, User, UserStatus
from shared.services.catalog import seed_catalog
from shared.services.dialogs import next_number
from shared.services.users import touch_user
from shared.telegram.keyboards import MODE

SENDER = {"id": 42, "is_bot": False, "first_name": "Ann", "language_code": "en"}


def _message(text: str) -> Message:
    return Message.de_json(
        {"message_id": 7, "date": 0, "chat": {"id": 42, "type": "private"}, "from": SENDER,
         "text": text}
    )  # fmt: skip


def _query(data: str) -> CallbackQuery:
    return CallbackQuery.de_json(
        {"id": "q1", "from": SENDER, "chat_instance": "c", "data": data,
         "message": {"message_id": 9, "date": 0, "chat": {"id": 42, "type": "private"},
                     "text": "settings"}}
    )  # fmt: skip


@pytest.fixture()
def user(app: Flask) -> Iterator[User]:
    """A registered user inside an app context with the seeded modes."""
    with app.app_context():
        seed_catalog(app.config["AI_ROUTER"])
        user = touch_user(SENDER)
        db.session.commit()
        yield user


def test_start_greets_by_status(user: User) -> None:
    """An active user is greeted; a pending one is told to wait."""
    out = Outbox()
    commands.start(_message("/start"), user, "en", out)
    user.status = UserStatus.PENDING
    commands.start(_message("/start"), user, "en", out)
    texts = [args[1] for _, args, _ in out.actions]
    assert texts[0].startswith("Hello, Ann!") and "administrator" in texts[1]


def test_new_command_ends_the_dialog(user: User) -> None:
    """``/new`` closes the open dialog and says so."""
    opened, _ = next_number(user.id, user.mode_id)
    out = Outbox()
    dialog.new_command(_message("/new"), user, "en", out)
    db.session.expire_all()
    assert db.session.get(Dialog, opened).ended_at is not None
    assert out.actions == [("send_message", (42, "A new dialog has started. The previous "
                                             "context is forgotten."), {})]  # fmt: skip


def test_mode_button_switches_and_refreshes(user: User) -> None:
    """A mode button sets the mode, toasts its name and edits the settings message."""
    db.session.commit()
    mode = db.session.query(Mode).order_by(Mode.position.desc()).first()
    out = Outbox()
    settings.switch_mode(_query(MODE.new(id=mode.id)), user, "en", out)
    assert user.mode_id == mode.id
    methods = [method for method, _, _ in out.actions]
    assert methods == ["answer_callback_query", "edit_message_text"]
    assert out.actions[0][1] == ("q1", f"Mode: {mode.name}")


def test_pressing_the_mode_in_effect_sends_no_edit(user: User) -> None:
    """The settings message already shows the choice: a toast, and no no-op edit."""
    db.session.commit()
    mode = db.session.query(Mode).order_by(Mode.position.desc()).first()
    settings.switch_mode(_query(MODE.new(id=mode.id)), user, "en", Outbox())
    text, keyboard = settings.render(user, "en")
    query = CallbackQuery.de_json(
        {"id": "q2", "from": SENDER, "chat_instance": "c", "data": MODE.new(id=mode.id),
         "message": {"message_id": 9, "date": 1, "chat": {"id": 42, "type": "private"},
                     "text": text, "reply_markup": keyboard.to_dict()}}
    )  # fmt: skip
    out = Outbox()
    settings.switch_mode(query, user, "en", out)
    assert [method for method, _, _ in out.actions] == ["answer_callback_query"]


def test_unknown_mode_button_is_refused(user: User) -> None:
    """A button for a mode that no longer exists changes nothing."""
    out = Outbox()
    settings.switch_mode(_query(MODE.new(id=99999)), user, "en", out)
    assert user.mode_id is None
    assert out.actions == [("answer_callback_query", ("q1", "This option is not available"), {})]
