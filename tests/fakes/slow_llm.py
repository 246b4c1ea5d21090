"""A tiny OpenAI-compatible server that answers after a delay and counts calls in flight.

llmock serves the product's conversations; this one exists to *prove concurrency*: it records
how many Chat Completions calls were being served at the same moment.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support import free_port


class SlowLLM:
    """``POST /v1/chat/completions`` answered after ``delay`` seconds, on 127.0.0.1.

    Args:
        delay: Seconds each answer takes.

    Attributes:
        served: Calls answered so far.
        max_in_flight: The most calls being served at the same time.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.served = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self.port = free_port()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake._enter()
                try:
                    time.sleep(fake.delay)
                    data = json.dumps(fake._answer(json.loads(body or b"{}"))).encode()
                finally:
                    fake._leave()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._server.request_queue_size = 1024
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def in_flight(self) -> int:
        """Calls being served right now."""
        with self._lock:
            return self._in_flight

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``…/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> SlowLLM:
        """Start serving."""
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self.served += 1

    @staticmethod
    def _answer(request: dict[str, Any]) -> dict[str, Any]:
        question = request.get("messages", [{}])[-1].get("content", "")
        return {
            "id": "chatcmpl-slow",
            "object": "chat.completion",
            "model": request.get("model", "slow"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"slow answer to {question}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
        }
