"""``POST /telegram/webhook``: verify Telegram's secret header, enqueue the update, answer 200.

It never waits for anything but the enqueue: the update is processed by a worker. If the
enqueue fails the answer is 503, so Telegram delivers the update again.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, current_app, jsonify, request

from shared.celery_setup import enqueue_update
from shared.extensions import runtime
from shared.services import bot_control
from web.extensions import csrf

logger = logging.getLogger(__name__)

bp = Blueprint("telegram", __name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@bp.post("/telegram/webhook")
@csrf.exempt
def webhook() -> tuple[Response, int]:
    """Accept one update from Telegram.

    Returns:
        403 without the right secret header or when the bot is not in webhook mode; 400 for a
        body that is not a JSON object; 503 when the update cannot be queued; else 200
        ``{"ok": true}``.
    """
    expected = runtime.get().setting("webhook_secret")
    given = request.headers.get(SECRET_HEADER, "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        logger.warning("webhook call with a wrong or missing secret from %s", request.remote_addr)
        return jsonify({"ok": False, "error": "forbidden"}), 403
    try:
        serving = bot_control.get_desired()["mode"] == bot_control.WEBHOOK
    except Exception:  # Redis down: Telegram should retry later
        logger.exception("webhook: cannot read the bot's desired mode")
        return jsonify({"ok": False, "error": "unavailable"}), 503
    if not serving:
        logger.warning("webhook call while the bot is not in webhook mode; refused")
        return jsonify({"ok": False, "error": "forbidden"}), 403
    update = request.get_json(silent=True)
    if not isinstance(update, dict):
        return jsonify({"ok": False, "error": "body must be a JSON object"}), 400
    try:
        enqueue_update(current_app._get_current_object(), update)
    except Exception:  # broker down: make Telegram retry instead of losing the update
        logger.exception("could not enqueue update_id=%s", update.get("update_id"))
        return jsonify({"ok": False, "error": "queue unavailable"}), 503
    return jsonify({"ok": True}), 200
