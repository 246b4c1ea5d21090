"""Request validation and JSON errors of the admin API.

Errors are ``{"error": {"code": "...", "message": "..."}}`` with a fitting status. Bodies are
checked against a small field table per resource (:class:`Field`), so every rule about an API
field's type and range is written once, next to the resource.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

from flask import request


class ApiError(Exception):
    """An error answered as JSON.

    Args:
        status: HTTP status.
        code: Stable machine-readable code (``validation_error``, ``not_found``, …).
        message: Human-readable explanation.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        """The JSON body of the error."""
        return {"error": {"code": self.code, "message": self.message}}


def invalid(message: str) -> ApiError:
    """A 400 validation error."""
    return ApiError(400, "validation_error", message)


def not_found(what: str) -> ApiError:
    """A 404 for a missing object."""
    return ApiError(404, "not_found", f"{what} not found")


def conflict(message: str) -> ApiError:
    """A 409 (uniqueness, state)."""
    return ApiError(409, "conflict", message)


@dataclass(frozen=True)
class Field:
    """One writable field of a resource.

    Attributes:
        kind: ``str``, ``int``, ``float``, ``bool``, ``decimal``, ``url``, or ``choice``.
        required: Must be present on create.
        nullable: May be null.
        minimum: Lower bound of a number.
        maximum: Upper bound of a number.
        max_length: Longest string.
        choices: Allowed values of a ``choice``.
    """

    kind: str
    required: bool = False
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    choices: tuple[str, ...] = ()

    def clean(self, name: str, value: Any) -> Any:
        """Check and convert one value.

        Args:
            name: Field name (for messages).
            value: The JSON value.

        Returns:
            The Python value.

        Raises:
            ApiError: 400 when the value does not fit.
        """
        if value is None:
            if self.nullable:
                return None
            raise invalid(f"{name} may not be null")
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise invalid(f"{name} must be true or false")
            return value
        if self.kind in ("str", "url", "choice"):
            if not isinstance(value, str):
                raise invalid(f"{name} must be a string")
            value = value.strip()
            if self.required and not value:
                raise invalid(f"{name} may not be empty")
            if self.max_length and len(value) > self.max_length:
                raise invalid(f"{name} is longer than {self.max_length} characters")
            if self.kind == "url":
                parsed = urlparse(value)
                if parsed.scheme not in ("http", "https") or not parsed.netloc:
                    raise invalid(f"{name} must be an http(s) URL")
            if self.kind == "choice" and value not in self.choices:
                raise invalid(f"{name} must be one of {', '.join(self.choices)}")
            return value
        number = self._number(name, value)
        if self.minimum is not None and number < self.minimum:
            raise invalid(f"{name} must be at least {self.minimum}")
        if self.maximum is not None and number > self.maximum:
            raise invalid(f"{name} must be at most {self.maximum}")
        return number

    def _number(self, name: str, value: Any) -> int | float | Decimal:
        if isinstance(value, bool):
            raise invalid(f"{name} must be a number")
        if self.kind == "int":
            if not isinstance(value, int):
                raise invalid(f"{name} must be an integer")
            return value
        if self.kind == "float":
            if not isinstance(value, int | float):
                raise invalid(f"{name} must be a number")
            return float(value)
        try:
            return Decimal(str(value))
        except InvalidOperation as exc:
            raise invalid(f"{name} must be a number") from exc


def json_body() -> dict[str, Any]:
    """The request's JSON object.

    Returns:
        The object.

    Raises:
        ApiError: 400 when the body is not a JSON object.
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object")
    return body


def clean_body(body: dict[str, Any], fields: dict[str, Field], *, partial: bool) -> dict[str, Any]:
    """Validate a create (``partial=False``) or update body against a field table.

    Args:
        body: The JSON object.
        fields: Writable fields.
        partial: An update: no field is required.

    Returns:
        The cleaned values of the fields present.

    Raises:
        ApiError: 400 on an unknown field, a missing required one, or a bad value.
    """
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise invalid(f"unknown field(s): {', '.join(unknown)}")
    if not partial:
        missing = [name for name, field in fields.items() if field.required and name not in body]
        if missing:
            raise invalid(f"missing field(s): {', '.join(missing)}")
    return {name: fields[name].clean(name, value) for name, value in body.items()}


def int_arg(name: str, default: int | None = None, minimum: int | None = None) -> int | None:
    """An integer query parameter.

    Args:
        name: Parameter name.
        default: When absent.
        minimum: Smallest allowed value.

    Returns:
        The value.

    Raises:
        ApiError: 400 when it is not an integer or is too small.
    """
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise invalid(f"{name} must be an integer") from exc
    if minimum is not None and value < minimum:
        raise invalid(f"{name} must be at least {minimum}")
    return value
