"""Ingress benchmark: latency of ``POST /telegram/webhook`` (verify secret + enqueue), no LLM.

Runs on a throwaway instance folder with the embedded Redis and SQLite, through the real app
and the real broker (no worker consumes, so only the ingress path is measured). Prints
percentiles; the numbers are for comparing changes on the same machine, not for asserting.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from pathlib import Path

from shared.config import Config
from shared.db import db
from shared.embedded_redis import EmbeddedRedis
from shared.services import bot_control
from shared.services.bootstrap import initialize
from shared.services.settings import set_setting
from web import create_app

logger = logging.getLogger("bench.ingress")

REQUESTS = 2000
SECRET = "bench-secret"


def main() -> None:
    """Measure and log webhook latency percentiles."""
    with tempfile.TemporaryDirectory(prefix="air-bench-") as folder:
        root = Path(folder)
        redis = EmbeddedRedis(root / "redis.sock", root, persist=False)
        redis.start()
        try:
            config = Config.from_env(
                {"INSTANCE_PATH": str(root), "REDIS_URL": redis.url, "SECRET_KEY": "bench",
                 "ADMIN_PASSWORD": "bench", "LOG_LEVEL": "WARNING"}
            )  # fmt: skip
            app = create_app(config)
            initialize(app)
            with app.app_context():
                set_setting("webhook_url", "https://bench.example.com/telegram/webhook")
                set_setting("webhook_secret", SECRET)
                db.session.commit()
                bot_control.set_desired(bot_control.WEBHOOK)
            client = app.test_client()
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            timings = []
            for update_id in range(REQUESTS):
                update = {"update_id": update_id, "message": {"message_id": 1, "text": "hi"}}
                started = time.perf_counter()
                response = client.post("/telegram/webhook", json=update, headers=headers)
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
            timings.sort()
            logger.info(
                "webhook ingress, %s requests: p50=%.2f ms p95=%.2f ms p99=%.2f ms mean=%.2f ms",
                REQUESTS,
                timings[len(timings) // 2],
                timings[int(len(timings) * 0.95)],
                timings[int(len(timings) * 0.99)],
                statistics.fmean(timings),
            )
        finally:
            redis.stop()
