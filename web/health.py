"""``GET /healthz``: is this web process able to reach the database and Redis?"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from shared.services.health import check_health

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Report the health of the database and Redis.

    Returns:
        ``200 {"status": "ok", "db": "ok", "redis": "ok"}``, or ``503`` with ``status: "error"``
        and the failing part set to ``"error"`` (details are logged, not returned).
    """
    report = check_health()
    return jsonify(report), 200 if report["status"] == "ok" else 503
