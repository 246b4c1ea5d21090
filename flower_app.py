"""Flower's entry point: ``celery -A flower_app flower`` (``make run`` and the compose file).

A Celery app with the broker settings alone (``shared.broker.broker_settings``): Flower only
speaks to the broker (worker events, inspect and control broadcasts), so it needs no Flask
app, database or clients, and the process stays at ≈ 60 MiB instead of ≈ 110 MiB with
``celery_app``. Before Flower reads its ``FLOWER_*`` options from the environment, ai_router's
are put there (``shared.flower.flower_environment``): a login, task events off unless
``FLOWER_ENABLE_EVENTS``, the loopback address. ``celery -A celery_app flower`` still works,
with Flower's own defaults (no login, task events switched on in every worker).
"""

import os

from celery import Celery

from shared.broker import broker_settings
from shared.config import Config
from shared.flower import flower_environment
from shared.logging import configure_logging

_config = Config.from_env()
configure_logging("flower", _config.log_level, _config.log_format)
os.environ.update(flower_environment(_config))
celery = Celery("ai_router")
celery.conf.update(broker_settings(_config))
