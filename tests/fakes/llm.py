"""A small client for the ``llmock`` server's admin API (scripted behaviours, request journal)."""

from __future__ import annotations

from typing import Any

import requests


class LLMock:
    """Drives an ``llmock serve`` process started by the ``llm_server`` fixture.

    Args:
        base_url: The server's OpenAI base URL (``http://127.0.0.1:PORT/v1``).
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.admin = base_url.removesuffix("/v1") + "/_llmock"

    def reset(self) -> None:
        """Forget recorded requests and queued behaviours."""
        requests.post(f"{self.admin}/reset", timeout=5).raise_for_status()

    def script(self, *behaviors: dict[str, Any]) -> None:
        """Queue behaviours such as ``{"type": "reply", "text": "hi"}``.

        ``{"type": "fail", "status": 500, "times": None}`` fails every call until reset.

        Args:
            *behaviors: llmock behaviour objects, applied in order.
        """
        response = requests.post(
            f"{self.admin}/scenario", json={"behaviors": list(behaviors)}, timeout=5
        )
        response.raise_for_status()

    def chat_requests(self) -> list[dict[str, Any]]:
        """Chat Completions requests served so far, oldest first (with their JSON bodies)."""
        records = requests.get(f"{self.admin}/requests", timeout=5).json()
        records = records.get("requests", records) if isinstance(records, dict) else records
        return [r for r in records if r["path"].endswith("/chat/completions")]
