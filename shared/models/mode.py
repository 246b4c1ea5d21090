"""Answer modes: named system prompts users switch between."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import db
from shared.models.types import UtcDateTime, utcnow


class Mode(db.Model):
    """A mode such as «Краткий ответ»: the system prompt sent first in every dialog.

    Invariant: at most one mode has ``is_default`` (a partial unique index enforces it).
    """

    __tablename__ = "modes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    system_prompt: Mapped[str] = mapped_column(Text, nullable=False, default="")
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)

    __table_args__ = (
        Index(
            "uq_modes_single_default",
            "is_default",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )

    def __repr__(self) -> str:
        """Short form for logs and the shell."""
        return f"<Mode {self.id} {self.name!r}>"
