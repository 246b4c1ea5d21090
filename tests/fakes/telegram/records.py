"""The records tests read back from the fake: calls answered, uploaded files, webhook attempts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Call:
    """One Bot API request the fake answered.

    Attributes:
        method: The canonical method name (``sendMessage``), or the name as sent for an unknown
            method.
        params: The decoded parameters: JSON-typed values decoded, integer and boolean
            parameters converted, uploaded files as :class:`UploadedFile`. ``text`` is the raw
            text the bot sent (before HTML parsing).
        http_method: ``GET`` or ``POST``.
        at: ``time.time()`` when the request arrived.
        response: The JSON object answered.
        status: The HTTP status answered.
        token: The token in the request path.
    """

    method: str
    params: dict[str, Any]
    http_method: str
    at: float
    response: dict[str, Any]
    status: int = 200
    token: str = ""

    @property
    def ok(self) -> bool:
        """Whether the call succeeded (``response["ok"]``)."""
        return bool(self.response.get("ok"))

    @property
    def result(self) -> Any:
        """The ``result`` of a successful call, None for a failed one."""
        return self.response.get("result")


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request.

    Attributes:
        filename: The file name the client gave.
        content_type: The part's content type.
        data: The file's bytes.
    """

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver an update to the webhook.

    Attributes:
        update_id: The update delivered.
        url: The webhook URL.
        status_code: The receiver's HTTP status, None when no answer came.
        error: Why the attempt failed, None on success.
        at: ``time.time()`` when the attempt finished.
    """

    update_id: int
    url: str
    status_code: int | None
    error: str | None
    at: float

    @property
    def ok(self) -> bool:
        """Whether the receiver accepted the update (answered 2xx)."""
        return self.error is None
