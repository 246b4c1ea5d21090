"""Key/value settings editable at runtime from the admin (bot token, webhook URL, ...)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import db
from shared.models.types import UtcDateTime, utcnow


class Setting(db.Model):
    """One setting. Secret values (``is_secret``) are stored encrypted and never shown back."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    is_secret: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )

    def __repr__(self) -> str:
        """Short form for logs and the shell (never a secret value)."""
        return f"<Setting {self.key}>"
