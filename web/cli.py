"""Flask CLI commands of ai_router (``flask init``, ``flask rotate-secrets``)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import click
from flask import current_app
from flask.cli import with_appcontext

from shared.db import db
from shared.services import audit
from shared.services.bootstrap import announce_admin_password, initialize
from shared.services.secret_rotation import rotate_secrets

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def audited_as_cli(command: F) -> F:
    """Run a command's body as the ``cli`` actor: its changes go to the audit log as such.

    Args:
        command: The command's function (decorate it below ``@click.command``).

    Returns:
        The wrapped function.
    """

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        with audit.acting_as(audit.CLI):
            return command(*args, **kwargs)

    return run  # type: ignore[return-value]


@click.command("init")
@audited_as_cli
def init_command() -> None:
    """Migrate the database and create the first admin account (idempotent)."""
    password = initialize(current_app._get_current_object())
    if password:
        config = current_app.config["AI_ROUTER"]
        # Shown on the terminal, never logged: log lines must not carry secrets.
        click.echo(announce_admin_password(config.admin_username, password), err=True)
    logger.info("database is up to date")


@click.command("rotate-secrets")
@with_appcontext
@audited_as_cli
def rotate_secrets_command() -> None:
    """Re-encrypt every stored secret with the current SECRET_KEY (idempotent).

    Run it once every process has the new ``SECRET_KEY`` and the old one in
    ``SECRET_KEY_FALLBACKS``; afterwards the fallback can be removed. Exits with 1 when some
    value no configured key can read (left as it is: enter it again in the admin).
    """
    report = rotate_secrets()
    db.session.commit()
    click.echo(
        f"re-encrypted {len(report.rotated)} stored secret(s) with the current SECRET_KEY; "
        f"{report.current} already current"
    )
    for label in report.rotated:
        click.echo(f"  re-encrypted: {label}")
    if report.unreadable:
        for label in report.unreadable:
            click.echo(f"  cannot read: {label} (no configured key made it)", err=True)
        raise click.exceptions.Exit(1)
