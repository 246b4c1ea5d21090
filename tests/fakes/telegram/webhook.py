"""Webhook delivery: pending updates are POSTed to the webhook one at a time, in order.

A failed delivery is recorded (``last_error_*`` of ``getWebhookInfo``) and retried after
``webhook_retry_delay``; every attempt is kept as a :class:`~.records.Delivery`.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from typing import Any

import requests

from tests.fakes.telegram.records import Delivery
from tests.fakes.telegram.state import _FakeState

logger = logging.getLogger(__name__)


class _WebhookDelivery(_FakeState):
    """The webhook delivery thread of the fake."""

    def _webhook_loop(self) -> None:
        """Deliver pending updates to the webhook, one at a time, in order, retrying failures."""
        session = requests.Session()
        session.trust_env = False  # loopback only: never through a proxy from the environment
        try:
            while True:
                with self._cond:
                    while True:
                        if self._stopping:
                            return
                        hook = self._webhook
                        pending = self._deliverable_updates() if hook else []
                        wait: float | None = None
                        if hook and pending:
                            wait = self._next_delivery_at - time.monotonic()
                            if wait <= 0:
                                break
                        self._cond.wait(wait)
                    update = copy.deepcopy(pending[0])
                    url = hook["url"]
                    secret = hook["secret_token"]
                status, error = self._post_update(session, url, secret, update)
                with self._cond:
                    self._deliveries.append(
                        Delivery(update["update_id"], url, status, error, time.time())
                    )
                    if error is None:
                        self._updates = [
                            u for u in self._updates if u["update_id"] != update["update_id"]
                        ]
                    elif self._webhook is not None and self._webhook["url"] == url:
                        self._last_error = (int(time.time()), error)
                        self._next_delivery_at = time.monotonic() + self._webhook_retry_delay
                    self._cond.notify_all()
        finally:
            session.close()

    def _post_update(
        self, session: requests.Session, url: str, secret: str | None, update: dict[str, Any]
    ) -> tuple[int | None, str | None]:
        """POST one update; returns (status or None, error message or None)."""
        headers = {"Content-Type": "application/json"}
        if secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        body = json.dumps(update, ensure_ascii=False).encode("utf-8")
        try:
            response = session.post(
                url,
                data=body,
                headers=headers,
                timeout=self._webhook_timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            error = "Read timeout expired"
        except requests.ConnectionError as exc:
            error = "Connection refused" if "refused" in str(exc).lower() else f"{exc}"
        else:
            response.close()
            if 200 <= response.status_code < 300:
                logger.debug("FakeTelegram: delivered update %s", update["update_id"])
                return response.status_code, None
            reason = (response.reason or "").upper()
            message = f"Wrong response from the webhook: {response.status_code} {reason}".strip()
            logger.info("FakeTelegram: update %s: %s", update["update_id"], message)
            return response.status_code, message
        logger.info("FakeTelegram: update %s: %s", update["update_id"], error)
        return None, error
