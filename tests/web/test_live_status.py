"""The admin's live status: the workers' heartbeats, the queues, the self-refreshing pages.

The worker is the suite's real one, its heartbeat on as in production. Work waiting in a queue
while the worker is busy: ``tests/e2e/test_live_status.py``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask

from shared.flower import password_file
from shared.redis import redis_client
from tests.support import ADMIN_PASSWORD, ADMIN_USERNAME, free_port, wait_until
from tests.web.test_admin_login import login

STATUS = "/admin/status"


@pytest.fixture()
def admin(client):
    """A logged-in admin browser session."""
    assert login(client).status_code == 302
    return client


def _status(admin) -> dict[str, Any]:
    response = admin.get(STATUS)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()


def test_status_lists_the_running_worker(admin, celery_worker) -> None:
    """The suite's worker is listed from its heartbeat, with its pid; queues and bot are there."""
    hostname = celery_worker.hostname

    def listed() -> dict[str, Any] | None:
        status = _status(admin)
        worker = next((w for w in status["workers"] if w["hostname"] == hostname), None)
        # The first beat (worker-online) may predate the fixture's ping; a later one counts it.
        return worker if worker and worker["processed"] >= 1 else None

    worker = wait_until(listed, timeout=20, what="the worker's heartbeat")
    assert worker["pid"] == os.getpid()  # the worker runs in the test process
    assert worker["active"] == 0 and worker["seen_at"].endswith("+00:00")
    status = _status(admin)
    assert set(status["queues"]) == {"updates", "llm"}
    assert status["bot"]["state"] == "stopped" and status["bot"]["desired"] == "stopped"


def test_status_says_503_when_redis_is_away(admin, app: Flask) -> None:
    """Redis refusing connections: a JSON 503, not an error page (the polling page says so)."""
    client = app.extensions["redis"]
    app.extensions["redis"] = redis_client(f"redis://127.0.0.1:{free_port()}/0")
    try:
        response = admin.get(STATUS)
    finally:
        app.extensions["redis"] = client
    assert response.status_code == 503
    assert response.get_json() == {"error": "Redis cannot be reached"}


def test_status_needs_a_login(client) -> None:
    """Anonymous: sent to the login page, no data."""
    response = client.get(STATUS)
    assert response.status_code == 302
    assert "/admin/login/" in response.headers["Location"]


@pytest.mark.parametrize("path", ["/admin/", "/admin/bot/"])
def test_pages_refresh_themselves_and_link_flower(admin, app: Flask, path: str) -> None:
    """Dashboard and bot page: workers, queues, the polling script, and the Flower link."""
    page = admin.get(path).text
    assert '"/admin/status"' in page and "setTimeout(tick, every)" in page
    assert "data-workers-count" in page and 'data-queue="updates"' in page
    assert 'data-queue="llm"' in page and "data-live-note" in page
    assert 'href="http://127.0.0.1:5555/"' in page and "data-flower-link" in page
    # The login is named, never shown: the suite's config has ADMIN_PASSWORD.
    assert f"log in as {ADMIN_USERNAME} with ADMIN_PASSWORD" in page
    assert ADMIN_PASSWORD not in page


@pytest.mark.parametrize("path", ["/admin/", "/admin/bot/"])
def test_no_flower_link_when_flower_is_off(admin, app: Flask, path: str) -> None:
    """``FLOWER_PORT=0`` and no ``FLOWER_URL``: no link; ``FLOWER_URL`` alone: that link."""
    config = app.config["AI_ROUTER"]
    try:
        app.config["AI_ROUTER"] = replace(config, flower_port=0, flower_url=None)
        page = admin.get(path).text
        assert "data-flower-link" not in page and "Flower" not in page
        app.config["AI_ROUTER"] = replace(
            config, flower_port=0, flower_url="https://ops.example.com/flower/", admin_password=None
        )
        page = admin.get(path).text
        assert 'href="https://ops.example.com/flower/"' in page
        assert f"the password is in {password_file(config)}" in page
    finally:
        app.config["AI_ROUTER"] = config
