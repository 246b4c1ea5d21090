"""Celery beat's entry point: ``celery -A beat_app beat`` (``make run`` and the compose file).

Beat only publishes the periodic task messages (by name, never importing task code), so like
Flower (``flower_app``) it is a Celery app with the broker settings alone — no Flask app,
database or clients: ≈ 45 MiB instead of ≈ 100 with ``celery_app``. The schedule
(``shared.schedule.beat_schedule``): the plan check every ``PLAN_CHECK_SECONDS``, on the
fast ``updates`` queue. Run exactly one beat per deployment: two would run the check twice
(harmless — each change is made once — but wasteful).
"""

from celery import Celery

from shared.broker import broker_settings
from shared.config import Config
from shared.logging import configure_logging
from shared.schedule import beat_schedule

_config = Config.from_env()
configure_logging("beat", _config.log_level, _config.log_format)
celery = Celery("ai_router")
celery.conf.update(broker_settings(_config))
celery.conf.update(beat_schedule=beat_schedule(_config), timezone="UTC", enable_utc=True)
