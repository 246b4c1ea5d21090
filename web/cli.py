"""Flask CLI commands of ai_router (``flask init``)."""

from __future__ import annotations

import logging

import click
from flask import current_app

from shared.services.bootstrap import announce_admin_password, initialize

logger = logging.getLogger(__name__)


@click.command("init")
def init_command() -> None:
    """Migrate the database and create the first admin account (idempotent)."""
    password = initialize(current_app._get_current_object())
    if password:
        config = current_app.config["AI_ROUTER"]
        # Shown on the terminal, never logged: log lines must not carry secrets.
        click.echo(announce_admin_password(config.admin_username, password), err=True)
    logger.info("database is up to date")
