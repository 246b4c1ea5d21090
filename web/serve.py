"""``python -m web.serve``: the web app in one process for ``make run`` (waitress, threads).

``make run``'s supervisor already restarts a dead child, so the web needs no process manager
of its own: gunicorn's master would be a second one and cost ≈ 25 MiB of the tree's budget.
waitress serves the app from one process with a pool of threads (the admin, the API and the
webhook are light; every request is short). Production (``docker compose``) keeps gunicorn
with several workers per container.

SIGTERM and SIGINT stop accepting connections and give the requests in flight up to
:data:`GRACE_SECONDS` to finish, like gunicorn's ``--graceful-timeout``. Every request is
logged on one line (``web.access``: method, path, status, milliseconds).
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
#: Seconds the requests in flight get to finish after SIGTERM.
GRACE_SECONDS = 10.0


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
            access.info(
                "%s %s %s %.0f ms",
                environ.get("REQUEST_METHOD"),
                environ.get("PATH_INFO"),
                status_of[0] if status_of else "-",
                (time.monotonic() - started) * 1000,
            )


def _stop(server: Any) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        logger.info("web stopping (signal %s)", signum)
        server.close()  # no new connections; the loop in run() ends
        raise SystemExit(0)

    return handler


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
        clear_untrusted_proxy_headers=True,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop(server))
    logger.info("web listening on http://%s:%s (%s threads)", config.host, config.port, THREADS)
    try:
        server.run()
    except SystemExit:
        pass
    finally:
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=GRACE_SECONDS)
    logger.info("web stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
