"""Payments in Telegram Stars: one row per ``successful_payment`` Telegram delivered."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import db
from shared.models.types import UtcDateTime, str_enum, utcnow


class PaymentStatus(enum.StrEnum):
    """``paid`` until refunded through ``refundStarPayment``."""

    PAID = "paid"
    REFUNDED = "refunded"


class Payment(db.Model):
    """A plan bought with Telegram Stars.

    Invariants: ``telegram_payment_charge_id`` is unique, so a ``successful_payment`` that
    Telegram delivers twice extends the plan once; ``period_days`` and the plan's name are
    copied at purchase, so a refund takes back exactly what was given even after the plan
    changed; ``telegram_id`` is kept beside ``user_id`` for the API and for refunds, and a
    payment outlives its user (``user_id`` becomes null: it can still be refunded and counts in
    the revenue); ``update_id`` is the update that recorded it.
    """

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    telegram_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    update_id: Mapped[int | None] = mapped_column(BigInteger)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="SET NULL"))
    plan_name: Mapped[str] = mapped_column(String(64), nullable=False)
    stars: Mapped[int] = mapped_column(Integer, nullable=False)
    period_days: Mapped[int] = mapped_column(Integer, nullable=False)
    telegram_payment_charge_id: Mapped[str] = mapped_column(
        String(255), unique=True, nullable=False
    )
    provider_payment_charge_id: Mapped[str | None] = mapped_column(String(255))
    invoice_payload: Mapped[str] = mapped_column(String(128), nullable=False)
    status: Mapped[PaymentStatus] = mapped_column(
        str_enum(PaymentStatus, "payment_status"), nullable=False, default=PaymentStatus.PAID
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    refunded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    refunded_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        Index("ix_payments_created_at", "created_at"),
        Index("ix_payments_user_id", "user_id"),
    )

    def __repr__(self) -> str:
        """Short form for logs and the shell."""
        return f"<Payment {self.id} {self.stars}⭐ {self.status}>"
