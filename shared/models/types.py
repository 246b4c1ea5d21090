"""Column types and helpers shared by the models."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import DateTime, Dialect, Enum
from sqlalchemy.types import TypeDecorator

#: The largest row id: ``Integer`` primary keys are 32-bit in every supported database.
MAX_ROW_ID = 2**31 - 1


def row_id(value: object) -> int | None:
    """An id as a row could have it: a positive integer within :data:`MAX_ROW_ID`, else None.

    Accepts the integer or its decimal text (button data); anything else, or an id no row can
    have, is None, so a forged id is "not found" instead of a database error.

    Args:
        value: The id as received.

    Returns:
        The id, or None.
    """
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ROW_ID:
        return value
    return None


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime (the only kind stored)."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always an aware UTC datetime in Python.

    PostgreSQL stores ``timestamptz``; SQLite stores the UTC wall time. Naive values are refused on
    the way in, so a local time can never be stored by mistake.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Normalize to UTC before storing.

        Args:
            value: An aware datetime, or None.
            dialect: The database dialect.

        Returns:
            The UTC value (naive for SQLite, which has no time zones).

        Raises:
            ValueError: On a naive datetime.
        """
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use shared.models.types.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return stored values as aware UTC datetimes.

        Args:
            value: What the driver returned.
            dialect: The database dialect.

        Returns:
            An aware UTC datetime, or None.
        """
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def str_enum(enum_class: type[enum.StrEnum], name: str) -> Enum:
    """Build a portable enum column type: VARCHAR plus a CHECK constraint holding the values.

    Args:
        enum_class: The Python enum; its values are what is stored.
        name: The constraint name.

    Returns:
        The SQLAlchemy type.
    """
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )
