"""Helpers shared by the fake's tests: a chat id, a hang guard, keyboards, a webhook receiver."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from telebot import types
from telebot.apihelper import ApiTelegramException

CHAT = 4242
# Generous bound used only so that a broken fake fails instead of hanging the suite.
HANG_GUARD = 15.0


def inline_keyboard(*data: str) -> types.InlineKeyboardMarkup:
    """An inline keyboard with one button per callback data."""
    markup = types.InlineKeyboardMarkup()
    for item in data:
        markup.add(types.InlineKeyboardButton(item.upper(), callback_data=item))
    return markup


def api_error(call: Any, *args: Any, **kwargs: Any) -> ApiTelegramException:
    """Call a telebot method that must fail and return the exception."""
    with pytest.raises(ApiTelegramException) as caught:
        call(*args, **kwargs)
    return caught.value


class Receiver:
    """A tiny webhook receiver: records every POST and answers with ``status``."""

    def __init__(self) -> None:
        self.status = 200
        self.received: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    receiver.received.append(
                        {"headers": dict(self.headers), "body": json.loads(body), "path": self.path}
                    )
                    status = receiver.status
                    receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        """Block until ``count`` requests arrived; returns them."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.received) >= count, HANG_GUARD):
                raise AssertionError(f"receiver got {len(self.received)} of {count} requests")
            return list(self.received)

    def close(self) -> None:
        """Stop the server."""
        self._server.shutdown()
        self._server.server_close()
