"""Logging setup shared by every process (web, worker, listener, launcher)."""

from __future__ import annotations

import contextvars
import logging
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pythonjsonlogger.json import JsonFormatter

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
#: The fields of a JSON line, besides the ids of :func:`log_context` and Celery's task.
JSON_FIELDS = "%(asctime)s %(levelname)s %(service)s %(name)s %(message)s"
#: What the current unit of work is about (``update_id``, ``request_id``, ``chat_id`` …);
#: JSON lines carry it. A context variable: each task, thread and greenlet has its own.
_CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "ai_router_log_context", default=None
)


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Add ids to every JSON log line written inside the block (nested blocks add up).

    Args:
        **ids: E.g. ``update_id=…``, ``request_id=…``, ``chat_id=…`` (None values are left out).
    """
    merged = {**(_CONTEXT.get() or {}), **{k: v for k, v in ids.items() if v is not None}}
    token = _CONTEXT.set(merged)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class _JsonLineFormatter(JsonFormatter):
    """One JSON object per line, bot tokens hidden.

    Fields: time, level, service, logger, message, the ids of :func:`log_context`, the Celery
    task (id and name) when inside one, and any ``extra``.
    """

    def add_fields(
        self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """Add the context's ids and the current Celery task to the line."""
        super().add_fields(log_record, record, message_dict)
        log_record.update(_CONTEXT.get() or {})
        task = _current_task()
        if task is not None:
            log_record.setdefault("task_id", task.request.id)
            log_record.setdefault("task", task.name)

    def format(self, record: logging.LogRecord) -> str:
        """Format as JSON, then redact."""
        return redact(super().format(record))


def _current_task() -> Any:
    """Celery's task being executed by this thread or greenlet, if any."""
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover - Celery is a dependency of every process
        return None
    task = current_task._get_current_object()  # noqa: SLF001 - a proxy; None outside a task
    return task if task is not None and getattr(task.request, "id", None) else None


class _ServiceFilter(logging.Filter):
    """Stamp every record with the name of the process kind that wrote it."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        """Add ``record.service``; never drops a record."""
        record.service = self.service
        return True


def configure_logging(service: str, level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once for this process; later calls change nothing.

    The first caller names the process: the launcher (``run``), the worker entry point
    (``worker``) and the listener (``bot``) call it before building the Flask app, whose own call
    (``web``) then leaves their setup alone.

    Args:
        service: Short name of the process kind (``web``, ``worker``, ``bot``, ``run``).
        level: Root level name, e.g. ``INFO``.
        fmt: ``text`` (one readable line per event) or ``json`` (one JSON object per line,
            with the ids of :func:`log_context` and the Celery task; ``LOG_FORMAT``).
    """
    root = logging.getLogger()
    if any(getattr(handler, "_ai_router", False) for handler in root.handlers):
        return
    handler = logging.StreamHandler()
    handler._ai_router = True  # type: ignore[attr-defined]
    handler.addFilter(_ServiceFilter(service))
    if fmt == "json":
        handler.setFormatter(
            _JsonLineFormatter(
                JSON_FIELDS,
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
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
