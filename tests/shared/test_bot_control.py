"""Bot start/stop (``shared.services.bot_control.control``): the rules behind both surfaces."""

from __future__ import annotations

import pytest
from flask import Flask

from shared.db import db
from shared.services import bot_control
from shared.services.settings import set_setting


@pytest.fixture()
def ctx(app: Flask):
    """An app context on the real database and Redis; changes are rolled back."""
    with app.app_context():
        yield
        db.session.rollback()


def _desired() -> str:
    return bot_control.get_desired()["mode"]


def test_starting_needs_a_bot_token(ctx) -> None:
    """Without a token neither start works and nothing is stored; stop always works."""
    for action in ("polling", "webhook"):
        with pytest.raises(bot_control.BotControlError, match="bot token"):
            bot_control.control(action)
    assert _desired() == "stopped"
    assert bot_control.control("stop")["mode"] == "stopped"


def test_actions_map_to_modes_and_switch_over(ctx) -> None:
    """Each action sets its mode; webhook also needs a URL, and starting switches over."""
    set_setting("telegram_bot_token", "1:TOKEN")
    assert bot_control.control("polling")["mode"] == "polling"
    with pytest.raises(bot_control.BotControlError, match="webhook URL"):
        bot_control.control("webhook")
    assert _desired() == "polling", "a refused start keeps the running mode"
    set_setting("webhook_url", "https://bot.example.com/telegram/webhook")
    assert bot_control.control("webhook")["mode"] == "webhook"
    assert _desired() == "webhook"
    assert bot_control.control("stop")["mode"] == "stopped"
    assert _desired() == "stopped"


@pytest.mark.parametrize("action", ["stopped", "turbo", ""])
def test_unknown_actions_are_refused(ctx, action: str) -> None:
    """Only the three buttons exist (``stopped`` is a mode, not an action)."""
    set_setting("telegram_bot_token", "1:TOKEN")
    with pytest.raises(bot_control.BotControlError, match="action"):
        bot_control.control(action)
    assert _desired() == "stopped"
