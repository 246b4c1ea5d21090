"""Flask-Migrate bound when migrations run, not in every web process.

Flask-Migrate imports Alembic (and Mako, and Pygments): ≈ 11 MiB that a web process serving
the admin and the webhook never needs. :func:`enable` binds it to an app when migrations run
(``flask init``, the ``flask db`` commands, the test fixtures), and :func:`db_command` is the
``flask db`` command group that loads Flask-Migrate's own commands when one is used.
"""

from __future__ import annotations

from typing import Any

import click
from flask import Flask, current_app, g
from flask.cli import with_appcontext

from shared.config import PROJECT_ROOT
from shared.db import db

#: Where the Alembic environment and the revisions live.
MIGRATIONS_DIRECTORY = PROJECT_ROOT / "migrations"


def enable(app: Flask) -> str:
    """Bind Flask-Migrate to the app (once); the migrations' environment reads it.

    Args:
        app: The Flask app.

    Returns:
        The migrations directory (for ``flask_migrate.upgrade``).
    """
    if "migrate" not in app.extensions:
        from flask_migrate import Migrate  # noqa: PLC0415 - imported only when migrations run

        Migrate(app, db, directory=str(MIGRATIONS_DIRECTORY), render_as_batch=True)
    return str(MIGRATIONS_DIRECTORY)


class LazyDbGroup(click.Group):
    """A command group whose commands are Flask-Migrate's, loaded when one is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Flask-Migrate's commands (``upgrade``, ``migrate``, ``downgrade`` …)."""
        from flask_migrate.cli import db as group  # noqa: PLC0415 - only for `flask db`

        return group.list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> Any:
        """One of Flask-Migrate's commands."""
        from flask_migrate.cli import db as group  # noqa: PLC0415 - only for `flask db`

        return group.get_command(ctx, cmd_name)


@click.group(cls=LazyDbGroup)
@click.option("-d", "--directory", default=None, help="Migration script directory.")
@click.option(
    "-x", "--x-arg", multiple=True, help="Additional arguments consumed by custom env.py scripts"
)
@with_appcontext
def db_command(directory: str | None, x_arg: tuple[str, ...]) -> None:
    """Perform database migrations (Flask-Migrate's ``flask db``, bound when used)."""
    enable(current_app._get_current_object())  # noqa: SLF001 - the app itself, not the proxy
    g.directory = directory  # what Flask-Migrate's own group sets for its commands
    g.x_arg = x_arg
