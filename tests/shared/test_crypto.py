"""Rotating SECRET_KEY: former keys in SECRET_KEY_FALLBACKS, ``flask rotate-secrets``, sessions.

Every app here runs on the suite's database and Redis; the suite's own app is the deployment
before the rotation (its ``SECRET_KEY`` is the old key).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from shared.config import Config
from shared.db import db
from shared.models import LLMModel, Setting
from shared.services.catalog import set_api_key
from shared.services.crypto import SecretUnreadable, decrypt, encrypt, is_current
from shared.services.settings import get_setting, set_setting
from tests.support import app_env
from tests.web.test_admin_login import login
from web import create_app

NEW_KEY = "the-new-secret-key"

KeyedApp = Callable[..., Flask]


@pytest.fixture()
def old_key(app: Flask) -> str:
    """The suite app's SECRET_KEY: the key being rotated away from."""
    return app.config["SECRET_KEY"]


@pytest.fixture()
def keyed(app: Flask, tmp_root: Path, database_url: str, redis_url: str) -> Iterator[KeyedApp]:
    """Build web apps on the suite's database and Redis with another SECRET_KEY (and fallbacks).

    Yields:
        ``keyed(secret_key, fallbacks=None)`` → the app, configured through the environment.
    """
    built: list[Flask] = []

    def build(secret_key: str, fallbacks: str | None = None) -> Flask:
        extra = {"SECRET_KEY": secret_key}
        if fallbacks is not None:
            extra["SECRET_KEY_FALLBACKS"] = fallbacks
        config = Config.from_env(app_env(tmp_root, database_url, redis_url, **extra))
        other = create_app(config, {"TESTING": True})
        celery = app.extensions["celery"]
        celery.set_default()  # building an app made its Celery current; the suite's stays so
        celery.set_current()
        built.append(other)
        return other

    yield build
    for other in built:
        with other.app_context():
            db.engine.dispose()


def test_fallbacks_are_read_from_the_environment(tmp_path: Path) -> None:
    """Comma-separated, in order; blanks, repeats and the current key itself are dropped."""
    config = Config.from_env(
        {
            "INSTANCE_PATH": str(tmp_path),
            "SECRET_KEY": "new",
            "SECRET_KEY_FALLBACKS": " old , older,,new,old",
        }
    )
    assert config.secret_key_fallbacks == ("old", "older")
    assert Config.from_env({"INSTANCE_PATH": str(tmp_path)}).secret_key_fallbacks == ()


def test_a_value_under_a_former_key_is_read_through_the_fallback(
    app: Flask, keyed: KeyedApp, old_key: str
) -> None:
    """Readable with the old key in SECRET_KEY_FALLBACKS, unreadable without it.

    New values are encrypted with the new key, which alone reads them.
    """
    with app.app_context():
        token = encrypt("sk-old")
    rotating = keyed(NEW_KEY, f"unrelated, {old_key}")
    assert rotating.config["SECRET_KEY_FALLBACKS"] == ["unrelated", old_key]
    with rotating.app_context():
        assert decrypt(token) == "sk-old"
        assert not is_current(token)
        fresh = encrypt("sk-new")
        assert is_current(fresh)
    with keyed(NEW_KEY).app_context():
        with pytest.raises(SecretUnreadable, match="SECRET_KEY_FALLBACKS"):
            decrypt(token)
        assert decrypt(fresh) == "sk-new"


def _store_secrets() -> int:
    """Store the bot token and two models (one with a key) under the current app's key.

    Returns:
        The id of the model with a key.
    """
    set_setting("telegram_bot_token", "123:BOT-TOKEN")
    keyed_model = LLMModel(name="keyed", model="m", base_url="http://x/v1")
    set_api_key(keyed_model, "sk-model-key-1234")
    db.session.add_all([keyed_model, LLMModel(name="keyless", model="m", base_url="http://x/v1")])
    db.session.commit()
    return keyed_model.id


def test_rotate_secrets_lets_the_fallback_go(app: Flask, keyed: KeyedApp, old_key: str) -> None:
    """``flask rotate-secrets`` re-encrypts every secret; then the new key alone reads them.

    Run again, it changes nothing.
    """
    with app.app_context():
        model_id = _store_secrets()
    rotating = keyed(NEW_KEY, old_key)

    first = rotating.test_cli_runner().invoke(args=["rotate-secrets"])
    assert first.exit_code == 0, first.output
    assert "re-encrypted 2 stored secret(s)" in first.stdout and "0 already current" in first.stdout
    assert "setting telegram_bot_token" in first.stdout
    assert f"model {model_id} (keyed)" in first.stdout
    assert "BOT-TOKEN" not in first.output and "sk-model" not in first.output

    again = rotating.test_cli_runner().invoke(args=["rotate-secrets"])
    assert again.exit_code == 0, again.output
    assert "re-encrypted 0 stored secret(s)" in again.stdout and "2 already current" in again.stdout

    with keyed(NEW_KEY).app_context():  # the fallback is gone
        assert get_setting("telegram_bot_token") == "123:BOT-TOKEN"
        assert decrypt(db.session.get(LLMModel, model_id).api_key_encrypted) == "sk-model-key-1234"
    with app.app_context():  # the old key alone no longer reads them
        with pytest.raises(SecretUnreadable):
            get_setting("telegram_bot_token")


def test_rotate_secrets_reports_what_no_key_can_read(
    app: Flask, keyed: KeyedApp, old_key: str
) -> None:
    """A value no configured key can read is named and left as it is; the exit code is 1.

    The readable ones are rotated all the same.
    """
    with keyed("a-key-that-was-lost").app_context():
        set_setting("webhook_secret", "hook-secret")
        db.session.commit()
    with app.app_context():
        _store_secrets()
        lost = db.session.scalar(select(Setting.value).where(Setting.key == "webhook_secret"))
    rotating = keyed(NEW_KEY, old_key)

    result = rotating.test_cli_runner().invoke(args=["rotate-secrets"])
    assert result.exit_code == 1
    assert "re-encrypted 2 stored secret(s)" in result.stdout
    assert "cannot read: setting webhook_secret" in result.stderr
    with rotating.app_context():
        raw = db.session.scalar(select(Setting.value).where(Setting.key == "webhook_secret"))
        assert raw == lost
        assert get_setting("telegram_bot_token") == "123:BOT-TOKEN"


def test_an_admin_session_survives_the_rotation(
    client, keyed: KeyedApp, old_key: str, app: Flask
) -> None:
    """A session cookie signed with the old key still logs the admin in (forms work too).

    Without the old key in the fallbacks the same cookie is refused.
    """
    assert login(client).status_code == 302
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = client.get_cookie(name).value

    stranger = keyed(NEW_KEY).test_client()
    stranger.set_cookie(name, cookie)
    assert stranger.get("/admin/").status_code == 302

    rotating = keyed(NEW_KEY, old_key).test_client()
    rotating.set_cookie(name, cookie)
    page = rotating.get("/admin/")
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert rotating.post("/admin/logout/", data={"csrf_token": token}).status_code == 302
    assert rotating.get("/admin/").status_code == 302
