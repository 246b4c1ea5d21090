"""The bot listener (``python -m bot``): brings Telegram updates into the queue.

It follows the desired mode kept in Redis (``shared.services.bot_control``):

- ``polling``: long-polls ``getUpdates`` and enqueues each raw update to
  ``tasks.updates.process_update``; the offset is acknowledged only after the enqueue succeeded.
- ``webhook``: registers ``{webhook_url}`` with a fresh random ``secret_token`` (kept, encrypted,
  in the settings for the webhook endpoint to check) and then only reports status.
- ``stopped``: removes the webhook (whoever registered it) and forgets its secret, so the
  webhook endpoint refuses updates; then idles.

One listener leads (a Redis lock) in polling and webhook mode; others stand by and take over
when the leader stops renewing the lock.

It writes a heartbeat with its state every few seconds, and sets the command menu
(``setMyCommands``) whenever it starts serving. A thread runs Celery beat's scheduler for the
periodic jobs (the plan check), in one listener of the deployment at a time
(``shared.schedule``).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any

from flask import Flask

from shared.app import create_core_app
from shared.celery_setup import BOT_COMMANDS, enqueue_update, enter_questions
from shared.config import Config
from shared.db import db
from shared.extensions import runtime, telegram
from shared.heap import freeze_startup_heap
from shared.logging import configure_logging, redact, stop_on_signals
from shared.models.types import utcnow
from shared.redis import current_redis
from shared.schedule import start_beat
from shared.services import bot_control
from shared.services.bot_control import POLLING, STOPPED, ListenerStatus
from shared.services.settings import set_setting
from shared.telegram.client import BotNotConfigured
from shared.telegram.errors import TelegramApiError
from shared.telegram.texts import EN, RU, t

logger = logging.getLogger(__name__)

#: Seconds of one getUpdates long poll; also how fast a change of the desired mode is noticed.
POLL_TIMEOUT = 5
#: Seconds between checks of the desired mode when not polling.
IDLE_INTERVAL = 1.0
#: While updates keep coming, the desired mode, the lead and the heartbeat are refreshed at most
#: this often (seconds) instead of at every poll.
CHECK_INTERVAL = 1.0


class Listener:
    """Follows the desired mode until ``stop`` is set.

    Args:
        app: The Flask app (database, Redis, Celery, configuration).
        stop: Set to end :meth:`run`.
        poll_timeout: Seconds of one long poll.
    """

    def __init__(self, app: Flask, stop: threading.Event, poll_timeout: int = POLL_TIMEOUT) -> None:
        self.app = app
        self.stop = stop
        self.poll_timeout = poll_timeout
        self.serving: str = STOPPED
        self.offset: int | None = None
        self.status = ListenerStatus(state="starting", mode=STOPPED, since=utcnow().isoformat())
        self._lock = None
        self._checked_at = 0.0
        self._reported_at = 0.0

    # -- state reporting -------------------------------------------------------------------
    def _set_state(self, state: str, mode: str, error: str | None = None, **extra: Any) -> None:
        changed = (state, mode, error) != (
            self.status.state,
            self.status.mode,
            self.status.last_error,
        )
        if (state, mode) != (self.status.state, self.status.mode):
            self.status.since = utcnow().isoformat()
        self.status.state, self.status.mode = state, mode
        self.status.last_error = error
        for name, value in extra.items():
            setattr(self.status, name, value)
        now = time.monotonic()
        if changed or now - self._reported_at >= CHECK_INTERVAL:
            bot_control.write_heartbeat(self.status)  # at most once a second while busy
            self._reported_at = now

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> None:
        """Serve the desired mode until stopped; errors are reported and retried, never fatal.

        Whatever fails — Telegram, Redis, the database, even reporting the failure — is logged
        and tried again after a pause: an outage of Redis or PostgreSQL pauses the listener, it
        never ends it.
        """
        logger.info("bot listener started")
        while not self.stop.is_set():
            try:
                with self.app.app_context():
                    try:
                        self._step()
                    finally:
                        _quietly(db.session.remove)
            except BotNotConfigured as exc:
                self._report_error(str(exc))
                self.stop.wait(IDLE_INTERVAL * 3)
            except Exception as exc:  # keep the listener alive; the admin sees the error
                logger.exception("listener step failed")
                self._report_error(redact(f"{type(exc).__name__}: {exc}")[:500])
                self.stop.wait(IDLE_INTERVAL * 3)
        with self.app.app_context():
            _quietly(self._release_lead)
            _quietly(
                bot_control.write_heartbeat,
                ListenerStatus(state="stopped", mode=STOPPED, since=utcnow().isoformat()),
            )
        logger.info("bot listener stopped")

    def _report_error(self, error: str) -> None:
        """Publish the error state if Redis lets us; never raise (Redis may be what failed)."""
        with self.app.app_context():
            _quietly(self._set_state, "error", self.serving, error)

    def _step(self) -> None:
        if self.serving == POLLING and time.monotonic() - self._checked_at < CHECK_INTERVAL:
            self._poll_once()  # busy polling: the mode and the lead were checked a moment ago
            return
        self._checked_at = time.monotonic()
        desired = bot_control.get_desired()["mode"]
        if desired == STOPPED:
            self._release_lead()
            if self.serving != STOPPED or runtime.get().setting("webhook_secret"):
                self._leave_webhook()
                self.serving = STOPPED
            self._set_state("running", STOPPED)
            self.stop.wait(IDLE_INTERVAL)
            return
        if not self._hold_lead():
            # Another listener serves the bot; this one waits to take over if that one dies.
            self.serving = STOPPED
            self.status.last_error = "another listener is serving the bot; standing by"
            self.stop.wait(self.poll_timeout)
            return
        if desired != self.serving:
            self._switch(desired)
        if self.serving == POLLING:
            self._poll_once()
        else:
            self._set_state("running", self.serving)
            self.stop.wait(IDLE_INTERVAL)

    def _leave_webhook(self) -> None:
        """Remove the webhook and forget its secret (safe when none is set)."""
        telegram.delete_webhook()
        set_setting("webhook_secret", None)
        db.session.commit()
        self.status.webhook_url = None

    def _switch(self, desired: str) -> None:
        """Enter the desired mode (this listener holds the lead)."""
        logger.info("switching bot mode from %s to %s", self.serving, desired)
        if desired == POLLING:
            self._leave_webhook()
        else:
            url = bot_control.webhook_url()
            if not url:
                raise RuntimeError("webhook mode needs the webhook_url setting or PUBLIC_URL")
            secret = secrets.token_urlsafe(32)
            set_setting("webhook_secret", secret)
            db.session.commit()
            telegram.set_webhook(url, secret)
            self.status.webhook_url = url
            logger.info("webhook registered url=%s", url)
        self._set_commands()
        self.serving = desired
        self._set_state("running", desired)

    def _set_commands(self) -> None:
        """Publish the command menu in Russian (default) and English."""
        for lang, code in ((RU, None), (RU, "ru"), (EN, "en")):
            commands = [(name, t(f"command_{name}", lang)) for name in BOT_COMMANDS]
            telegram.set_my_commands(commands, language_code=code)

    # -- polling ---------------------------------------------------------------------------
    def _hold_lead(self) -> bool:
        """Take or extend the lead lock; False when another listener serves the bot.

        One listener at a time polls or registers the webhook, however many are running.
        """
        if self._lock is None:
            self._lock = current_redis().lock(
                bot_control.POLLER_LOCK_KEY,
                timeout=self.poll_timeout * 4,
                blocking=False,
                thread_local=False,
            )
        if self._lock.owned():
            self._lock.extend(self.poll_timeout * 4, replace_ttl=True)
            return True
        return bool(self._lock.acquire(blocking=False))

    def _release_lead(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None and lock.owned():
            lock.release()

    def _poll_once(self) -> None:
        try:
            updates = telegram.get_updates(self.offset, self.poll_timeout)
        except TelegramApiError as exc:
            if exc.error_code == 409 and "webhook" in (exc.description or ""):
                logger.warning("webhook active while polling; deleting it")
                telegram.delete_webhook()
                return
            if exc.error_code == 409:  # another getUpdates (outside this deployment) took over
                logger.warning("getUpdates conflict: %s", exc.description)
                return
            raise
        waits = enter_questions(self.app, updates)  # one round trip for the whole batch
        for update in updates:
            enqueue_update(self.app, update, waits.get(update["update_id"]))
            self.offset = update["update_id"] + 1  # acknowledged by the next getUpdates
        extra = {"last_update_at": utcnow().isoformat()} if updates else {}
        self._set_state("running", POLLING, None, **extra)


def _quietly(fn: Any, *args: Any) -> None:
    """Call ``fn``; log and swallow what it raises (used where an outage must not escape)."""
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - the caller carries on either way
        logger.warning("%s failed: %s: %s", getattr(fn, "__name__", fn), type(exc).__name__, exc)


def main() -> None:
    """Run the listener until SIGINT or SIGTERM."""
    config = Config.from_env()
    configure_logging("bot", config.log_level, config.log_format)
    app = create_core_app(config)
    freeze_startup_heap()
    stop = stop_on_signals(logger)
    start_beat(app, stop)
    Listener(app, stop).run()
