"""Logging setup shared by every process (web, worker, listener, launcher)."""

from __future__ import annotations

import logging
import re
import signal
import threading

#: A Telegram bot token as it appears in Bot API URLs and errors: ``<digits>:<secret>``.
_BOT_TOKEN = re.compile(r"(?<!\d)(\d{3,}):[A-Za-z0-9_-]{20,}")


def redact(text: str) -> str:
    """Hide Telegram bot tokens in a text (an error message, a URL, a log line).

    Args:
        text: Any text.

    Returns:
        The text with every ``<id>:<secret>`` token replaced by ``<id>:***``.
    """
    return _BOT_TOKEN.sub(r"\1:***", text)


class _RedactingFormatter(logging.Formatter):
    """Formats records, tracebacks included, with bot tokens hidden."""

    def format(self, record: logging.LogRecord) -> str:
        """Format as usual, then redact."""
        return redact(super().format(record))


LOG_FORMAT = "%(asctime)s %(levelname)s [%(service)s] %(name)s: %(message)s"


class _ServiceFilter(logging.Filter):
    """Stamp every record with the name of the process kind that wrote it."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``record.service``; never drops a record."""
        record.service = self.service
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """Configure the root logger once for this process; later calls change nothing.

    The first caller names the process: the launcher (``run``), the worker entry point
    (``worker``) and the listener (``bot``) call it before building the Flask app, whose own call
    (``web``) then leaves their setup alone.

    Args:
        service: Short name of the process kind (``web``, ``worker``, ``bot``, ``run``).
        level: Root level name, e.g. ``INFO``.
    """
    root = logging.getLogger()
    if any(getattr(handler, "_ai_router", False) for handler in root.handlers):
        return
    handler = logging.StreamHandler()
    handler._ai_router = True  # type: ignore[attr-defined]
    handler.addFilter(_ServiceFilter(service))
    handler.setFormatter(_RedactingFormatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter that would drown our own lines at INFO. Celery's "Task … received" and
    # "… succeeded" lines cost ~0.6 ms of CPU per task (measured) and say less than our own
    # per-request lines; Flower shows every task anyway. LOG_LEVEL=DEBUG brings them back.
    quiet = logging.WARNING if logging.getLevelName(level) != logging.DEBUG else logging.DEBUG
    for noisy in ("urllib3", "celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(noisy).setLevel(quiet)


def stop_on_signals(logger: logging.Logger) -> threading.Event:
    """An event set by SIGINT or SIGTERM (the way every long-running process here stops).

    Args:
        logger: Where the received signal is logged.

    Returns:
        The event; the caller's main loop waits on it.
    """
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop
