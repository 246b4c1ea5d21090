"""Health checks of the parts every process depends on."""

from __future__ import annotations

import logging

from sqlalchemy import text

from shared.db import db
from shared.redis import current_redis

logger = logging.getLogger(__name__)


def check_health() -> dict[str, str]:
    """Check the database and Redis for real (a query and a PING).

    Must run inside an app context.

    Returns:
        ``{"status", "db", "redis"}``, each ``"ok"`` or ``"error"``; ``status`` is ``"ok"`` only
        when both parts are.
    """
    report = {"status": "ok", "db": "ok", "redis": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any driver error means "not healthy"; the cause goes to the log
        logger.exception("health check: database unreachable")
        report["db"] = "error"
        db.session.rollback()
    try:
        current_redis().ping()
    except Exception:  # connection, timeout or auth errors alike
        logger.exception("health check: redis unreachable")
        report["redis"] = "error"
    if "error" in report.values():
        report["status"] = "error"
    return report
