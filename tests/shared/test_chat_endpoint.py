"""The Chat Completions client against llmock and closed ports: answers and every error kind."""

from __future__ import annotations

import threading

import pytest

from shared.llm import (
    Cancel,
    GenerationStopped,
    LLMClients,
    LLMConnectionError,
    LLMHTTPError,
    LLMTimeout,
)
from tests.fakes.llm import LLMock
from tests.fakes.slow_llm import SlowLLM
from tests.support import free_port, wait_until

ASK = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture()
def llm(llm_server: str) -> LLMock:
    """Llmock with nothing scripted."""
    mock = LLMock(llm_server)
    mock.reset()
    return mock


def test_an_answer_comes_back_with_usage(llm: LLMock) -> None:
    """A completion with a choice and usage, twice over the pooled connection; key sent."""
    client = LLMClients(timeout=10).get(llm.base_url, "sk-test")
    for _ in range(2):
        completion = client.stream(ASK)
        assert completion["text"] and completion["finish_reason"]
        assert completion["usage"]["total_tokens"] > 0
    body = llm.chat_requests()[-1]["body"]
    assert body["messages"] == ASK["messages"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_a_slow_server_times_out(llm: LLMock) -> None:
    """No answer within the timeout: ``LLMTimeout`` (retried by the router)."""
    llm.script({"type": "delay", "seconds": 3})
    with pytest.raises(LLMTimeout):
        LLMClients(timeout=0.5).get(llm.base_url, "sk-test").stream(ASK)


def test_an_unreachable_server_is_a_connection_error() -> None:
    """Nobody listening: ``LLMConnectionError`` that is not a timeout."""
    client = LLMClients(timeout=2).get(f"http://127.0.0.1:{free_port()}/v1", "sk-test")
    with pytest.raises(LLMConnectionError) as caught:
        client.stream(ASK)
    assert not isinstance(caught.value, LLMTimeout)


def test_an_http_error_keeps_status_message_and_headers(llm: LLMock) -> None:
    """A 429 arrives with its status, the body's message and the headers."""
    llm.script({"type": "fail", "status": 429, "times": 1})
    with pytest.raises(LLMHTTPError) as caught:
        LLMClients(timeout=5).get(llm.base_url, "sk-test").stream(ASK)
    assert caught.value.status == 429 and isinstance(caught.value.headers, dict)
    assert "HTTP 429" in str(caught.value)


@pytest.mark.parametrize("kind", ["disconnect", "truncate", "malformed"])
def test_a_broken_stream_is_an_error_not_an_answer(llm: LLMock, kind: str) -> None:
    """A dropped connection, a stream cut short, a corrupt chunk: retryable errors, no answer."""
    llm.script(
        {"type": "reply", "text": "one two three four five six seven eight nine ten"},
        {"type": "stream_fault", "kind": kind, "after_chunks": 2},
    )
    with pytest.raises(LLMConnectionError):
        LLMClients(timeout=5).get(llm.base_url, "sk-test").stream(ASK)


def test_the_text_grows_chunk_by_chunk() -> None:
    """The watcher sees the whole text so far as it grows; the last view is the answer."""
    with SlowLLM(delay=0, chunks=5, chunk_delay=0.05) as server:
        seen: list[str] = []
        completion = LLMClients(timeout=5).get(server.base_url, "").stream(ASK, seen.append)
    assert len(seen) >= 3 and all(b.startswith(a) for a, b in zip(seen, seen[1:], strict=False))
    assert seen[-1] == completion["text"] == "slow answer to hi"


def test_streams_reuse_one_keep_alive_connection() -> None:
    """Read to the end after [DONE], a stream leaves its connection to the next call."""
    with SlowLLM(delay=0, chunks=5) as server:
        client = LLMClients(timeout=5).get(server.base_url, "")
        texts = [client.stream(ASK)["text"] for _ in range(3)]
        assert texts == ["slow answer to hi"] * 3
        assert server.connections == 1


def test_an_error_inside_the_stream_keeps_its_status() -> None:
    """``data: {"error": …}`` with HTTP 200 is the provider's error, not a broken stream."""
    from shared.llm import _event

    with pytest.raises(LLMHTTPError) as caught:
        _event(b'{"error": {"code": 429, "message": "slow down"}}', None, {})
    assert caught.value.status == 429 and "slow down" in str(caught.value)


def test_cancel_stops_the_stream_and_closes_the_connection() -> None:
    """A cancel from another thread ends the call with the text so far; the server sees it go."""
    with SlowLLM(delay=0.1, chunks=20, chunk_delay=0.3) as server:
        cancel = Cancel()
        seen: list[str] = []

        def watch(text: str) -> None:
            seen.append(text)
            if len(seen) == 2:
                threading.Thread(target=cancel.cancel).start()

        client = LLMClients(timeout=5).get(server.base_url, "")
        with pytest.raises(GenerationStopped) as caught:
            client.stream(ASK, watch, cancel)
        assert caught.value.text == seen[-1] and 2 <= len(seen) < 20
        wait_until(lambda: server.cancelled == 1, timeout=10, what="the server to see the stop")
