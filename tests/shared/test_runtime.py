"""Hot settings: every process sees an admin's change within about a second, from memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from shared.app import create_core_app
from shared.db import db
from shared.extensions import runtime
from shared.models import LLMModel, Mode
from shared.runtime import VERSION_KEY
from shared.services.catalog import make_default, seed_catalog
from shared.services.settings import set_setting
from tests.support import wait_until


@pytest.fixture()
def other(app: Flask) -> Iterator[Flask]:
    """A second core app on the same database and Redis: another process, as far as state goes."""
    second = create_core_app(app.config["AI_ROUTER"])
    celery = app.extensions["celery"]  # building an app made its Celery app the current one
    celery.set_default()
    celery.set_current()
    yield second
    with second.app_context():
        db.engine.dispose()


def _token(flask_app: Flask) -> str | None:
    with flask_app.app_context():
        return runtime.get().token


def test_a_change_in_one_process_reaches_another(app: Flask, other: Flask) -> None:
    """The other app keeps its snapshot in memory and reloads after the version moves."""
    assert _token(other) is None
    with app.app_context():
        set_setting("telegram_bot_token", "123:first-token-aaaaaaaaaaaaaaaaaaaa")
        db.session.commit()
        assert runtime.get().token.startswith("123:first")  # the writer sees it at once
    assert wait_until(lambda: _token(other), timeout=5, what="the change to arrive")
    with other.app_context():
        before = runtime.get()
        assert runtime.get() is before, "an unchanged snapshot is served from memory"


def test_only_committed_changes_move_the_version(app: Flask) -> None:
    """A rolled back write announces nothing; a bulk default switch announces once."""
    redis = app.extensions["redis"]
    with app.app_context():
        seed_catalog(app.config["AI_ROUTER"])
        db.session.commit()
        start = int(redis.get(VERSION_KEY) or 0)
        set_setting("registration", "approval")
        db.session.rollback()
        assert int(redis.get(VERSION_KEY) or 0) == start
        modes = db.session.query(Mode).order_by(Mode.id).all()
        make_default(modes[-1])
        db.session.commit()
        assert int(redis.get(VERSION_KEY)) == start + 1
        assert runtime.get().default_mode_id == modes[-1].id


def test_disabled_models_are_not_offered(app: Flask) -> None:
    """Only enabled models are in the snapshot; the active one falls back to an enabled one."""
    with app.app_context():
        on = LLMModel(name="On", model="m", base_url="http://127.0.0.1:9/v1", enabled=True)
        off = LLMModel(name="Off", model="m", base_url="http://127.0.0.1:9/v1", enabled=False)
        db.session.add_all([on, off])
        make_default(off)
        db.session.commit()
        snapshot = runtime.get()
        assert list(snapshot.models) == [on.id]
        assert snapshot.model(None).id == on.id and snapshot.model(off.id).id == on.id
