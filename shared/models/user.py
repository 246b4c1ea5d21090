"""Telegram users of the bot."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db import db
from shared.models.types import UtcDateTime, str_enum, utcnow

if TYPE_CHECKING:
    from shared.models.llm_model import LLMModel
    from shared.models.mode import Mode
    from shared.models.plan import Plan


class UserStatus(enum.StrEnum):
    """Access state of a user: only ``active`` users get answers from the LLM."""

    ACTIVE = "active"
    PENDING = "pending"
    BLOCKED = "blocked"


class User(db.Model):
    """A person known by their Telegram id.

    Invariants: ``telegram_id`` is unique; ``daily_request_limit`` None means the plan's
    requests per day (set, it overrides them); ``mode``/``model`` None mean the defaults chosen
    in the settings; ``plan`` None, or a ``plan_expires_at`` in the past, means the default plan
    (``shared.services.plans.effective_plan``; the expiry job then records the fallback);
    ``plan_expires_at`` None means no expiry; ``reachable`` is False
    from Telegram's 403 ("bot was blocked by the user", "user is deactivated") until the user
    writes again — nothing is sent to them meanwhile.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True, nullable=False)
    username: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(128))
    last_name: Mapped[str | None] = mapped_column(String(128))
    language_code: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[UserStatus] = mapped_column(
        str_enum(UserStatus, "user_status"), nullable=False, default=UserStatus.ACTIVE
    )
    daily_request_limit: Mapped[int | None] = mapped_column(Integer)
    mode_id: Mapped[int | None] = mapped_column(ForeignKey("modes.id", ondelete="SET NULL"))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("llm_models.id", ondelete="SET NULL"))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="SET NULL"))
    plan_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    plan_reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reachable: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True, server_default=true()
    )

    mode: Mapped[Mode | None] = relationship(lazy="joined")
    model: Mapped[LLMModel | None] = relationship(lazy="joined")
    plan: Mapped[Plan | None] = relationship(lazy="joined")

    __table_args__ = (
        Index("ix_users_status", "status"),
        Index("ix_users_last_seen_at", "last_seen_at"),
        Index("ix_users_plan_expires_at", "plan_expires_at"),
    )

    def __repr__(self) -> str:
        """Short form for logs and the shell."""
        return f"<User {self.telegram_id} {self.status}>"
