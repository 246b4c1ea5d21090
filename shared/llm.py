"""The LLM router: prompt assembly, one client per endpoint, retries, fallback.

The product talks to every provider through the OpenAI-compatible Chat Completions API, spoken
directly over one urllib3 connection pool per process (:class:`ChatEndpoint`; why not the SDK:
see its docstring). Retries live here only: a call is retried on 429, 408/409, 5xx, timeouts
and connection errors, with exponential backoff and jitter that honours ``Retry-After``, bounded
by attempts and by a deadline; then the model's fallback (if any) gets the same treatment.

Nothing here touches the database: callers pass :class:`ModelSpec` snapshots and release their
DB session before calling, because an LLM call can take a minute.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import urllib3
from flask import Flask, current_app
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from shared.config import Config
from shared.models import LLMModel
from shared.services.crypto import SecretUnreadable, decrypt

logger = logging.getLogger(__name__)

#: Keep-alive connections per LLM host (calls beyond it use short-lived extra connections).
POOL_MAXSIZE = 256

#: Context size assumed when a model does not declare one (tokens).
DEFAULT_CONTEXT_WINDOW = 16_000
#: Tokens kept free for the answer when a model does not set ``max_tokens``.
DEFAULT_ANSWER_RESERVE = 1_024
#: Rough characters per token for budgeting history (no tokenizer download is possible offline;
#: real usage always comes from the API's response).
CHARS_PER_TOKEN = 3


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a dialog, as the LLM sees it."""

    request: str
    response: str


class LLMError(RuntimeError):
    """The model(s) could not produce an answer. The message is for logs and admins only."""


@dataclass(frozen=True)
class ModelSpec:
    """A detached snapshot of an :class:`LLMModel`, safe to use without a DB session.

    Attributes:
        id: The model's row id.
        name: Display name.
        model: Provider model id.
        base_url: OpenAI-compatible base URL.
        api_key: Decrypted key (never logged).
        temperature: Sampling temperature, or None for the provider default.
        max_tokens: Answer limit, or None.
        context_window: Context size in tokens, or None for the default.
        input_price_per_1m: USD per million prompt tokens.
        output_price_per_1m: USD per million completion tokens.
        fallback: The model to try when this one gives up.
        key_error: Why the stored key could not be read (``SECRET_KEY`` changed), else None;
            such a model answers nothing and its requests fail with that reason.
    """

    id: int
    name: str
    model: str
    base_url: str
    api_key: str
    temperature: float | None
    max_tokens: int | None
    context_window: int | None
    input_price_per_1m: Decimal
    output_price_per_1m: Decimal
    fallback: ModelSpec | None = None
    key_error: str | None = None

    @classmethod
    def from_model(cls, model: LLMModel, *, with_fallback: bool = True) -> ModelSpec:
        """Snapshot a model row (decrypting its key), with its fallback one level deep.

        Args:
            model: The row.
            with_fallback: Also snapshot ``model.fallback`` when it is enabled.

        Returns:
            The snapshot.
        """
        fallback = model.fallback if with_fallback else None
        api_key, key_error = "", None
        if model.api_key_encrypted:
            try:
                api_key = decrypt(model.api_key_encrypted)
            except SecretUnreadable as exc:
                key_error = f"{model.name}: {exc}"
        return cls(
            id=model.id,
            name=model.name,
            model=model.model,
            base_url=model.base_url,
            api_key=api_key,
            key_error=key_error,
            temperature=model.temperature,
            max_tokens=model.max_tokens,
            context_window=model.context_window,
            input_price_per_1m=Decimal(model.input_price_per_1m or 0),
            output_price_per_1m=Decimal(model.output_price_per_1m or 0),
            fallback=(
                cls.from_model(fallback, with_fallback=False)
                if fallback is not None and fallback.enabled and fallback.id != model.id
                else None
            ),
        )

    def __repr__(self) -> str:
        """Never show the key."""
        return f"ModelSpec(id={self.id}, name={self.name!r}, model={self.model!r})"


@dataclass(frozen=True)
class ChatResult:
    """An answer with the usage the API reported.

    Attributes:
        text: The answer.
        model: The model that answered (the fallback, if the primary gave up).
        prompt_tokens: From the API's ``usage``.
        completion_tokens: From the API's ``usage``.
        finish_reason: ``stop``, ``length``, …
        latency_ms: Time spent, retries and fallback included.
    """

    text: str
    model: ModelSpec
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None
    latency_ms: int


def estimate_tokens(text: str) -> int:
    """Rough token count used only for trimming history to the context budget."""
    return len(text) // CHARS_PER_TOKEN + 4


def build_messages(
    system_prompt: str | None, turns: list[Turn], request: str, model: ModelSpec
) -> list[dict[str, str]]:
    """Assemble the Chat Completions messages: system prompt, earlier turns, the new request.

    Earlier turns are dropped from the oldest when they would not fit the model's context
    budget; a turn is always kept or dropped whole (never half a turn).

    Args:
        system_prompt: The mode's prompt (omitted when empty).
        turns: The dialog's earlier turns, oldest first.
        request: The new user message.
        model: The model (its context window and answer reserve set the budget).

    Returns:
        The ``messages`` list.
    """
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    budget = (model.context_window or DEFAULT_CONTEXT_WINDOW) - (
        model.max_tokens or DEFAULT_ANSWER_RESERVE
    )
    budget -= estimate_tokens(system_prompt or "") + estimate_tokens(request)
    kept: list[Turn] = []
    for turn in reversed(turns):
        cost = estimate_tokens(turn.request) + estimate_tokens(turn.response)
        if cost > budget:
            break
        budget -= cost
        kept.append(turn)
    body = []
    for turn in reversed(kept):
        body.append({"role": "user", "content": turn.request})
        body.append({"role": "assistant", "content": turn.response})
    return [*head, *body, {"role": "user", "content": request}]


class LLMHTTPError(RuntimeError):
    """The endpoint answered with an HTTP error status.

    Args:
        status: The HTTP status.
        message: The error message from the body (``error.message``), or the reason phrase.
        headers: The response headers (``Retry-After`` …).
    """

    def __init__(self, status: int, message: str, headers: dict[str, str]) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.headers = headers


class LLMConnectionError(RuntimeError):
    """The endpoint could not be reached, or the connection broke."""


class LLMTimeout(LLMConnectionError):
    """The endpoint did not answer in time (``LLM_TIMEOUT``)."""


class ChatEndpoint:
    """One OpenAI-compatible endpoint and key: ``POST {base_url}/chat/completions``.

    The Chat Completions wire format is small and stable, so the product speaks it with
    urllib3 directly (as the Bot API): measured under gevent with 100 calls in flight, the
    official SDK cost about 3.7 ms of CPU per call — a quarter of the worker's CPU per reply —
    against under 1 ms here (docs/benchmarks.md). Nothing is retried here; the router retries.

    Args:
        pool: The process's connection pool (shared by all endpoints).
        base_url: The endpoint, e.g. ``https://api.openai.com/v1``.
        api_key: The key (sent as a bearer token; may be empty for local servers).
        timeout: Seconds to connect, and to wait for the answer.
    """

    def __init__(
        self, pool: urllib3.PoolManager, base_url: str, api_key: str, timeout: float
    ) -> None:
        self._pool = pool
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = urllib3.Timeout(connect=min(timeout, 10.0), read=timeout)

    def complete(self, params: dict[str, Any]) -> dict[str, Any]:
        """Ask for one completion.

        Args:
            params: The request body (``model``, ``messages`` …).

        Returns:
            The completion object.

        Raises:
            LLMHTTPError: On an HTTP error status.
            LLMTimeout: When the answer takes longer than the timeout.
            LLMConnectionError: When the endpoint cannot be reached or the connection breaks.
            LLMError: When the answer is not a completion with a choice.
        """
        try:
            response = self._pool.request(
                "POST",
                self._url,
                body=json.dumps(params).encode(),
                headers=self._headers,
                timeout=self._timeout,
            )
        except urllib3.exceptions.NewConnectionError as exc:  # before: it is a ConnectTimeout
            raise LLMConnectionError(f"cannot connect: {type(exc).__name__}") from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise LLMTimeout(f"no answer in time: {type(exc).__name__}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise LLMConnectionError(f"connection failed: {type(exc).__name__}") from exc
        if response.status >= 400:
            raise LLMHTTPError(response.status, _error_message(response), dict(response.headers))
        try:
            completion = json.loads(response.data)
            completion["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError("the API returned no usable choice") from exc
        return completion


def _error_message(response: urllib3.BaseHTTPResponse) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the reason phrase."""
    try:
        body = json.loads(response.data)
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
    except (ValueError, AttributeError):
        message = None
    return str(message or response.reason or "error")[:300]


class LLMClients:
    """One :class:`ChatEndpoint` per (base_url, api_key) over one connection pool per process.

    Lives in ``app.extensions["llm_clients"]``; thread- and greenlet-safe.

    Args:
        timeout: Seconds per HTTP request.
        pool_size: Keep-alive connections per host (calls beyond it open extra connections:
            an LLM call is long, it never waits for a free one).
    """

    def __init__(self, timeout: float, pool_size: int = POOL_MAXSIZE) -> None:
        self._timeout = timeout
        self._pool = urllib3.PoolManager(maxsize=pool_size, retries=False)
        self._clients: dict[tuple[str, str], ChatEndpoint] = {}
        self._lock = threading.Lock()

    def get(self, base_url: str, api_key: str) -> ChatEndpoint:
        """Return the endpoint client for a base URL and key, creating it once.

        Args:
            base_url: OpenAI-compatible base URL.
            api_key: The key (only its hash is used as the cache key).

        Returns:
            The client.
        """
        key = (base_url, hashlib.sha256(api_key.encode()).hexdigest())
        client = self._clients.get(key)
        if client is None:
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = ChatEndpoint(self._pool, base_url, api_key, self._timeout)
                    self._clients[key] = client
        return client


class LLMGateway:
    """Flask extension: the process's OpenAI clients (one per endpoint and key) and the router.

    Bound eagerly by :meth:`init_app` (``app.extensions["llm_clients"]``); nothing connects
    until the first call.
    """

    def init_app(self, app: Flask) -> None:
        """Create the app's client cache with ``LLM_TIMEOUT``.

        Args:
            app: The Flask app.
        """
        config = app.config["AI_ROUTER"]
        app.extensions["llm_clients"] = LLMClients(
            config.llm_timeout, max(POOL_MAXSIZE, config.worker_concurrency)
        )

    def chat(self, spec: ModelSpec, messages: list[dict[str, str]]) -> ChatResult:
        """Ask a model (retries, then its fallback) with the current app's settings.

        Args:
            spec: The model to ask first.
            messages: The Chat Completions messages.

        Returns:
            The answer with usage.

        Raises:
            LLMError: When every model gave up.
        """
        return chat(
            current_app.config["AI_ROUTER"], current_app.extensions["llm_clients"], spec, messages
        )


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed call may succeed if tried again.

    Args:
        exc: What the call raised.

    Returns:
        True for timeouts, connection errors, 408, 409, 429 and 5xx.
    """
    if isinstance(exc, LLMConnectionError):
        return True
    if isinstance(exc, LLMHTTPError):
        return exc.status in (408, 409, 429) or exc.status >= 500
    return False


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's requested wait (``retry-after-ms`` or ``retry-after`` seconds), if any."""
    headers = getattr(exc, "headers", None)
    if not headers:
        return None
    lowered = {name.lower(): value for name, value in headers.items()}
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lowered.get(header)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            continue
    return None


class _WaitRespectingRetryAfter:
    """Backoff: exponential with jitter, but never shorter than the server's Retry-After."""

    def __init__(self, max_wait: float) -> None:
        self._max_wait = max_wait
        self._backoff = wait_exponential_jitter(multiplier=0.5, max=max_wait, jitter=0.5)

    def __call__(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after_seconds(exc)
        return min(self._max_wait, max(backoff, asked or 0.0))


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    logger.warning(
        "LLM call failed, retrying attempt=%s wait=%.2fs error=%s",
        state.attempt_number,
        state.next_action.sleep if state.next_action else 0.0,
        type(exc).__name__,
    )


def _call_once(
    clients: LLMClients, spec: ModelSpec, messages: list[dict[str, str]]
) -> dict[str, Any]:
    """One Chat Completions request to a model's endpoint.

    Returns:
        The completion object.

    Raises:
        LLMHTTPError, LLMConnectionError, LLMError: See :meth:`ChatEndpoint.complete`.
    """
    params: dict[str, Any] = {"model": spec.model, "messages": messages}
    if spec.temperature is not None:
        params["temperature"] = spec.temperature
    if spec.max_tokens:
        params["max_tokens"] = spec.max_tokens
    return clients.get(spec.base_url, spec.api_key).complete(params)


def _call_with_retries(
    config: Config, clients: LLMClients, spec: ModelSpec, messages: list[dict[str, str]]
) -> dict[str, Any]:
    retrying = Retrying(
        stop=stop_after_attempt(config.llm_max_attempts)
        | stop_after_delay(config.llm_retry_deadline),
        wait=_WaitRespectingRetryAfter(config.llm_retry_max_wait),
        retry=retry_if_exception(is_retryable),
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(_call_once, clients, spec, messages)


def chat(
    config: Config, clients: LLMClients, spec: ModelSpec, messages: list[dict[str, str]]
) -> ChatResult:
    """Get one answer: the model with retries, then its fallback with retries.

    Args:
        config: Retry and timeout settings.
        clients: The process's client cache.
        spec: The model to ask first.
        messages: The Chat Completions messages.

    Returns:
        The answer with usage.

    Raises:
        LLMError: When every model gave up; the message names the models and errors.
    """
    started = time.monotonic()
    errors: list[str] = []
    candidate: ModelSpec | None = spec
    while candidate is not None:
        try:
            completion = _call_with_retries(config, clients, candidate, messages)
        except (LLMHTTPError, LLMConnectionError, LLMError) as exc:
            errors.append(f"{candidate.name}: {describe_error(exc)}")
            logger.warning("LLM model gave up model=%s error=%s", candidate.name, errors[-1])
            candidate = candidate.fallback
            continue
        usage = completion.get("usage") or {}
        choice = completion["choices"][0]
        return ChatResult(
            text=choice["message"].get("content") or "",
            model=candidate,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=choice.get("finish_reason"),
            latency_ms=int((time.monotonic() - started) * 1000),
        )
    raise LLMError("; ".join(errors))


def describe_error(exc: BaseException) -> str:
    """A one-line description of a failed call for the log row (no secrets, no traceback)."""
    return f"{type(exc).__name__}: {str(exc)[:300]}"
