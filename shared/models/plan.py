"""Plans (what a user may use: limits, models, a price in Telegram Stars) and plan changes."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db import db
from shared.models.types import UtcDateTime, str_enum, utcnow

if TYPE_CHECKING:
    from shared.models.llm_model import LLMModel

#: Which models a plan's users may choose (none listed = every enabled model).
plan_models = Table(
    "plan_models",
    db.metadata,
    Column("plan_id", ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True),
    Column("model_id", ForeignKey("llm_models.id", ondelete="CASCADE"), primary_key=True),
)


class Plan(db.Model):
    """A plan such as «Free» or «Paid»: limits, the models allowed, and a price in Stars.

    Invariants: exactly one plan has ``is_default`` once seeded (a partial unique index allows
    at most one; ``shared.services.plans`` keeps at least one and refuses to delete it); every
    limit None means unlimited; ``price_stars`` None means not for sale; ``period_days`` is what
    one purchase adds; ``fallback_model_id``, when set, answers with that model instead of
    refusing once the dollar limit is reached (the other limits still hold).
    """

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    requests_per_day: Mapped[int | None] = mapped_column(Integer)
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger)
    tokens_per_month: Mapped[int | None] = mapped_column(BigInteger)
    cost_usd_per_month: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    price_stars: Mapped[int | None] = mapped_column(Integer)
    period_days: Mapped[int] = mapped_column(Integer, nullable=False, default=30)
    fallback_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("llm_models.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)

    models: Mapped[list[LLMModel]] = relationship(
        secondary=plan_models, lazy="selectin", order_by="LLMModel.name"
    )
    fallback_model: Mapped[LLMModel | None] = relationship(
        foreign_keys=[fallback_model_id], lazy="joined"
    )

    __table_args__ = (
        Index(
            "uq_plans_single_default",
            "is_default",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )

    @property
    def model_ids(self) -> list[int]:
        """Ids of the models the plan allows (empty = every enabled model)."""
        return [model.id for model in self.models]

    def __str__(self) -> str:
        """The plan's name (what admin selects show)."""
        return self.name

    def __repr__(self) -> str:
        """Short form for logs and the shell."""
        return f"<Plan {self.id} {self.name!r}>"


class PlanChangeReason(enum.StrEnum):
    """Why a user's plan or its expiry changed."""

    ADMIN = "admin"
    PURCHASE = "purchase"
    REFUND = "refund"
    EXPIRY = "expiry"


class PlanChange(db.Model):
    """One change of a user's plan or expiry: who, when, why, from what to what.

    Rows are only inserted, in the transaction of the change (``shared.services.plans``).
    Plan names are copied so the history reads the same after a plan is renamed or deleted.
    """

    __tablename__ = "plan_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    reason: Mapped[PlanChangeReason] = mapped_column(
        str_enum(PlanChangeReason, "plan_change_reason"), nullable=False
    )
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    from_plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="SET NULL"))
    from_plan_name: Mapped[str | None] = mapped_column(String(64))
    from_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    to_plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="SET NULL"))
    to_plan_name: Mapped[str | None] = mapped_column(String(64))
    to_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("ix_plan_changes_user_id_at", "user_id", "at"),)

    def __repr__(self) -> str:
        """Short form for logs and the shell."""
        return f"<PlanChange user={self.user_id} {self.reason} {self.to_plan_name!r}>"
