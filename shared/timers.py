"""Run something a little later unless it is cancelled — a greenlet under gevent, else a thread.

Used for cosmetic side jobs of a task (the "typing…" indicator of a slow answer). The callable
runs inside the current Flask app's context; its exceptions are logged, never raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from flask import current_app

from shared.db import cooperative

logger = logging.getLogger(__name__)


class Cancellable(Protocol):
    """What :func:`later` returns."""

    def cancel(self) -> None:
        """Do not run (or stop waiting to run)."""


class _Greenlet:
    def __init__(self, greenlet: Any) -> None:
        self._greenlet = greenlet

    def cancel(self) -> None:
        self._greenlet.kill(block=False)


def later(delay: float, fn: Callable[..., Any], *args: Any) -> Cancellable:
    """Call ``fn(*args)`` after ``delay`` seconds in the current app's context, unless cancelled.

    Args:
        delay: Seconds to wait.
        fn: What to run.
        *args: Its arguments.

    Returns:
        A handle whose ``cancel()`` stops it if it has not run yet.
    """
    app = current_app._get_current_object()

    def run() -> None:
        try:
            with app.app_context():
                fn(*args)
        except Exception:  # a side job never fails its task
            logger.warning("delayed call %s failed", getattr(fn, "__name__", fn), exc_info=True)

    if cooperative():
        import gevent

        return _Greenlet(gevent.spawn_later(delay, run))
    timer = threading.Timer(delay, run)
    timer.daemon = True
    timer.start()
    return timer
