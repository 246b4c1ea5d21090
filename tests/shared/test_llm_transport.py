"""The OpenAI SDK over the urllib3 transport, against llmock: answers, errors, streams."""

from __future__ import annotations

import openai
import pytest

from shared.llm import LLMClients
from tests.fakes.llm import LLMock
from tests.support import free_port


@pytest.fixture()
def llm(llm_server: str) -> LLMock:
    """Llmock with nothing scripted."""
    mock = LLMock(llm_server)
    mock.reset()
    return mock


def test_an_answer_comes_back(llm: LLMock) -> None:
    """A plain completion, with usage, through the pooled connection (twice: reuse)."""
    client = LLMClients(timeout=10).get(llm.base_url, "sk-test")
    for _ in range(2):
        completion = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        assert completion.choices[0].message.content and completion.usage.total_tokens > 0


def test_a_slow_server_times_out_as_the_sdk_says(llm: LLMock) -> None:
    """A read timeout surfaces as ``APITimeoutError`` (which the router retries)."""
    llm.script({"type": "delay", "seconds": 3})
    client = LLMClients(timeout=0.5).get(llm.base_url, "sk-test")
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


def test_an_unreachable_server_is_a_connection_error() -> None:
    """Nobody listening: ``APIConnectionError``."""
    client = LLMClients(timeout=2).get(f"http://127.0.0.1:{free_port()}/v1", "sk-test")
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


def test_an_http_error_keeps_status_and_headers(llm: LLMock) -> None:
    """A 429 arrives as ``RateLimitError`` with its status code."""
    llm.script({"type": "fail", "status": 429, "times": 1})
    client = LLMClients(timeout=5).get(llm.base_url, "sk-test")
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 429


def test_a_stream_arrives_chunk_by_chunk(llm: LLMock) -> None:
    """Server-sent events stream through the transport and end with usage."""
    client = LLMClients(timeout=10).get(llm.base_url, "sk-test")
    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "tell me a story"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 1 and text
    assert chunks[-1].usage is not None
