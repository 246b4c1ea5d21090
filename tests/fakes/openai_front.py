"""A fake speech-to-text endpoint in front of llmock, relaying everything else to it.

llmock speaks Chat Completions but not ``/v1/audio/transcriptions``. :class:`OpenAIFront` is a
small OpenAI-compatible server on 127.0.0.1 that answers transcriptions itself (scripted texts,
or the text a test hid in the audio bytes after ``SPEECH:``) and forwards every other request to
the upstream (the llmock server) unchanged, streaming Server-Sent Events through as they
arrive. Point a model's base URL at :attr:`OpenAIFront.base_url` and the product sees one
endpoint with both::

    with OpenAIFront(llm_server) as front:
        front.script_transcript("what is the weather?")
        ...  # the product transcribes a voice message, then asks llmock through the front
        assert front.transcriptions()[0]["model"] == "whisper-1"
"""

from __future__ import annotations

import collections
import http.client
import json
import logging
import threading
import time
from email.parser import BytesHeaderParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

#: The path (below ``/v1``) the front answers itself.
TRANSCRIPTIONS_PATH = "/audio/transcriptions"
#: Audio bytes starting with this prefix are transcribed as the UTF-8 text that follows it.
SPEECH_PREFIX = b"SPEECH:"

# Seconds to wait for the upstream (llmock's scripted delays stay well below).
_UPSTREAM_TIMEOUT = 120.0
# Request headers not forwarded (the front sets its own or they belong to one hop).
_DROPPED_REQUEST_HEADERS = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "expect", "te"}
)
# Answer headers not relayed: the front frames the body itself (Content-Length or chunked).
_DROPPED_ANSWER_HEADERS = frozenset(
    {"content-length", "connection", "keep-alive", "transfer-encoding", "trailer", "upgrade"}
)
_RESPONSE_FORMATS = frozenset({"json", "text", "verbose_json"})
# OpenAI's error type, code and message for the statuses a test may inject.
_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: (
        "request_forbidden",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


class OpenAIFront:
    """``POST /v1/audio/transcriptions`` answered here; every other request relayed upstream.

    The transcript of a call is the next text queued with :meth:`script_transcript`, else the
    UTF-8 text after ``SPEECH:`` when the audio starts with it, else "". Failures injected with
    :meth:`fail_next` come first (a scripted transcript waits for the next successful call).
    The front speaks HTTP/1.1 with keep-alive; every answer has a ``Content-Length`` or is
    chunked, and a streamed upstream answer (``text/event-stream``, or no ``Content-Length``) is
    relayed chunk by chunk as it arrives.

    Args:
        upstream: The upstream's OpenAI base URL (``http://127.0.0.1:PORT/v1``). A path below the
            front's ``/v1`` goes below the upstream's; any other path goes to the upstream's root
            (so llmock's ``/_llmock`` admin and ``/health`` work through the front too).

    Raises:
        ValueError: If ``upstream`` is not an ``http(s)://`` URL with a host.
    """

    def __init__(self, upstream: str) -> None:
        split = urlsplit(upstream)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError(f"upstream {upstream!r} is not an http(s) URL")
        self.upstream = upstream.rstrip("/")
        self._upstream_scheme = split.scheme
        self._upstream_netloc = split.netloc
        self._upstream_base = split.path.rstrip("/")
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._clear()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> OpenAIFront:
        """Start listening on a free port of 127.0.0.1.

        Returns:
            The front itself.

        Raises:
            RuntimeError: If it was already started.
        """
        if self._server is not None:
            raise RuntimeError("OpenAIFront is already started")
        server = _Server(("127.0.0.1", 0), _Handler)
        server.front = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="openai-front",
            daemon=True,
        )
        self._thread.start()
        logger.info("OpenAIFront on %s relaying to %s", self.base_url, self.upstream)
        return self

    def stop(self) -> None:
        """Stop listening (a relay in progress is cut when the process ends)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIFront:
        """Start the server."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server."""
        self.stop()

    @property
    def base_url(self) -> str:
        """The front's OpenAI base URL: ``http://127.0.0.1:PORT/v1``.

        Raises:
            RuntimeError: If the front is not started.
        """
        if self._server is None:
            raise RuntimeError("OpenAIFront is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # ---------------------------------------------------------------- test side

    def script_transcript(self, text: str) -> None:
        """Queue the transcript of a coming call (first in, first out).

        Args:
            text: What the next successful transcription not yet scripted answers.
        """
        with self._lock:
            self._scripted.append(text)

    def fail_next(self, status: int, times: int = 1, *, retry_after: int | None = None) -> None:
        """Make the next ``times`` transcription calls answer ``status`` with an OpenAI error.

        Args:
            status: The HTTP status (4xx or 5xx).
            times: How many calls fail.
            retry_after: Seconds for a ``Retry-After`` header, if any.

        Raises:
            ValueError: For a status below 400 or a non-positive ``times``.
        """
        if status < 400 or times < 1:
            raise ValueError("fail_next needs an error status (>= 400) and times >= 1")
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    def transcriptions(self) -> list[dict[str, Any]]:
        """Every transcription call, oldest first (refused and failed ones included).

        Returns:
            Dicts with ``model``, ``filename``, ``content_type``, ``size``, ``data`` (the audio
            bytes), ``language``, ``prompt``, ``response_format`` (None when not sent),
            ``authorization`` (the header, None without it), ``status`` (answered), ``text``
            (the transcript answered, None for an error) and ``at`` (``time.time()``).
        """
        with self._lock:
            return [dict(record) for record in self._records]

    def reset(self) -> None:
        """Forget scripted transcripts, injected failures and recorded calls."""
        with self._lock:
            self._clear()

    # ---------------------------------------------------------------- internals

    def _clear(self) -> None:
        self._scripted: collections.deque[str] = collections.deque()
        self._failures: collections.deque[tuple[int, int | None]] = collections.deque()
        self._records: list[dict[str, Any]] = []

    def _upstream_target(self, target: str) -> str:
        """The upstream path (and query) of a request target of the front."""
        split = urlsplit(target)
        path = split.path
        if path == "/v1" or path.startswith("/v1/"):
            path = self._upstream_base + path[len("/v1") :]
        return path + (f"?{split.query}" if split.query else "")

    def _upstream_connection(self) -> http.client.HTTPConnection:
        cls = (
            http.client.HTTPSConnection
            if self._upstream_scheme == "https"
            else http.client.HTTPConnection
        )
        return cls(self._upstream_netloc, timeout=_UPSTREAM_TIMEOUT)

    def _transcribe(
        self, content_type: str, body: bytes, authorization: str | None
    ) -> tuple[int, str, bytes, dict[str, str]]:
        """Answer one transcription call: (status, content type, body, extra headers)."""
        record: dict[str, Any] = {
            "model": None,
            "filename": None,
            "content_type": None,
            "size": 0,
            "data": b"",
            "language": None,
            "prompt": None,
            "response_format": None,
            "authorization": authorization,
            "status": 200,
            "text": None,
            "at": time.time(),
        }
        try:
            fields, files = _parse_multipart(content_type, body)
        except ValueError as exc:
            return self._refuse(record, 400, str(exc), None)
        audio = files.get("file")
        record.update(
            model=fields.get("model"),
            language=fields.get("language"),
            prompt=fields.get("prompt"),
            response_format=fields.get("response_format"),
        )
        if audio is not None:
            record.update(
                filename=audio[0], content_type=audio[1], size=len(audio[2]), data=audio[2]
            )
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return self._refuse(record, status, None, None, headers)
        if audio is None:
            return self._refuse(record, 400, "Missing required parameter: 'file'.", "file")
        if not record["model"]:
            return self._refuse(record, 400, "you must provide a model parameter", "model")
        response_format = record["response_format"] or "json"
        if response_format not in _RESPONSE_FORMATS:
            return self._refuse(
                record,
                400,
                f"The fake supports response_format {sorted(_RESPONSE_FORMATS)}, "
                f"not {response_format!r}.",
                "response_format",
            )
        with self._lock:
            scripted = self._scripted.popleft() if self._scripted else None
        data = audio[2]
        if scripted is not None:
            text = scripted
        elif data.startswith(SPEECH_PREFIX):
            text = data[len(SPEECH_PREFIX) :].decode("utf-8", errors="replace")
        else:
            text = ""
        record["text"] = text
        self._record(record)
        if response_format == "text":
            return 200, "text/plain; charset=utf-8", text.encode(), {}
        answer: dict[str, Any] = {"text": text}
        if response_format == "verbose_json":
            answer = {
                "task": "transcribe",
                "language": record["language"] or "english",
                "duration": 0.0,
                "text": text,
                "segments": [],
            }
        return 200, "application/json", json.dumps(answer, ensure_ascii=False).encode(), {}

    def _refuse(
        self,
        record: dict[str, Any],
        status: int,
        message: str | None,
        param: str | None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str, bytes, dict[str, str]]:
        kind, code, default = _ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
        )
        error = {"message": message or default, "type": kind, "param": param, "code": code}
        record["status"] = status
        self._record(record)
        logger.info("OpenAIFront: transcription answered %s: %s", status, error["message"])
        return status, "application/json", json.dumps({"error": error}).encode(), headers or {}

    def _record(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.append(record)


class _Handler(BaseHTTPRequestHandler):
    """Answers transcriptions through the front and relays every other request upstream."""

    server_version = "OpenAIFront/1.0"
    protocol_version = "HTTP/1.1"  # keep-alive: urllib3 pools reuse connections
    disable_nagle_algorithm = True  # headers and body are separate writes

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        front: OpenAIFront = self.server.front  # type: ignore[attr-defined]
        try:
            body = self._read_body()
        except ValueError as exc:
            self._answer(400, "application/json", _error_body(str(exc)))
            self.close_connection = True
            return
        if self.command == "POST" and urlsplit(self.path).path == "/v1" + TRANSCRIPTIONS_PATH:
            try:
                status, content_type, data, headers = front._transcribe(
                    self.headers.get("Content-Type", ""), body, self.headers.get("Authorization")
                )
            except Exception:  # a bug of the fake must not look like a hung server
                logger.exception("OpenAIFront failed to answer a transcription")
                status, content_type, data, headers = 500, "application/json", _error_body(), {}
            self._answer(status, content_type, data, headers)
            return
        self._relay(front, body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            pieces = []
            while True:
                size_line = self.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError as exc:
                    raise ValueError("malformed chunked request body") from exc
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(pieces)
                pieces.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _relay(self, front: OpenAIFront, body: bytes) -> None:
        """Send the request upstream and relay its answer, streaming a chunked or SSE body."""
        target = front._upstream_target(self.path)
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in _DROPPED_REQUEST_HEADERS
        }
        connection = front._upstream_connection()
        try:
            try:
                connection.request(
                    self.command,
                    target,
                    body=body if body or self.command in ("POST", "PUT", "PATCH") else None,
                    headers=headers,
                )
                response = connection.getresponse()
            except OSError as exc:  # refused, reset, timed out
                logger.warning("OpenAIFront: upstream %s failed: %r", target, exc)
                self._answer(502, "application/json", _error_body(f"upstream failed: {exc!r}"))
                return
            content_type = response.getheader("Content-Type", "")
            streamed = (
                response.getheader("Content-Length") is None
                or content_type.startswith("text/event-stream")
            ) and response.status not in (204, 304)
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in _DROPPED_ANSWER_HEADERS:
                    self.send_header(name, value)
            try:
                if streamed:
                    self._relay_chunks(response)
                else:
                    data = response.read()
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                logger.debug("OpenAIFront: the client left during %s", target)
                self.close_connection = True
            except (OSError, http.client.HTTPException) as exc:
                # The upstream broke off mid-answer: so does the front (no clean last chunk).
                logger.info("OpenAIFront: upstream answer to %s broke off: %r", target, exc)
                self.close_connection = True
            self.log_request(response.status)
        finally:
            connection.close()

    def _relay_chunks(self, response: http.client.HTTPResponse) -> None:
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        while True:
            piece = response.read1(65536)
            if not piece:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _answer(
        self, status: int, content_type: str, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("OpenAIFront: the client left before the answer to %s", self.path)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Route http.server's access log to logging."""
        logger.debug("OpenAIFront %s - " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    front: OpenAIFront


def _error_body(message: str = "The fake failed; see the test log.") -> bytes:
    error = {"message": message, "type": "server_error", "param": None, "code": None}
    return json.dumps({"error": error}).encode()


def _parse_multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    """Read a ``multipart/form-data`` body, byte for byte.

    Returns:
        (text fields, files as ``name -> (filename, content type, bytes)``).

    Raises:
        ValueError: If the body is not multipart/form-data with a boundary.
    """
    header = BytesHeaderParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    )
    boundary = header.get_boundary() if header.get_content_type() == "multipart/form-data" else None
    if not boundary:
        raise ValueError("Expected a multipart/form-data body with a boundary.")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    sections = (b"\r\n" + body).split(delimiter)
    if len(sections) < 2:
        raise ValueError("The multipart body has no parts.")
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    for section in sections[1:]:
        if section.startswith(b"--"):  # the close delimiter
            break
        _, _, section = section.partition(b"\r\n")  # the rest of the delimiter line
        head, separator, data = section.partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("A multipart part has no blank line after its headers.")
        part = BytesHeaderParser(policy=HTTP).parsebytes(head + b"\r\n\r\n")
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = part.get_filename()
        if filename is None:
            fields[name] = data.decode("utf-8", errors="replace")
        else:
            files[name] = (
                filename,
                str(part.get("Content-Type") or "application/octet-stream"),
                data,
            )
    return fields, files
