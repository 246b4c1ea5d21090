"""HTTP plumbing: the threaded server on 127.0.0.1 and its request handler.

The handler only reads the request and writes the answer; everything else is
:meth:`FakeTelegram._handle_request <tests.fakes.telegram.api._BotApi._handle_request>` (the Bot
API) or, for ``GET /file/bot<token>/<file_path>``,
:meth:`FakeTelegram._handle_download <tests.fakes.telegram.files._FileStore._handle_download>`.
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
        if self.path.startswith("/file/"):
            self._download()
        else:
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
        self._answer(status, "application/json", json.dumps(payload, ensure_ascii=False).encode())

    def _download(self) -> None:
        fake: FakeTelegram = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)
        try:
            status, answer = fake._handle_download(self.path)
        except Exception:  # a bug of the fake must not look like a hung server
            logger.exception("FakeTelegram failed to answer the download %s", self.path)
            status, answer = 500, _ApiError(500, "Internal Server Error").payload()
        if isinstance(answer, bytes):
            self._answer(status, "application/octet-stream", answer)
        else:
            self._answer(status, "application/json", json.dumps(answer).encode())

    def _answer(self, status: int, content_type: str, data: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
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
