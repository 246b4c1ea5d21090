"""Celery entry point: ``celery -A celery_app worker`` / ``celery -A celery_app flower``.

The Celery app is built by ``shared.celery_setup.celery_init_app`` inside ``create_app``, so
tasks run in the Flask app context with the same configuration as the web app.
"""

from shared.config import Config
from shared.logging import configure_logging
from web import create_app

_config = Config.from_env()
configure_logging("worker", _config.log_level)
flask_app = create_app(_config)
celery = flask_app.extensions["celery"]
