"""Celery entry point: ``celery -A celery_app worker`` / ``celery -A celery_app flower``.

It builds only the core app (``shared.app.create_core_app``: database, Redis, Telegram and LLM
clients, Celery) — never the admin or the API — so tasks run in a Flask app context with the
same configuration as every other process, and the worker stays small.
"""

from shared.app import create_core_app
from shared.config import Config
from shared.logging import configure_logging

_config = Config.from_env()
configure_logging("worker", _config.log_level, _config.log_format)
flask_app = create_core_app(_config)
celery = flask_app.extensions["celery"]
