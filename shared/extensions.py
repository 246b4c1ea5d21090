"""The extension objects of every ai_router process, created unbound and bound by ``init_app``.

These are the only module-level objects with state; each keeps its per-app state in
``app.extensions``. ``shared.app.create_core_app`` binds them all, eagerly, in dependency order
(database → Redis → cipher → runtime settings → Telegram → LLM → cooldowns → generations →
Celery). Import them from here.
"""

from __future__ import annotations

from shared.celery_setup import CeleryExt
from shared.db import db
from shared.green import CpuSlots
from shared.llm import LLMGateway
from shared.metrics import Metrics
from shared.redis import RedisStore
from shared.runtime import RuntimeSettings
from shared.services.cooldowns import Cooldowns
from shared.services.crypto import Cipher
from shared.services.generations import Generations
from shared.services.leases import Leases
from shared.telegram.client import TelegramClient

redis_store = RedisStore()
cipher = Cipher()
runtime = RuntimeSettings()
telegram = TelegramClient(runtime, redis_store)
llm = LLMGateway()
cooldowns = Cooldowns(runtime)
generations = Generations(redis_store)
leases = Leases(redis_store)
celery_ext = CeleryExt()
metrics_ext = Metrics()
cpu_slots = CpuSlots()

__all__ = [
    "celery_ext",
    "cipher",
    "cooldowns",
    "cpu_slots",
    "db",
    "generations",
    "leases",
    "llm",
    "metrics_ext",
    "redis_store",
    "runtime",
    "telegram",
]
