"""The composition root of every ai_router process: :func:`create_core_app`.

The worker (``celery_app.py``) and the listener (``python -m bot``) build only this core app:
configuration, database, Redis, the cipher, the runtime settings, the Telegram client, the LLM
clients and Celery — no admin, no API, no templates. The web app (``web.create_app``) builds the
same core and adds the admin UI, the JSON API and the webhook on top.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from shared.config import Config
from shared.db import configure_engine, engine_options
from shared.extensions import (
    celery_ext,
    cipher,
    cooldowns,
    cpu_slots,
    db,
    generations,
    leases,
    llm,
    metrics_ext,
    redis_store,
    runtime,
    telegram,
)


def create_core_app(
    config: Config | None = None,
    flask_config: dict[str, Any] | None = None,
    *,
    import_name: str = "ai_router",
) -> Flask:
    """Build a Flask app with every shared extension bound (nothing connects yet).

    Args:
        config: The configuration; read from the environment when None.
        flask_config: Extra Flask settings applied last (tests use it, e.g. ``TESTING``).
        import_name: Flask's import name (the web app passes ``web`` to find its templates).

    Returns:
        The app. Its :class:`Config` is ``app.config["AI_ROUTER"]``.

    Raises:
        shared.config.ConfigError: If the configuration is unusable.
    """
    config = config or Config.from_env()
    app = Flask(import_name, instance_path=str(config.instance_path))
    app.config.update(
        AI_ROUTER=config,
        SECRET_KEY=config.secret_key,
        # Flask 3.1 accepts sessions signed with these; the cipher decrypts with them too.
        SECRET_KEY_FALLBACKS=list(config.secret_key_fallbacks),
        SQLALCHEMY_DATABASE_URI=config.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(config.database_url, config.db_pool_size),
    )
    app.config.update(flask_config or {})
    bind_extensions(app)
    return app


def bind_extensions(app: Flask) -> None:
    """Bind the shared extensions to an app, eagerly and in dependency order.

    Args:
        app: The app; ``app.config["AI_ROUTER"]`` must hold its :class:`Config`.
    """
    config: Config = app.config["AI_ROUTER"]
    config.instance_path.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    redis_store.init_app(app)
    cipher.init_app(app)
    runtime.init_app(app)
    telegram.init_app(app)
    llm.init_app(app)
    cooldowns.init_app(app)
    generations.init_app(app)
    cpu_slots.init_app(app)
    leases.init_app(app)
    metrics_ext.init_app(app)
    celery_ext.init_app(app)
