"""A tiny OpenAI-compatible server that answers after a delay and counts calls in flight.

llmock serves the product's conversations; this one exists to *prove concurrency* and
*cancellation*: it records how many Chat Completions calls were being served at the same moment,
streams its answer in timed chunks when asked to (``stream: true``), and counts the streams the
client hung up on before the end.
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

    A streamed answer (``stream: true``) sends its headers at once, then after ``delay`` its
    first chunk, then ``chunks - 1`` more ``chunk_delay`` seconds apart, then the final chunk
    (``finish_reason``, ``usage``) and ``[DONE]``. Joined, the chunks are the same text as the
    plain answer: ``slow answer to <question>``.

    Args:
        delay: Seconds before the answer (or its first chunk).
        chunks: How many pieces a streamed answer comes in.
        chunk_delay: Seconds between two pieces.

    Attributes:
        served: Calls answered so far (cancelled streams included).
        cancelled: Streams the client closed before their end.
        connections: TCP connections accepted (keep-alive reuse keeps it low).
        max_in_flight: The most calls being served at the same time.
    """

    def __init__(self, delay: float, chunks: int = 1, chunk_delay: float = 0.0) -> None:
        self.delay = delay
        self.chunks = max(1, chunks)
        self.chunk_delay = chunk_delay
        self.cancelled = 0
        self.connections = 0
        self.served = 0
        #: The ``messages`` of every Chat Completions request, in arrival order.
        self.prompts: list[list[dict[str, Any]]] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self.port = free_port()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake.connections += 1

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = json.loads(body or b"{}")
                with fake._lock:
                    fake.prompts.append(request.get("messages") or [])
                fake._enter()
                try:
                    if request.get("stream"):
                        self._stream(request)
                        return
                    time.sleep(fake.delay)
                    data = json.dumps(fake._answer(request)).encode()
                finally:
                    fake._leave()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, request: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                try:
                    time.sleep(fake.delay)
                    for index, piece in enumerate(fake._pieces(request)):
                        if index:
                            time.sleep(fake.chunk_delay)
                        self._event({"choices": [{"index": 0, "delta": {"content": piece}}]})
                    self._event(
                        {
                            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 5, "completion_tokens": 5},
                        }
                    )
                    self._write(b"data: [DONE]\n\n")
                    self._write(b"")
                except OSError:  # the client hung up (a stop): the provider stops generating
                    with fake._lock:
                        fake.cancelled += 1
                    self.close_connection = True

            def _event(self, chunk: dict[str, Any]) -> None:
                chunk = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", **chunk}
                self._write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

            def _write(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

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

    def _pieces(self, request: dict[str, Any]) -> list[str]:
        text = self._answer(request)["choices"][0]["message"]["content"]
        size = -(-len(text) // self.chunks)
        return [text[i : i + size] for i in range(0, len(text), size)]

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
