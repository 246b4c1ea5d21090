"""The Flask web app: admin UI (``/admin``), admin JSON API, Telegram webhook, health check.

:func:`create_app` builds an app in named steps; importing this package connects to nothing.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from shared.app import create_core_app
from shared.config import Config
from shared.logging import configure_logging
from shared.migrations import db_command
from shared.models import AdminUser
from shared.services import audit
from web.admin import init_admin
from web.api import bp as api_bp
from web.cli import init_command, rotate_secrets_command
from web.extensions import csrf, db, login_manager
from web.health import bp as health_bp
from web.media import bp as media_bp
from web.metrics import bp as metrics_bp
from web.telegram import bp as telegram_bp


def create_app(config: Config | None = None, flask_config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app: config → extensions → blueprints → admin → errors → logging.

    Args:
        config: The ai_router configuration; read from the environment when None.
        flask_config: Extra Flask settings applied last (tests use it, e.g. ``TESTING``).

    Returns:
        The app. Its :class:`Config` is ``app.config["AI_ROUTER"]``, its Celery app
        ``app.extensions["celery"]`` and its Redis client ``app.extensions["redis"]``.

    Raises:
        shared.config.ConfigError: If the configuration is unusable.
    """
    config = config or Config.from_env()
    app = create_core_app(config, import_name=__name__)
    _configure(app, config, flask_config or {})
    _init_extensions(app)
    _register_blueprints(app)
    _init_admin(app)
    _register_cli(app)
    if not app.testing:
        configure_logging("web", config.log_level, config.log_format)
    return app


def _configure(app: Flask, config: Config, flask_config: dict[str, Any]) -> None:
    """Add the web's Flask settings (cookies, CSRF) to the core app's."""
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.is_production,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
        JSON_SORT_KEYS=False,
    )
    app.config.update(flask_config)


def _init_extensions(app: Flask) -> None:
    """Bind the web-only extensions (CSRF, login, the audit log); nothing connects.

    The audit log's listeners live in the web process only (the admin UI, the API and the CLI
    name actors; the worker never does). Every request ends with no actor, so a request that
    authenticates nobody records nothing.
    """
    audit.listen()
    app.teardown_request(_forget_actor)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "admin.login_view"

    @login_manager.user_loader
    def load_admin(admin_id: str) -> AdminUser | None:
        """Reload the logged-in admin from the session's id."""
        return db.session.get(AdminUser, int(admin_id)) if admin_id.isdigit() else None


def _forget_actor(_error: BaseException | None) -> None:
    """After every request: the audit actor its authentication named is forgotten."""
    audit.set_actor(None)


def _register_blueprints(app: Flask) -> None:
    """Register the non-admin routes."""
    app.register_blueprint(health_bp)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(telegram_bp)
    app.register_blueprint(media_bp)
    app.register_blueprint(api_bp)


def _init_admin(app: Flask) -> None:
    """Build the Flask-Admin UI for this app."""
    init_admin(app)


def _register_cli(app: Flask) -> None:
    """Add ``flask init`` (migrate, seed), ``flask rotate-secrets`` and ``flask db`` to the CLI."""
    app.cli.add_command(init_command)
    app.cli.add_command(db_command, name="db")
    app.cli.add_command(rotate_secrets_command)
