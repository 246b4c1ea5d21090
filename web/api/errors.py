"""Errors of the admin API: one JSON shape, ``{"error": {"code": "...", "message": "..."}}``.

Handlers raise :class:`ApiError` (through :func:`invalid`, :func:`not_found`, :func:`conflict`,
:func:`bad_gateway`); webargs' validation errors and Werkzeug's 404/405 are turned into the same
shape by the blueprint's error handlers (``web.api``). :class:`ErrorSchema` documents the shape
in OpenAPI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import marshmallow as ma
from flask import Response, jsonify


class ApiError(Exception):
    """An error answered as JSON.

    Args:
        status: HTTP status.
        code: Stable machine-readable code (``validation_error``, ``not_found``, …).
        message: Human-readable explanation.
        headers: Extra response headers (``WWW-Authenticate`` on a 401).
    """

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body of the error."""
        return {"error": {"code": self.code, "message": self.message}}

    def response(self) -> tuple[Response, int]:
        """The Flask response: the JSON body, the status and the extra headers."""
        response = jsonify(self.body())
        response.headers.update(self.headers)
        return response, self.status


def invalid(message: str) -> ApiError:
    """A 400 validation error."""
    return ApiError(400, "validation_error", message)


def not_found(what: str) -> ApiError:
    """A 404 for a missing object."""
    return ApiError(404, "not_found", f"{what} not found")


def conflict(message: str) -> ApiError:
    """A 409 (uniqueness, state)."""
    return ApiError(409, "conflict", message)


def bad_gateway(message: str) -> ApiError:
    """A 502: Telegram refused what was asked of it, or could not be reached; nothing changed."""
    return ApiError(502, "bad_gateway", message)


def describe(messages: Any, field: str = "") -> str:
    """One line from marshmallow's error messages, naming each field.

    ``{"json": {"temperature": ["Must be …"], "bogus": ["Unknown field."]}}`` becomes
    ``"bogus: Unknown field.; temperature: Must be …"``; the location key (``json``,
    ``query``) and marshmallow's ``_schema`` key are left out.

    Args:
        messages: ``ValidationError.messages`` (a dict, list or string), as webargs passes it.
        field: The field the messages belong to (used while recursing).

    Returns:
        The description.
    """
    if isinstance(messages, Mapping):
        parts = []
        for key, value in sorted(messages.items(), key=lambda item: str(item[0])):
            name = field if key in ("_schema", "json", "query", "querystring") else str(key)
            if field and name != field:
                name = f"{field}.{name}"
            parts.append(describe(value, name))
        return "; ".join(part for part in parts if part)
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        return "; ".join(describe(message, field) for message in messages)
    return f"{field}: {messages}" if field else str(messages)


class ErrorDetailSchema(ma.Schema):
    """The ``error`` object of an error answer."""

    code = ma.fields.String(
        required=True,
        metadata={
            "description": "validation_error, unauthorized, not_found, conflict, bad_gateway, …"
        },
    )
    message = ma.fields.String(required=True, metadata={"description": "For people."})


class ErrorSchema(ma.Schema):
    """Every error answer of the API (documentation only)."""

    error = ma.fields.Nested(ErrorDetailSchema, required=True)
