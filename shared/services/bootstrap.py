"""First-start and every-start preparation: migrate the database, create what must exist."""

from __future__ import annotations

import logging

from flask import Flask

from shared import migrations
from shared.config import Config
from shared.db import db
from shared.services import audit
from shared.services.admins import ensure_first_admin
from shared.services.catalog import seed_catalog
from shared.services.plans import seed_plans
from shared.services.settings import get_int_setting, is_set, set_setting

logger = logging.getLogger(__name__)


def initialize(app: Flask) -> str | None:
    """Apply all migrations, then create what must exist: first admin, modes, plans, settings.

    Safe to run on every start and from several processes in turn: each step is idempotent.
    What it creates is in the audit log as the current actor's (``cli`` for ``flask init``),
    else as ``system``'s.

    Args:
        app: The Flask app whose database is prepared.

    Returns:
        The admin password when one was generated (the caller shows it once), else None.
    """
    config: Config = app.config["AI_ROUTER"]
    with app.app_context(), audit.acting_as(audit.current_actor() or audit.SYSTEM):
        from flask_migrate import upgrade  # noqa: PLC0415 - Alembic only where migrations run

        upgrade(directory=migrations.enable(app))
        password = ensure_first_admin(config.admin_username, config.admin_password)
        seed_catalog(config)
        seed_plans(get_int_setting("default_daily_limit"))
        if config.telegram_bot_token and not is_set("telegram_bot_token"):
            set_setting("telegram_bot_token", config.telegram_bot_token)
        db.session.commit()
    return password


def announce_admin_password(username: str, password: str) -> str:
    """Format the one-time notice of a generated admin password for the terminal.

    Args:
        username: The admin account's name.
        password: The generated password.

    Returns:
        The text to show once (it must not go to a log).
    """
    return (
        f"\n  First admin account created: username={username} password={password}\n"
        "  This password is shown only once; change it in the admin.\n"
    )
