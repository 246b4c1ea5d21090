"""HTTP plumbing: the threaded server on 127.0.0.1 and its request handler.

The handler only reads the request and writes the JSON answer; everything else is
:meth:`FakeTelegram._handle_request <tests.fakes.telegram.api._BotApi._handle_request>`.
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from tests.fakes.telegram.answers import _ApiError

if TYPE_CHECKING:
    from tests.fakes.telegram.fake import FakeTelegram

logger = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the :class:`FakeTelegram` owning the server."""

    server_version = "FakeTelegram/1.0"
    protocol_version = "HTTP/1.1"  # keep-alive, like api.telegram.org
    # Headers and body are two writes: with Nagle's algorithm on, the body waits for the
    # client's delayed ACK (40 ms on Linux) on every keep-alive answer. Telegram's servers
    # answer at once, so the fake sets TCP_NODELAY like they do.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, http_method: str) -> None:
        fake: FakeTelegram = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            status, payload = fake._handle_request(
                http_method, self.path, self.headers.get("Content-Type", ""), body
            )
        except Exception:  # a bug of the fake must not look like a hung server
            logger.exception("FakeTelegram failed to answer %s %s", http_method, self.path)
            status, payload = 500, _ApiError(500, "Internal Server Error").payload()
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("FakeTelegram: client went away before the answer to %s", self.path)

    def log_message(self, format: str, *args: Any) -> None:
        """Route http.server's access log to logging."""
        logger.debug("FakeTelegram %s - " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeTelegram
