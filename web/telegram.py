"""``POST /telegram/webhook``: verify Telegram's secret header, enqueue the update, answer 200.

It never waits for anything but the enqueue: the update is processed by a worker. If the
enqueue fails the answer is 503, so Telegram delivers the update again.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from shared.celery_setup import enqueue_update
from shared.extensions import runtime
from shared.services import bot_control
from web.extensions import csrf

logger = logging.getLogger(__name__)

bp = Blueprint("telegram", __name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
#: The largest body accepted (Telegram's updates are a few KB; a file is never inline).
MAX_BODY = 1024 * 1024


@bp.post("/telegram/webhook")
@csrf.exempt
def webhook() -> tuple[Response, int]:
    """Accept one update from Telegram.

    Returns:
        403 without the right secret header or when the bot is not in webhook mode; 413 for a
        body over :data:`MAX_BODY`; 400 for a body that is not an update (not UTF-8 JSON, an
        object too deeply nested to parse, no integer ``update_id``); 503 when the update
        cannot be queued; else 200 ``{"ok": true}``. Never 5xx for what the body holds.
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
    if (request.content_length or 0) > MAX_BODY:
        return jsonify({"ok": False, "error": "body too large"}), 413
    update = _parse(request.get_data(cache=False)[: MAX_BODY + 1])
    if update is None:
        return jsonify({"ok": False, "error": "body must be a Telegram update (JSON)"}), 400
    try:
        enqueue_update(current_app._get_current_object(), update)
    except Exception:  # broker down: make Telegram retry instead of losing the update
        logger.exception("could not enqueue update_id=%s", update.get("update_id"))
        return jsonify({"ok": False, "error": "queue unavailable"}), 503
    return jsonify({"ok": True}), 200


def _parse(body: bytes) -> dict[str, Any] | None:
    """The update in a webhook body, or None for anything that is not one.

    Args:
        body: The raw body.

    Returns:
        The update, or None (not UTF-8 JSON, nested too deep to parse, not an object with an
        integer ``update_id``, or over :data:`MAX_BODY`).
    """
    if len(body) > MAX_BODY:
        return None
    try:
        update = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(update, dict):
        return None
    update_id = update.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return None
    return update
