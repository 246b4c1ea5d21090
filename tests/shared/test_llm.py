"""The LLM router's pure parts: prompt assembly and trimming, retry classification."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shared.llm import (
    LLMConnectionError,
    LLMHTTPError,
    LLMTimeout,
    ModelSpec,
    Turn,
    build_messages,
    is_retryable,
    retry_after_seconds,
)


def _spec(context_window: int | None = None, max_tokens: int | None = None) -> ModelSpec:
    return ModelSpec(
        id=1, name="m", model="m", base_url="http://127.0.0.1:1/v1", api_key="k",
        temperature=None, max_tokens=max_tokens, context_window=context_window,
        input_price_per_1m=Decimal(0), output_price_per_1m=Decimal(0),
    )  # fmt: skip


def test_messages_are_system_history_then_request() -> None:
    """System prompt first, earlier turns in order, the new request last."""
    turns = [Turn("q1", "a1"), Turn("q2", "a2")]
    messages = build_messages("be brief", turns, "q3", _spec())
    assert messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "q3"},
    ]


def test_empty_system_prompt_is_left_out() -> None:
    """No system message when the mode has no prompt."""
    assert build_messages("", [], "hi", _spec()) == [{"role": "user", "content": "hi"}]


def test_history_is_trimmed_from_the_oldest_whole_turns() -> None:
    """Over budget, the oldest turns go first, and never half a turn."""
    turns = [Turn(f"question {i} " + "x" * 300, f"answer {i} " + "y" * 300) for i in range(20)]
    messages = build_messages("sys", turns, "now", _spec(context_window=1200, max_tokens=200))
    body = messages[1:-1]
    assert 0 < len(body) < 40
    assert len(body) % 2 == 0
    assert [m["role"] for m in body] == ["user", "assistant"] * (len(body) // 2)
    assert body[-1]["content"].startswith("answer 19"), "the newest turns are kept"


def _status_error(status: int, headers: dict[str, str] | None = None) -> LLMHTTPError:
    return LLMHTTPError(status, "boom", headers or {})


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(429, True), (500, True), (503, True), (408, True), (400, False), (401, False), (404, False)],
)
def test_which_status_codes_are_retried(status: int, retryable: bool) -> None:
    """429, 408 and 5xx are retried; client errors are not."""
    assert is_retryable(_status_error(status)) is retryable


def test_connection_and_timeout_errors_are_retried() -> None:
    """Network trouble is worth another attempt."""
    assert is_retryable(LLMConnectionError("refused"))
    assert is_retryable(LLMTimeout("slow"))
    assert not is_retryable(ValueError("bug"))


def test_retry_after_is_read_from_headers() -> None:
    """Retry-After (seconds) and retry-after-ms are both understood, in any case."""
    assert retry_after_seconds(_status_error(429, {"Retry-After": "2"})) == 2.0
    assert retry_after_seconds(_status_error(429, {"retry-after-ms": "1500"})) == 1.5
    assert retry_after_seconds(_status_error(429)) is None
    assert retry_after_seconds(ValueError()) is None


def test_spec_never_shows_its_key() -> None:
    """The repr of a model snapshot has no API key."""
    assert "k'" not in repr(_spec()) and "api_key" not in repr(_spec())
