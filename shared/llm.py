"""The LLM router: prompt assembly, one client per endpoint, retries, fallback.

The product talks to every provider through the OpenAI-compatible Chat Completions API, spoken
directly over one urllib3 connection pool per process (:class:`ChatEndpoint`; why not the SDK:
see its docstring). Retries live here only: a call is retried on 429, 408/409, 5xx, timeouts
and connection errors, with exponential backoff and jitter that honours ``Retry-After``, bounded
by attempts and by a deadline; then the model's fallback (if any) gets the same treatment.

Every call streams (``stream: true`` with ``stream_options.include_usage``): the caller may watch
the answer grow (:data:`OnText`, for live drafts) and may stop it (:class:`Cancel`, for /stop),
which closes the connection so the provider stops generating. A stream that breaks, carries a
corrupt chunk or ends without ``finish_reason`` is an error, retried or handed to the fallback
like any other; a retried stream starts the text afresh (watchers get the new attempt's text,
never the two glued together).

Nothing here touches the database: callers pass :class:`ModelSpec` snapshots and release their
DB session before calling, because an LLM call can take a minute.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

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

from shared import metrics
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
    """One earlier exchange of a dialog, as the LLM sees it.

    ``request`` is the user's content: text, or content parts (text and images) once the
    attachments were shaped for the model (``conversation.attachments.history_turns``).
    """

    request: str | list[dict[str, Any]]
    response: str
    attachment: dict[str, Any] | None = None
    attachment_text: str | None = None


class LLMError(RuntimeError):
    """The model(s) could not produce an answer. The message is for logs and admins only."""


#: What stands in for an image for a model that cannot see.
IMAGE_MARK = "[image]"
#: Tokens an image part is counted as when a prompt is fitted to the context.
IMAGE_TOKENS = 800

#: Called with the whole text of the current attempt each time it grows.
OnText = Callable[[str], None]


class Cancel:
    """Stops a streaming call from another greenlet or thread (/stop).

    :meth:`cancel` sets the flag and shuts the attached response's socket down, so a read
    blocked on the provider returns at once and the connection is dropped (the provider stops
    generating, and billing). The streaming loop checks the flag between chunks.
    """

    def __init__(self) -> None:
        self.cancelled = False
        self._response: urllib3.BaseHTTPResponse | None = None

    def attach(self, response: urllib3.BaseHTTPResponse | None) -> None:
        """Remember the response being read now; shut it at once if already cancelled.

        Args:
            response: The streaming response, or None when the attempt is over.
        """
        self._response = response
        if response is not None and self.cancelled:
            self.cancel()

    def cancel(self) -> None:
        """Stop the call: the flag, then the socket."""
        self.cancelled = True
        response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception:  # noqa: BLE001 - already closed: nothing left to stop
                logger.debug("stream already closed", exc_info=True)


class ModelHealth(Protocol):
    """What the router asks of the deployment about models (``shared.services.cooldowns``).

    Found as ``app.extensions["model_health"]``; without it every model is always asked.
    """

    def cooling(self, spec: ModelSpec) -> bool:
        """Whether to skip this model for now (asked before each model, from memory)."""

    def gave_up(self, spec: ModelSpec, exc: BaseException) -> None:
        """Note that a model gave up after its retries (must not raise)."""


class GenerationStopped(Exception):
    """The call was cancelled (:class:`Cancel`); ``text`` is what the model had written.

    Args:
        text: The text received before the stop.
    """

    def __init__(self, text: str) -> None:
        super().__init__("generation stopped")
        self.text = text


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
        vision: The model accepts images (photos go to it as image content parts).
        transcription_model: The endpoint's speech-to-text model, or None (no voice).
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
    vision: bool = False
    transcription_model: str | None = None

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
            vision=bool(model.vision),
            transcription_model=model.transcription_model or None,
            fallback=(
                cls.from_model(fallback, with_fallback=False)
                if fallback is not None and fallback.enabled and fallback.id != model.id
                else None
            ),
        )

    def budget_tokens(self) -> int:
        """Tokens the prompt may use: the context window less the answer's reserve."""
        return (self.context_window or DEFAULT_CONTEXT_WINDOW) - (
            self.max_tokens or DEFAULT_ANSWER_RESERVE
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
        finish_reason: ``stop``, ``length``, … (``stopped``: cancelled, ``text`` is partial and
            the token counts are estimates)
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


def content_tokens(content: str | list[dict[str, Any]]) -> int:
    """Estimated tokens of a message's content (an image part counts :data:`IMAGE_TOKENS`)."""
    if isinstance(content, str):
        return estimate_tokens(content)
    return sum(
        estimate_tokens(part.get("text", "")) if part.get("type") == "text" else IMAGE_TOKENS
        for part in content
    )


def build_messages(
    system_prompt: str | None,
    turns: list[Turn],
    request: str | list[dict[str, Any]],
    model: ModelSpec,
    tokens: Callable[[Any], int] = content_tokens,
) -> list[dict[str, Any]]:
    """Assemble the Chat Completions messages: system prompt, earlier turns, the new request.

    Earlier turns are dropped from the oldest when they would not fit the model's context
    budget; a turn is always kept or dropped whole (never half a turn).

    Args:
        system_prompt: The mode's prompt (omitted when empty).
        turns: The dialog's earlier turns, oldest first.
        request: The new user message (text, or content parts).
        model: The model (its context window and answer reserve set the budget).
        tokens: Estimates a content's tokens.

    Returns:
        The ``messages`` list.
    """
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    budget = model.budget_tokens() - estimate_tokens(system_prompt or "") - tokens(request)
    kept: list[Turn] = []
    for turn in reversed(turns):
        cost = tokens(turn.request) + estimate_tokens(turn.response)
        if cost > budget:
            break
        budget -= cost
        kept.append(turn)
    body = []
    for turn in reversed(kept):
        body.append({"role": "user", "content": turn.request})
        body.append({"role": "assistant", "content": turn.response})
    return [*head, *body, {"role": "user", "content": request}]


def fit_messages(
    messages: list[dict[str, Any]], model: ModelSpec, tokens: Callable[[Any], int] = content_tokens
) -> list[dict[str, Any]]:
    """Drop the oldest earlier turns (user and answer together) until the prompt fits.

    The system prompt and the last message (the new request) always stay.

    Args:
        messages: Built by :func:`build_messages` (the request may have grown since).
        model: The model (its budget).
        tokens: Estimates a content's tokens.

    Returns:
        The messages that fit.
    """
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    body, last = messages[len(head) : -1], messages[-1:]
    total = sum(tokens(m["content"]) for m in messages)
    while body and total > model.budget_tokens():
        dropped, body = body[:2], body[2:]
        total -= sum(tokens(m["content"]) for m in dropped)
    return [*head, *body, *last]


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


class LLMStreamError(LLMConnectionError):
    """The stream broke: a corrupt chunk, or its end without ``finish_reason`` (retryable)."""


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
        self._transcriptions_url = base_url.rstrip("/") + "/audio/transcriptions"
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._headers.update(self._auth)
        self._timeout = urllib3.Timeout(connect=min(timeout, 10.0), read=timeout)

    def _post(
        self, url: str, body: bytes, headers: dict[str, str], *, stream: bool = False
    ) -> urllib3.BaseHTTPResponse:
        """One POST, its network failures turned into the router's errors.

        Raises:
            LLMTimeout: When the endpoint does not answer in time.
            LLMConnectionError: When it cannot be reached, or the connection fails.
        """
        try:
            return self._pool.request(
                "POST",
                url,
                body=body,
                headers=headers,
                timeout=self._timeout,
                preload_content=not stream,
            )
        except urllib3.exceptions.NewConnectionError as exc:  # before: it is a ConnectTimeout
            raise LLMConnectionError(f"cannot connect: {type(exc).__name__}") from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise LLMTimeout(f"no answer in time: {type(exc).__name__}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise LLMConnectionError(f"connection failed: {type(exc).__name__}") from exc

    def transcribe(self, model: str, audio: bytes, filename: str, mime_type: str) -> str:
        """Turn speech into text: ``POST {base_url}/audio/transcriptions`` (multipart).

        Args:
            model: The endpoint's speech-to-text model (e.g. ``whisper-1``).
            audio: The recording.
            filename: Its name (providers pick the decoder by its extension).
            mime_type: Its content type.

        Returns:
            The transcript (stripped; may be empty for silence).

        Raises:
            LLMHTTPError: On an HTTP error status, or an answer without ``text``.
            LLMTimeout: When the endpoint does not answer in time.
            LLMConnectionError: When it cannot be reached.
        """
        body, content_type = urllib3.encode_multipart_formdata(
            {"model": model, "response_format": "json", "file": (filename, audio, mime_type)}
        )
        headers = {**self._auth, "Content-Type": content_type, "Accept": "application/json"}
        response = self._post(self._transcriptions_url, body, headers)
        if response.status >= 400:
            raise LLMHTTPError(response.status, _error_message(response), dict(response.headers))
        try:
            text = json.loads(response.data).get("text")
        except (ValueError, AttributeError):
            text = None
        if not isinstance(text, str):
            raise LLMHTTPError(502, "the transcription answer has no text", {})
        return text.strip()

    def stream(
        self,
        params: dict[str, Any],
        on_text: OnText | None = None,
        cancel: Cancel | None = None,
    ) -> dict[str, Any]:
        """Ask for one completion, streamed; return it assembled.

        Args:
            params: The request body (``model``, ``messages`` …; ``stream`` is added).
            on_text: Called with the text so far each time a chunk adds to it.
            cancel: Set to stop the call (raises :class:`GenerationStopped`).

        Returns:
            ``{"text", "finish_reason", "usage", "ttft"}`` (``usage`` from the final chunk, or
            {}; ``ttft``: seconds from the request to the first text, None without text).

        Raises:
            GenerationStopped: When cancelled; carries the text received so far.
            LLMHTTPError: On an HTTP error status.
            LLMTimeout: When a chunk takes longer than the timeout.
            LLMConnectionError: When the endpoint cannot be reached or the connection breaks.
            LLMStreamError: On a corrupt chunk, or a stream ending without ``finish_reason``.
        """
        body = {**params, "stream": True, "stream_options": {"include_usage": True}}
        started = time.monotonic()
        response = self._post(self._url, json.dumps(body).encode(), self._headers, stream=True)
        if response.status >= 400:
            error = LLMHTTPError(response.status, _error_message(response), dict(response.headers))
            response.release_conn()
            raise error
        if cancel is not None:
            cancel.attach(response)
        try:
            result = _read_stream(response, on_text, cancel)
            first = result.pop("first_text_at")
            result["ttft"] = None if first is None else first - started
            return result
        finally:
            if cancel is not None:
                cancel.attach(None)
            response.release_conn()


def _read_stream(
    response: urllib3.BaseHTTPResponse, on_text: OnText | None, cancel: Cancel | None
) -> dict[str, Any]:
    """Assemble a Chat Completions event stream (``data: {...}`` events, ``data: [DONE]``).

    An event's ``data:`` lines are joined (SSE); the body is read to its end after ``[DONE]`` so
    the keep-alive connection goes back to the pool. An ``error`` object in the stream (some
    providers send one with HTTP 200) raises :class:`LLMHTTPError` with its code.
    """
    text = ""
    first_text_at: float | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] = {}
    done = False
    data: list[bytes] = []
    try:
        for lines in _blocks(response):
            shown = len(text)
            for raw in lines:
                if raw.startswith(b"data:"):
                    data.append(raw[5:].strip())
                    continue
                if raw or not data:
                    continue  # comments, event names, keep-alives; a blank line ends an event
                payload, data = b"\n".join(data), []
                if done:
                    continue
                if payload == b"[DONE]":
                    done = True
                    continue
                delta, finish_reason, usage = _event(payload, finish_reason, usage)
                text += delta
            if first_text_at is None and text:
                first_text_at = time.monotonic()
            if cancel is not None and cancel.cancelled:
                break
            # once per block read, and only while the answer is still coming: an answer that
            # arrives whole (with its finish_reason) is never shown half-written
            if on_text is not None and len(text) > shown and finish_reason is None:
                on_text(text)
    except urllib3.exceptions.TimeoutError as exc:
        if cancel is not None and cancel.cancelled:
            raise GenerationStopped(text) from exc
        raise LLMTimeout(f"stream stalled: {type(exc).__name__}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if cancel is not None and cancel.cancelled:
            raise GenerationStopped(text) from exc
        raise LLMConnectionError(f"stream broke: {type(exc).__name__}") from exc
    if cancel is not None and cancel.cancelled:
        raise GenerationStopped(text)
    if data and not done:  # a last event without its blank line
        delta, finish_reason, usage = _event(b"\n".join(data), finish_reason, usage)
        text += delta
    if finish_reason is None:
        ending = "" if done else " or [DONE]"
        raise LLMStreamError(f"the stream ended without finish_reason{ending}")
    if first_text_at is None and text:
        first_text_at = time.monotonic()
    return {
        "text": text,
        "finish_reason": finish_reason,
        "usage": usage,
        "first_text_at": first_text_at,
    }


def _event(
    payload: bytes, finish_reason: str | None, usage: dict[str, Any]
) -> tuple[str, str | None, dict[str, Any]]:
    """One chunk: its text, and the finish reason and usage so far."""
    try:
        chunk = json.loads(payload)
        if chunk.get("error"):
            error = chunk["error"]
            code = error.get("code") if isinstance(error, dict) else None
            status = code if isinstance(code, int) and 400 <= code < 600 else 500
            message = error.get("message") if isinstance(error, dict) else error
            raise LLMHTTPError(status, f"in the stream: {str(message)[:300]}", {})
        choices = chunk.get("choices") or []
        choice = choices[0] if choices else {}
        delta = (choice.get("delta") or {}).get("content") or ""
        return delta, choice.get("finish_reason") or finish_reason, chunk.get("usage") or usage
    except (ValueError, AttributeError, TypeError, IndexError) as exc:
        raise LLMStreamError(f"corrupt stream chunk: {type(exc).__name__}") from exc


def _blocks(response: urllib3.BaseHTTPResponse) -> Iterator[list[bytes]]:
    """The response body's complete lines (without line ends), a list per block read."""
    pending = b""
    for block in response.stream(8192, decode_content=True):
        pending += block
        *complete, pending = pending.split(b"\n")
        if complete:
            yield [line.rstrip(b"\r") for line in complete]
    if pending:
        yield [pending.rstrip(b"\r"), b""]


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

    def chat(
        self,
        spec: ModelSpec,
        messages: list[dict[str, str]],
        *,
        on_text: OnText | None = None,
        cancel: Cancel | None = None,
    ) -> ChatResult:
        """Ask a model (retries, then its fallback) with the current app's settings.

        Args:
            spec: The model to ask first.
            messages: The Chat Completions messages.
            on_text: Watches the answer grow (see :func:`chat`).
            cancel: Stops the call (see :func:`chat`).

        Returns:
            The answer with usage (``finish_reason == "stopped"`` when cancelled).

        Raises:
            LLMError: When every model gave up.
        """
        return chat(
            current_app.config["AI_ROUTER"],
            current_app.extensions["llm_clients"],
            spec,
            messages,
            on_text=on_text,
            cancel=cancel,
            health=current_app.extensions.get("model_health"),
        )

    def transcribe(self, spec: ModelSpec, audio: bytes, filename: str, mime_type: str) -> str:
        """Transcribe a recording with a model endpoint's speech-to-text model (retried).

        Retried like a chat call (timeouts, connection errors, 408/409/429/5xx, honouring
        Retry-After) within ``LLM_MAX_ATTEMPTS`` and ``LLM_RETRY_DEADLINE``.

        Args:
            spec: A model with a ``transcription_model`` (its endpoint and key are used).
            audio: The recording.
            filename: Its name.
            mime_type: Its content type.

        Returns:
            The transcript.

        Raises:
            LLMError: When the endpoint gave up (the message is for logs and admins).
        """
        if not spec.transcription_model:
            raise LLMError(f"{spec.name} has no transcription model")
        config: Config = current_app.config["AI_ROUTER"]
        endpoint = current_app.extensions["llm_clients"].get(spec.base_url, spec.api_key)
        try:
            return retrying(config)(
                endpoint.transcribe, spec.transcription_model, audio, filename, mime_type
            )
        except (LLMHTTPError, LLMConnectionError) as exc:
            raise LLMError(f"transcription by {spec.name}: {describe_error(exc)}") from exc


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
    clients: LLMClients,
    spec: ModelSpec,
    messages: list[dict[str, str]],
    on_text: OnText | None,
    cancel: Cancel | None,
) -> dict[str, Any]:
    """One streamed Chat Completions request to a model's endpoint.

    Counted in the metrics by outcome; a success's duration and time to first text are
    observed.

    Returns:
        ``{"text", "finish_reason", "usage", "ttft"}``.

    Raises:
        GenerationStopped, LLMHTTPError, LLMConnectionError: See :meth:`ChatEndpoint.stream`.
    """
    params: dict[str, Any] = {"model": spec.model, "messages": messages}
    if spec.temperature is not None:
        params["temperature"] = spec.temperature
    if spec.max_tokens:
        params["max_tokens"] = spec.max_tokens
    if cancel is not None and cancel.cancelled:
        raise GenerationStopped("")
    started = time.monotonic()
    try:
        result = clients.get(spec.base_url, spec.api_key).stream(params, on_text, cancel)
    except (GenerationStopped, LLMHTTPError, LLMConnectionError) as exc:
        metrics.inc(metrics.LLM_REQUESTS, model=spec.name, outcome=_outcome(exc))
        raise
    metrics.inc(metrics.LLM_REQUESTS, model=spec.name, outcome="ok")
    metrics.observe(metrics.LLM_LATENCY, time.monotonic() - started, model=spec.name)
    if result["ttft"] is not None:
        metrics.observe(metrics.LLM_TTFT, result["ttft"], model=spec.name)
    return result


def _outcome(exc: BaseException) -> str:
    """A failed or stopped call's outcome for the metrics."""
    if isinstance(exc, GenerationStopped):
        return "stopped"
    if isinstance(exc, LLMHTTPError):
        return "429" if exc.status == 429 else "5xx" if exc.status >= 500 else "4xx"
    if isinstance(exc, LLMTimeout):
        return "timeout"
    if isinstance(exc, LLMStreamError):
        return "broken_stream"
    return "connection"


def _call_with_retries(
    config: Config,
    clients: LLMClients,
    spec: ModelSpec,
    messages: list[dict[str, str]],
    on_text: OnText | None,
    cancel: Cancel | None,
) -> dict[str, Any]:
    return retrying(config)(_call_once, clients, spec, messages, on_text, cancel)


def retrying(config: Config) -> Retrying:
    """The retry policy of a call to a model's endpoint (chat and transcription alike).

    Retryable errors (:func:`is_retryable`) are tried again within ``LLM_MAX_ATTEMPTS`` and
    ``LLM_RETRY_DEADLINE``, with backoff that honours Retry-After; the last error is re-raised.

    Args:
        config: The app's configuration.

    Returns:
        A tenacity ``Retrying`` to call the function with.
    """
    return Retrying(
        stop=stop_after_attempt(config.llm_max_attempts)
        | stop_after_delay(config.llm_retry_deadline),
        wait=_WaitRespectingRetryAfter(config.llm_retry_max_wait),
        retry=retry_if_exception(is_retryable),
        before_sleep=_log_retry,
        reraise=True,
    )


def chat(
    config: Config,
    clients: LLMClients,
    spec: ModelSpec,
    messages: list[dict[str, str]],
    *,
    on_text: OnText | None = None,
    cancel: Cancel | None = None,
    health: ModelHealth | None = None,
) -> ChatResult:
    """Get one answer: the model with retries, then its fallback with retries.

    A model ``health`` says is cooling down is skipped (its fallback is asked directly);
    a model that gives up is reported to ``health``.

    Args:
        config: Retry and timeout settings.
        clients: The process's client cache.
        spec: The model to ask first.
        messages: The Chat Completions messages.
        on_text: Called with the text of the current attempt as it grows (a retry or the
            fallback starts from an empty text again).
        cancel: When cancelled, the call stops at once (the connection is closed) and the
            answer is what was written so far, with ``finish_reason == "stopped"``.
        health: Cooldowns shared by the deployment, or None to ask every model.

    Returns:
        The answer with usage.

    Raises:
        LLMError: When every model gave up or was cooling down; the message names the models
            and errors.
    """
    started = time.monotonic()
    errors: list[str] = []
    candidate: ModelSpec | None = spec
    while candidate is not None:
        if health is not None and health.cooling(candidate):
            errors.append(f"{candidate.name}: cooling down after repeated failures")
            logger.info("LLM model skipped (cooling down) model=%s", candidate.name)
            candidate = candidate.fallback
            continue
        try:
            asked = messages if candidate.vision else without_images(messages)
            completion = _call_with_retries(config, clients, candidate, asked, on_text, cancel)
        except GenerationStopped as stopped:
            logger.info(
                "LLM generation stopped model=%s chars=%s", candidate.name, len(stopped.text)
            )
            return ChatResult(
                text=stopped.text,
                model=candidate,
                prompt_tokens=None,
                completion_tokens=None,
                finish_reason="stopped",
                latency_ms=int((time.monotonic() - started) * 1000),
            )
        except (LLMHTTPError, LLMConnectionError, LLMError) as exc:
            errors.append(f"{candidate.name}: {describe_error(exc)}")
            logger.warning("LLM model gave up model=%s error=%s", candidate.name, errors[-1])
            if health is not None:
                health.gave_up(candidate, exc)
            candidate = candidate.fallback
            continue
        usage = completion["usage"]
        return ChatResult(
            text=completion["text"],
            model=candidate,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=completion["finish_reason"],
            latency_ms=int((time.monotonic() - started) * 1000),
        )
    raise LLMError("; ".join(errors))


def without_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages for a model that cannot see: each image part becomes :data:`IMAGE_MARK`.

    A fallback without ``vision`` answering a photo reads "[image]" and the caption, instead
    of an image part its endpoint would refuse.

    Args:
        messages: Chat Completions messages, some with content parts.

    Returns:
        The same messages with every content a string (unchanged when none has parts).
    """
    if not any(isinstance(m["content"], list) for m in messages):
        return messages
    shaped = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            texts = [
                part.get("text", "") if part.get("type") == "text" else IMAGE_MARK
                for part in content
            ]
            content = " ".join(text for text in texts if text)
        shaped.append({**message, "content": content})
    return shaped


def describe_error(exc: BaseException) -> str:
    """A one-line description of a failed call for the log row (no secrets, no traceback)."""
    return f"{type(exc).__name__}: {str(exc)[:300]}"
