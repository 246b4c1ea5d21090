"""LLM endpoints: OpenAI-compatible Chat Completions models the bot can route to."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, Numeric, String, Text, text
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db import db
from shared.models.types import UtcDateTime, utcnow

#: Price columns: USD per one million tokens.
PRICE = Numeric(12, 6)


class LLMModel(db.Model):
    """One model configuration: where to call (``base_url``), what (``model``), and at what price.

    Invariants: ``api_key_encrypted`` holds a Fernet token (never the plain key); at most one row
    has ``is_default`` (partial unique index); ``fallback`` is tried when this model gives up.
    """

    __tablename__ = "llm_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    base_url: Mapped[str] = mapped_column(String(512), nullable=False)
    api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    api_key_last4: Mapped[str | None] = mapped_column(String(4))
    temperature: Mapped[float | None] = mapped_column(Float)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    context_window: Mapped[int | None] = mapped_column(Integer)
    #: The model accepts images (photos are sent to it as image content parts).
    vision: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=sa_false()
    )
    #: The endpoint's speech-to-text model (``/audio/transcriptions``); None: no voice.
    transcription_model: Mapped[str | None] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    input_price_per_1m: Mapped[Decimal] = mapped_column(PRICE, nullable=False, default=0)
    output_price_per_1m: Mapped[Decimal] = mapped_column(PRICE, nullable=False, default=0)
    fallback_model_id: Mapped[int | None] = mapped_column(
        ForeignKey("llm_models.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )

    fallback: Mapped[LLMModel | None] = relationship(remote_side=[id])

    __table_args__ = (
        Index(
            "uq_llm_models_single_default",
            "is_default",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )

    def __repr__(self) -> str:
        """Short form for logs and the shell (never the key)."""
        return f"<LLMModel {self.id} {self.name!r} {self.model}>"
