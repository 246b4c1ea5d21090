"""Model cooldowns: counted in Redis, seen by every process, skipped by the router.

The router is driven against real HTTP servers on 127.0.0.1 (a 503 server that counts its
calls); the second "process" is a second core app on the same Redis and database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flask import Flask

from shared.extensions import cooldowns as cooldowns_ext
from shared.extensions import llm
from shared.llm import LLMError, LLMHTTPError, ModelSpec
from shared.services import cooldowns
from tests.support import wait_until


class _Failing(BaseHTTPRequestHandler):
    """Answers every request with the status in ``server.status``, counting them."""

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        self.server.calls += 1  # type: ignore[attr-defined]
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"error": {"message": "down"}}'
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture()
def failing_server() -> Iterator[ThreadingHTTPServer]:
    """An OpenAI-compatible endpoint on 127.0.0.1 that fails every call (status settable)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    server.calls = 0  # type: ignore[attr-defined]
    server.status = 503  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _spec(model_id: int, base_url: str, fallback: ModelSpec | None = None) -> ModelSpec:
    return ModelSpec(
        id=model_id, name=f"model-{model_id}", model="m", base_url=base_url, api_key="k",
        temperature=None, max_tokens=None, context_window=None,
        input_price_per_1m=Decimal(0), output_price_per_1m=Decimal(0), fallback=fallback,
    )  # fmt: skip


def _ask(spec: ModelSpec) -> LLMError:
    with pytest.raises(LLMError) as raised:
        llm.chat(spec, [{"role": "user", "content": "hi"}])
    return raised.value


def test_give_ups_cool_a_model_down_for_every_process(
    app: Flask, second_process: Flask, failing_server: ThreadingHTTPServer
) -> None:
    """The third give-up starts a cooldown; then nobody calls the model, here or elsewhere."""
    url = f"http://127.0.0.1:{failing_server.server_address[1]}/v1"
    spec = _spec(71, url)
    attempts = app.config["AI_ROUTER"].llm_max_attempts
    with app.app_context():
        for _ in range(3):
            assert "503" in str(_ask(spec))
        assert failing_server.calls == 3 * attempts
        error = _ask(spec)
        assert "cooling down" in str(error) and failing_server.calls == 3 * attempts
        health = cooldowns.health([71])[71]
        assert health.state == "cooling_down" and "503" in (health.last_error or "")
        assert health.recent_failures == 0  # the window starts again after a cooldown
    with second_process.app_context():
        wait_until(lambda: cooldowns_ext.cooling(spec), timeout=5, what="the other process")
        assert "cooling down" in str(_ask(spec)) and failing_server.calls == 3 * attempts
    with app.app_context():
        assert cooldowns.end_cooldown(71)
        assert not cooldowns_ext.cooling(spec), "the process that ended it knows at once"
        assert cooldowns.health([71])[71].state == "ok"
        _ask(spec)
        assert failing_server.calls == 4 * attempts
    with second_process.app_context():
        wait_until(lambda: not cooldowns_ext.cooling(spec), timeout=5, what="the other process")


def test_a_cooled_model_hands_over_to_its_fallback_at_once(
    app: Flask, failing_server: ThreadingHTTPServer
) -> None:
    """With the primary cooling, only the fallback is asked (here it fails too: both named)."""
    url = f"http://127.0.0.1:{failing_server.server_address[1]}/v1"
    backup = _spec(82, url)
    spec = _spec(81, url, fallback=backup)
    attempts = app.config["AI_ROUTER"].llm_max_attempts
    with app.app_context():
        for _ in range(3):
            _ask(spec)  # each give-up counts for both: primary and backup failed
        assert failing_server.calls == 3 * 2 * attempts
        message = str(_ask(spec))
        assert "model-81: cooling down" in message and "model-82: cooling down" in message
        assert failing_server.calls == 3 * 2 * attempts
        cooldowns.end_cooldown(82)
        message = str(_ask(spec))
        assert "model-81: cooling down" in message and "model-82: LLMHTTPError" in message
        assert failing_server.calls == 7 * attempts


def test_refusals_of_one_request_are_not_counted(
    app: Flask, failing_server: ThreadingHTTPServer
) -> None:
    """A 400 (a prompt too long…) is the request's fault: kept as last error, never counted."""
    failing_server.status = 400  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{failing_server.server_address[1]}/v1"
    spec = _spec(91, url)
    with app.app_context():
        for _ in range(5):
            _ask(spec)
        assert failing_server.calls == 5  # a 400 is not retried either
        health = cooldowns.health([91])[91]
        assert health.state == "ok" and health.recent_failures == 0
        assert "400" in (health.last_error or "")
    assert cooldowns.counts(LLMHTTPError(503, "x", {}))
    assert not cooldowns.counts(LLMHTTPError(422, "x", {}))


def test_zero_failures_disables_cooldowns(app: Flask, failing_server: ThreadingHTTPServer) -> None:
    """MODEL_COOLDOWN_FAILURES=0: a failing model is asked every time."""
    url = f"http://127.0.0.1:{failing_server.server_address[1]}/v1"
    spec = _spec(95, url)
    config = app.config["AI_ROUTER"]
    app.config["AI_ROUTER"] = replace(config, model_cooldown_failures=0, llm_max_attempts=1)
    try:
        with app.app_context():
            for _ in range(5):
                _ask(spec)
            assert failing_server.calls == 5
            assert cooldowns.health([95])[95].state == "ok"
    finally:
        app.config["AI_ROUTER"] = config
