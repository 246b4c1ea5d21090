"""Migrations keep the data: a filled database survives upgrade, downgrade and upgrade again.

SQLite rebuilds a table for most ALTERs (Alembic's batch mode: copy, DROP, rename); with
foreign keys enforced, that DROP would fire the ON DELETE actions of every table pointing at
it — a plan's models, users' model choices, a dialog's requests. ``migrations/env.py`` turns
them off for the migration; this test fails if any revision loses rows, on SQLite and (with
``TEST_DATABASE_URL``) on PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from shared.config import Config
from shared.migrations import MIGRATIONS_DIRECTORY, enable
from tests.support import app_env, postgres_schema
from web import create_app

#: The log as ``requests``: the oldest revision whose data this test builds on.
FIRST = "1f5f95cd4bd9"
#: Plans and their models.
PLANS = "65555edf5e77"
MIGRATIONS = str(MIGRATIONS_DIRECTORY)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind (PostgreSQL: a schema of its own, when available)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        pytest.skip("PostgreSQL: set TEST_DATABASE_URL (CI does)")
    with postgres_schema(base, "mig") as url:
        yield url


def _app(tmp_path: Path, url: str, redis_url: str) -> Flask:
    return create_app(Config.from_env(app_env(tmp_path, url, redis_url)), {"TESTING": True})


def _fill(conn) -> None:
    """A model with a fallback, a user who chose it, a plan limited to it, a logged dialog."""
    now = "2026-12-01 10:00:00+00:00"
    conn.execute(
        text(
            "INSERT INTO llm_models (id, name, model, base_url, enabled, is_default, "
            "input_price_per_1m, output_price_per_1m, created_at, updated_at) VALUES "
            "(1, 'A', 'a', 'http://x', true, true, 0, 0, :t, :t), "
            "(2, 'B', 'b', 'http://x', true, false, 0, 0, :t, :t)"
        ),
        {"t": now},
    )
    conn.execute(text("UPDATE llm_models SET fallback_model_id = 2 WHERE id = 1"))
    conn.execute(
        text(
            "INSERT INTO users (id, telegram_id, status, model_id, created_at) "
            "VALUES (1, 42, 'active', 1, :t)"
        ),
        {"t": now},
    )
    conn.execute(
        text(
            "INSERT INTO dialogs (id, user_id, started_at, last_message_number) "
            "VALUES (1, 1, :t, 1)"
        ),
        {"t": now},
    )
    conn.execute(
        text(
            "INSERT INTO requests (id, dialog_id, number, user_id, update_id, chat_id, "
            "request_text, request_at, status, delivered_parts) "
            "VALUES (1, 1, 1, 1, 100, 42, 'hi', :t, 'ok', 1)"
        ),
        {"t": now},
    )


def _counts(conn) -> dict[str, object]:
    return {
        "requests": conn.execute(text("SELECT count(*) FROM requests")).scalar(),
        "dialogs": conn.execute(text("SELECT count(*) FROM dialogs")).scalar(),
        "user_model": conn.execute(text("SELECT model_id FROM users WHERE id = 1")).scalar(),
        "fallback": conn.execute(
            text("SELECT fallback_model_id FROM llm_models WHERE id = 1")
        ).scalar(),
    }


def test_upgrade_downgrade_upgrade_keeps_every_row(
    empty_database: str, tmp_path: Path, redis_url: str
) -> None:
    """Rows written before plans survive every later revision, down and up again."""
    app = _app(tmp_path, empty_database, redis_url)
    enable(app)
    with app.app_context():
        from shared.db import db

        upgrade(directory=MIGRATIONS, revision=FIRST)
        with db.engine.begin() as conn:
            _fill(conn)
        upgrade(directory=MIGRATIONS, revision=PLANS)
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO plans (id, name, description, is_default, period_days, "
                    "created_at) VALUES (7, 'Pro', '', false, 30, '2026-12-01 10:00:00+00:00')"
                )
            )
            conn.execute(text("INSERT INTO plan_models (plan_id, model_id) VALUES (7, 1)"))
            assert _counts(conn) == {"requests": 1, "dialogs": 1, "user_model": 1, "fallback": 2}
        plans_with_models = 1
        upgrade(directory=MIGRATIONS)
        with db.engine.begin() as conn:
            assert _counts(conn) == {"requests": 1, "dialogs": 1, "user_model": 1, "fallback": 2}
            kept = conn.execute(text("SELECT count(*) FROM plan_models")).scalar()
            assert kept == plans_with_models
        downgrade(directory=MIGRATIONS, revision="-1")
        with db.engine.begin() as conn:
            assert _counts(conn) == {"requests": 1, "dialogs": 1, "user_model": 1, "fallback": 2}
        upgrade(directory=MIGRATIONS)
        with db.engine.begin() as conn:
            assert _counts(conn) == {"requests": 1, "dialogs": 1, "user_model": 1, "fallback": 2}
            kept = conn.execute(text("SELECT count(*) FROM plan_models")).scalar()
            assert kept == plans_with_models
        db.engine.dispose()
