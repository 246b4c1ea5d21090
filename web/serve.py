"""``python -m web.serve``: the web app in one process for ``make run`` (waitress, threads).

``make run``'s supervisor already restarts a dead child, so the web needs no process manager
of its own: gunicorn's master would be a second one and cost ≈ 25 MiB of the tree's budget.
waitress serves the app from one process with a pool of threads (the admin, the API and the
webhook are light; every request is short). Production (``docker compose``) keeps gunicorn
with several workers per container.

SIGTERM and SIGINT end the server the way waitress ends on Ctrl-C: its threads get 5 s to finish
the requests in flight (queued ones are cancelled), then the process exits 0. Bodies over
:data:`MAX_BODY_BYTES` are refused by waitress itself, before they are read (the admin uploads
nothing; the webhook's updates are a few KB). Every request is logged on one line
(``web.access``: client, method, path, status, milliseconds; a media URL's signed token is left
out).
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from waitress.server import create_server

from shared.config import Config

logger = logging.getLogger(__name__)
access = logging.getLogger("web.access")

#: Threads serving requests.
THREADS = 8
#: The largest request body read (waitress's default is 1 GiB, buffered before the app runs).
MAX_BODY_BYTES = 4 * 1024 * 1024


class AccessLog:
    """WSGI middleware: one log line per request, written once its status is known.

    Args:
        app: The WSGI app.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Serve the request and log it (the query string is left out: it may hold secrets)."""
        started = time.monotonic()
        status_of: list[str] = []

        def recording(status: str, headers: list[Any], *args: Any) -> Any:
            status_of.append(status.split(" ", 1)[0])
            return start_response(status, headers, *args)

        try:
            return self.app(environ, recording)
        finally:
            path = environ.get("PATH_INFO") or ""
            if path.startswith("/media/"):
                path = "/media/…"  # the signed token is a credential for an hour
            access.info(
                "%s %s %s %s %.0f ms",
                environ.get("REMOTE_ADDR", "-"),
                environ.get("REQUEST_METHOD"),
                path,
                status_of[0] if status_of else "-",
                (time.monotonic() - started) * 1000,
            )


def _stop(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM (and SIGINT) end ``server.run()`` as Ctrl-C does: waitress then shuts down."""
    logger.info("web stopping (signal %s)", signum)
    raise SystemExit(0)


def main() -> int:
    """Serve ``wsgi.app`` on ``HOST``:``PORT`` until SIGTERM or SIGINT.

    Returns:
        The exit code (0 after a requested stop).
    """
    config = Config.from_env()
    from wsgi import app  # noqa: PLC0415 - builds the app (and its logging) after the config

    server = create_server(
        AccessLog(app),
        host=config.host,
        port=config.port,
        threads=THREADS,
        ident="ai_router",
        max_request_body_size=MAX_BODY_BYTES,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    logger.info("web listening on http://%s:%s (%s threads)", config.host, config.port, THREADS)
    server.run()  # returns after a signal, once waitress has shut its threads down
    logger.info("web stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
