"""The speech-to-text front: transcriptions answered here, everything else relayed to llmock."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3

from tests.fakes.llm import LLMock
from tests.fakes.openai_front import OpenAIFront
from tests.support import free_port

# Generous bound so that a broken front fails instead of hanging the suite.
HANG_GUARD = 15.0
AUDIO = bytes(range(256)) * 8 + b"\r\n--not-a-boundary\r\n\r\n\r\r\n\n"


@pytest.fixture()
def llm(llm_server: str) -> LLMock:
    """Llmock with nothing scripted."""
    mock = LLMock(llm_server)
    mock.reset()
    return mock


@pytest.fixture()
def front(llm: LLMock) -> Iterator[OpenAIFront]:
    """A front relaying to llmock."""
    with OpenAIFront(llm.base_url) as server:
        yield server


@pytest.fixture()
def http() -> Iterator[urllib3.PoolManager]:
    """A urllib3 pool like the product's (keep-alive, no proxies)."""
    pool = urllib3.PoolManager(maxsize=1, timeout=urllib3.Timeout(total=HANG_GUARD), retries=False)
    yield pool
    pool.clear()


def transcribe(
    http: urllib3.PoolManager,
    front: OpenAIFront,
    audio: bytes | None = AUDIO,
    *,
    api_key: str = "sk-test",
    **fields: str,
) -> urllib3.BaseHTTPResponse:
    """POST a transcription the way the product does (urllib3's multipart encoder)."""
    form: dict[str, Any] = {"model": "whisper-1", **fields}
    if audio is not None:
        form["file"] = ("voice.oga", audio, "audio/ogg")
    body, content_type = urllib3.encode_multipart_formdata(
        {k: v for k, v in form.items() if v is not None}
    )
    return http.request(
        "POST",
        front.base_url + "/audio/transcriptions",
        body=body,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {api_key}"},
    )


# ------------------------------------------------------------------------------ transcriptions


def test_scripted_transcripts_then_speech_then_silence(
    front: OpenAIFront, http: urllib3.PoolManager
) -> None:
    """Scripted texts go first, in order; then the text after SPEECH:; else an empty text."""
    front.script_transcript("first")
    front.script_transcript("second")

    answers = [
        transcribe(http, front),
        transcribe(http, front, b"SPEECH:ignored while scripted"),
        transcribe(http, front, "SPEECH:какая погода? 🌧".encode()),
        transcribe(http, front),
    ]

    assert [a.status for a in answers] == [200] * 4
    assert [a.headers["Content-Type"] for a in answers] == ["application/json"] * 4
    assert [a.json() for a in answers] == [
        {"text": "first"},
        {"text": "second"},
        {"text": "какая погода? 🌧"},
        {"text": ""},
    ]
    pool = http.connection_from_url(front.base_url)
    assert pool.num_connections == 1  # keep-alive: one connection served all four


def test_response_formats(front: OpenAIFront, http: urllib3.PoolManager) -> None:
    """``text`` answers text/plain; ``verbose_json`` has the text; others are refused."""
    text = transcribe(http, front, b"SPEECH:plain", response_format="text")
    verbose = transcribe(http, front, b"SPEECH:verbose", response_format="verbose_json")
    srt = transcribe(http, front, b"SPEECH:subtitles", response_format="srt")

    assert text.status == 200
    assert text.headers["Content-Type"].startswith("text/plain")
    assert text.data.decode() == "plain"
    assert verbose.json()["text"] == "verbose"
    assert srt.status == 400
    assert srt.json()["error"]["param"] == "response_format"


def test_calls_are_recorded(front: OpenAIFront, http: urllib3.PoolManager) -> None:
    """Each call keeps its fields, the exact audio bytes and the Authorization header."""
    transcribe(http, front, language="ru", prompt="weather words", api_key="sk-voice")

    [record] = front.transcriptions()

    assert record["model"] == "whisper-1"
    assert (record["filename"], record["content_type"]) == ("voice.oga", "audio/ogg")
    assert record["data"] == AUDIO
    assert record["size"] == len(AUDIO)
    assert (record["language"], record["prompt"]) == ("ru", "weather words")
    assert record["response_format"] is None
    assert record["authorization"] == "Bearer sk-voice"
    assert (record["status"], record["text"]) == (200, "")


def test_fail_next(front: OpenAIFront, http: urllib3.PoolManager) -> None:
    """Injected failures answer OpenAI errors first; the scripted transcript waits for them."""
    front.script_transcript("after the failures")
    front.fail_next(429, times=2, retry_after=3)
    front.fail_next(500)

    answers = [transcribe(http, front) for _ in range(4)]

    assert [a.status for a in answers] == [429, 429, 500, 200]
    assert answers[0].headers["Retry-After"] == "3"
    assert answers[0].json()["error"]["code"] == "rate_limit_exceeded"
    assert answers[2].json()["error"]["type"] == "server_error"
    assert "Retry-After" not in answers[2].headers
    assert answers[3].json() == {"text": "after the failures"}
    assert [r["status"] for r in front.transcriptions()] == [429, 429, 500, 200]
    with pytest.raises(ValueError):
        front.fail_next(200)


def test_missing_fields_and_bad_bodies(front: OpenAIFront, http: urllib3.PoolManager) -> None:
    """No file, no model or no multipart body: 400 with an OpenAI-style error."""
    no_file = transcribe(http, front, None)
    no_model = transcribe(http, front, model=None)  # type: ignore[arg-type]
    not_multipart = http.request(
        "POST", front.base_url + "/audio/transcriptions", json={"model": "whisper-1"}
    )

    assert no_file.status == 400
    assert no_file.json()["error"]["param"] == "file"
    assert no_file.json()["error"]["type"] == "invalid_request_error"
    assert no_model.status == 400
    assert no_model.json()["error"]["param"] == "model"
    assert not_multipart.status == 400
    assert "multipart" in not_multipart.json()["error"]["message"]
    assert [r["status"] for r in front.transcriptions()] == [400, 400, 400]


def test_reset_forgets_everything(front: OpenAIFront, http: urllib3.PoolManager) -> None:
    """Reset drops scripted texts, failures and records."""
    front.script_transcript("never")
    front.fail_next(500)
    transcribe(http, front)
    front.script_transcript("dropped")
    front.fail_next(503)

    front.reset()

    assert transcribe(http, front, b"SPEECH:fresh").json() == {"text": "fresh"}
    assert len(front.transcriptions()) == 1


# ------------------------------------------------------------------------------ relay to llmock


def test_a_chat_completion_is_relayed(
    front: OpenAIFront, llm: LLMock, http: urllib3.PoolManager
) -> None:
    """A plain completion goes to llmock and comes back unchanged; its admin works too."""
    LLMock(front.base_url).script({"type": "reply", "text": "hello through the front"})
    request = {"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]}

    answer = http.request(
        "POST",
        front.base_url + "/chat/completions",
        json=request,
        headers={"Authorization": "Bearer sk-test"},
    )
    models = http.request("GET", front.base_url + "/models")

    assert answer.status == 200
    assert answer.json()["choices"][0]["message"]["content"] == "hello through the front"
    assert models.status == llm_status(llm, "GET", "/models")
    assert llm.chat_requests()[-1]["body"] == request
    assert http.connection_from_url(front.base_url).num_connections == 1


def test_a_streamed_chat_completion_is_relayed(
    front: OpenAIFront, llm: LLMock, http: urllib3.PoolManager
) -> None:
    """An SSE answer comes through chunked, event by event, up to ``[DONE]``."""
    llm.script({"type": "reply", "text": "one two three four five"})
    request = {
        "model": "gpt-mock",
        "messages": [{"role": "user", "content": "count"}],
        "stream": True,
    }

    response = http.request(
        "POST", front.base_url + "/chat/completions", json=request, preload_content=False
    )
    events = read_events(response)
    again = http.request("POST", front.base_url + "/chat/completions", json=request)

    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert events[-1] == "[DONE]"
    text = "".join(
        (json.loads(e)["choices"] or [{}])[0].get("delta", {}).get("content") or ""
        for e in events[:-1]
    )
    assert text == "one two three four five"
    assert len(events) > 3
    assert again.status == 200 and again.data.endswith(b"data: [DONE]\n\n")
    assert http.connection_from_url(front.base_url).num_connections == 1


def llm_status(llm: LLMock, method: str, path: str) -> int:
    """What llmock itself answers to a request (to compare with the relayed answer)."""
    return urllib3.request(method, llm.base_url + path, timeout=HANG_GUARD).status


def read_events(response: urllib3.BaseHTTPResponse) -> list[str]:
    """The ``data:`` payloads of an SSE answer, read as they come."""
    buffer = b""
    for piece in response.stream(1024):
        buffer += piece
    response.release_conn()
    return [
        line.removeprefix(b"data: ").decode()
        for line in buffer.split(b"\n")
        if line.startswith(b"data: ")
    ]


# ------------------------------------------------------------------------------ relay details


class Upstream:
    """A tiny upstream with the base ``/api/v1``; records requests; ``…/gated`` streams.

    The gated stream sends its first event, waits for ``gate``, then sends the second.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.gate = threading.Event()
        self.gate_timed_out = False
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def do_DELETE(self) -> None:
                self._serve()

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": self.headers,
                        "body": body,
                    }
                )
                if self.path.endswith("/gated"):
                    self._gated()
                    return
                data = json.dumps({"seen": self.path}).encode()
                self.send_response(418, "I'm a teapot")
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Upstream", "yes")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _gated(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._chunk(b"data: first\n\n")
                upstream.gate_timed_out = not upstream.gate.wait(HANG_GUARD)
                self._chunk(b"data: second\n\n")
                self._chunk(b"")

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/api/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture()
def upstream() -> Iterator[Upstream]:
    """A recording upstream."""
    server = Upstream()
    yield server
    server.close()


def test_requests_are_forwarded_unchanged(upstream: Upstream, http: urllib3.PoolManager) -> None:
    """Method, path below the base, query, headers and body go up; status and headers come back."""
    # The upstream's base is /api/v1: the front maps its /v1 there, other paths to the root.
    with OpenAIFront(upstream.base_url) as front:
        post = http.request(
            "POST",
            front.base_url + "/things?limit=2&x=%C3%A9",
            body=b"\x00raw body\xff",
            headers={"Authorization": "Bearer sk-up", "X-Custom": "kept"},
        )
        get = http.request("GET", front.base_url.removesuffix("/v1") + "/health")
        delete = http.request("DELETE", front.base_url + "/things/1")

    assert post.status == 418
    assert post.headers["X-Upstream"] == "yes"
    assert post.json() == {"seen": "/api/v1/things?limit=2&x=%C3%A9"}
    sent = upstream.requests[0]
    assert sent["method"] == "POST"
    assert sent["body"] == b"\x00raw body\xff"
    assert sent["headers"]["Authorization"] == "Bearer sk-up"
    assert sent["headers"]["X-Custom"] == "kept"
    assert sent["headers"].get_all("Host") == [upstream.base_url.split("/")[2]]
    assert [(r["method"], r["path"]) for r in upstream.requests[1:]] == [
        ("GET", "/health"),
        ("DELETE", "/api/v1/things/1"),
    ]
    assert (get.status, delete.status) == (418, 418)


def test_a_stream_is_relayed_as_it_arrives(upstream: Upstream, http: urllib3.PoolManager) -> None:
    """The client reads the first event while the upstream still holds back the second."""
    with OpenAIFront(upstream.base_url) as front:
        response = http.request("GET", front.base_url + "/gated", preload_content=False)
        first = b""
        while len(first) < len(b"data: first\n\n"):
            first += response.read1(1024)
        upstream.gate.set()  # only now does the upstream send the rest
        rest = response.read()

    assert not upstream.gate_timed_out  # the first event came through before the gate opened
    assert first == b"data: first\n\n"
    assert rest == b"data: second\n\n"
    assert response.headers["Transfer-Encoding"] == "chunked"


def test_an_unreachable_upstream_is_a_502(http: urllib3.PoolManager) -> None:
    """Nobody listening upstream: 502 with an OpenAI-style error."""
    with OpenAIFront(f"http://127.0.0.1:{free_port()}/v1") as front:
        answer = http.request("GET", front.base_url + "/models")

    assert answer.status == 502
    assert answer.json()["error"]["type"] == "server_error"
