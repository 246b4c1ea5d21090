"""The error every failed Bot API call raises, without importing pyTelegramBotAPI.

pyTelegramBotAPI costs ≈ 10 MiB per process (it imports all of itself and ``requests``); the web
app and the listener only speak JSON to the Bot API (``shared.telegram.client``) and need its
types nowhere, so they do not load it. The worker's dispatcher still uses its types.
"""

from __future__ import annotations

from typing import Any


class TelegramApiError(Exception):
    """The Bot API answered ``ok: false`` (or the file server an error status).

    The attributes are those of pyTelegramBotAPI's ``ApiTelegramException``, so code reading
    an error needs to know only one shape.

    Args:
        function_name: The Bot API method (``sendMessage``), or ``download``.
        result: The HTTP response (kept for logs; may be None).
        result_json: The answer's JSON (``ok``, ``error_code``, ``description``, ``parameters``).

    Attributes:
        error_code: Telegram's code (an HTTP status: 400, 403, 429, 5xx …).
        description: Telegram's text for it.
    """

    def __init__(self, function_name: str, result: Any, result_json: dict[str, Any]) -> None:
        self.function_name = function_name
        self.result = result
        self.result_json = result_json
        self.error_code: int = int(result_json.get("error_code") or 0)
        self.description: str = str(result_json.get("description") or "")
        super().__init__(
            f"A request to the Telegram API was unsuccessful. Error code: {self.error_code}. "
            f"Description: {self.description}"
        )
