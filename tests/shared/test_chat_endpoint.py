"""The Chat Completions client against llmock and closed ports: answers and every error kind."""

from __future__ import annotations

import pytest

from shared.llm import LLMClients, LLMConnectionError, LLMHTTPError, LLMTimeout
from tests.fakes.llm import LLMock
from tests.support import free_port

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
        completion = client.complete(ASK)
        assert completion["choices"][0]["message"]["content"]
        assert completion["usage"]["total_tokens"] > 0
    assert llm.chat_requests()[-1]["body"]["messages"] == ASK["messages"]


def test_a_slow_server_times_out(llm: LLMock) -> None:
    """No answer within the timeout: ``LLMTimeout`` (retried by the router)."""
    llm.script({"type": "delay", "seconds": 3})
    with pytest.raises(LLMTimeout):
        LLMClients(timeout=0.5).get(llm.base_url, "sk-test").complete(ASK)


def test_an_unreachable_server_is_a_connection_error() -> None:
    """Nobody listening: ``LLMConnectionError`` that is not a timeout."""
    client = LLMClients(timeout=2).get(f"http://127.0.0.1:{free_port()}/v1", "sk-test")
    with pytest.raises(LLMConnectionError) as caught:
        client.complete(ASK)
    assert not isinstance(caught.value, LLMTimeout)


def test_an_http_error_keeps_status_message_and_headers(llm: LLMock) -> None:
    """A 429 arrives with its status, the body's message and the headers."""
    llm.script({"type": "fail", "status": 429, "times": 1})
    with pytest.raises(LLMHTTPError) as caught:
        LLMClients(timeout=5).get(llm.base_url, "sk-test").complete(ASK)
    assert caught.value.status == 429 and isinstance(caught.value.headers, dict)
    assert "HTTP 429" in str(caught.value)
