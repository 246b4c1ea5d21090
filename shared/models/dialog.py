"""Dialogs and the message log: one row per user request, completed with the LLM's answer."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db import db
from shared.models.types import UtcDateTime, str_enum, utcnow

if TYPE_CHECKING:
    from shared.models.user import User


class Dialog(db.Model):
    """A conversation: the LLM sees the earlier turns of the same dialog only.

    Invariants: ``id`` is unique across the system (it is the dialog id users and admins see);
    ``last_message_number`` is the number given to the newest message, so numbers run 1, 2,
    3 … without gaps. A private dialog (``chat_id`` None) belongs to its user, who has at most
    one open; a group's dialog is shared by the group's members: ``chat_id`` is the group and
    ``thread_id`` its forum topic (0 outside topics), at most one open per pair, and it belongs
    to no user (``user_id`` None: deleting a member deletes their own rows, not the group's
    conversation).
    """

    __tablename__ = "dialogs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    mode_id: Mapped[int | None] = mapped_column(ForeignKey("modes.id", ondelete="SET NULL"))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_message_number: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    thread_id: Mapped[int | None] = mapped_column(BigInteger)

    user: Mapped[User | None] = relationship()

    __table_args__ = (
        Index("ix_dialogs_user_id_ended_at", "user_id", "ended_at"),
        # At most one open private dialog per user and one open dialog per group topic,
        # enforced by the database (concurrent first messages cannot open two).
        Index(
            "uq_dialogs_user_id_open",
            "user_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL AND chat_id IS NULL"),
            postgresql_where=text("ended_at IS NULL AND chat_id IS NULL"),
        ),
        Index(
            "uq_dialogs_chat_open",
            "chat_id",
            "thread_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL AND chat_id IS NOT NULL"),
            postgresql_where=text("ended_at IS NULL AND chat_id IS NOT NULL"),
        ),
    )

    def __repr__(self) -> str:
        """Short form for logs and the shell."""
        return f"<Dialog {self.id} user={self.user_id}>"


class RequestStatus(enum.StrEnum):
    """Where a request stands: ``pending`` until answered, then ``ok``, ``error``, ``denied``.

    ``stopped``: the user stopped the generation (/stop); what was written so far is the answer.
    """

    PENDING = "pending"
    OK = "ok"
    ERROR = "error"
    DENIED = "denied"
    STOPPED = "stopped"


class ErrorKind(enum.StrEnum):
    """Why a request was refused or not answered; picks the text the user gets.

    Refusals (status ``denied``): ``blocked``, ``pending``, ``limit``, ``group_blocked`` (an
    admin blocked the group), and what the attachment rules refuse before any download:
    ``no_vision`` (a photo, no model that sees images), ``no_voice`` (voice, no transcription
    model), ``too_long`` (audio over the length limit), ``too_large`` (a file over the size
    limit), ``unsupported_file`` (not a text document). Failures (status ``error``):
    ``no_model`` (nothing enabled), ``model_key`` (the stored key is unreadable), ``llm`` (the
    model and its fallback gave up), ``transcription`` (speech-to-text failed), ``file`` (the
    file could not be downloaded or read), ``gave_up`` (delivery or the worker kept failing).
    """

    BLOCKED = "blocked"
    PENDING = "pending"
    LIMIT = "limit"
    NO_MODEL = "no_model"
    MODEL_KEY = "model_key"
    LLM = "llm"
    GAVE_UP = "gave_up"
    GROUP_BLOCKED = "group_blocked"
    NO_VISION = "no_vision"
    NO_VOICE = "no_voice"
    TOO_LONG = "too_long"
    TOO_LARGE = "too_large"
    UNSUPPORTED_FILE = "unsupported_file"
    TRANSCRIPTION = "transcription"
    FILE = "file"


class Request(db.Model):
    """One user request and the answer to it: the row of the message log.

    Invariants: ``(dialog_id, number)`` is unique; ``update_id`` (Telegram's) is unique, which
    makes processing an update twice harmless; ``delivered_parts`` counts the messages of the
    reply (answer, apology or refusal) Telegram accepted, and ``delivered_at`` is set once the
    reply is settled — so a retry sends only what is missing; ``model_name``/``mode_name`` are
    snapshots, so the log stays true after a model or mode is renamed or deleted.

    Beyond text: ``attachment`` describes what came with the message (``kind`` — ``photo``,
    ``voice``, ``audio``, ``document`` — its Telegram ``file_id``, size in bytes and the
    kind's own fields; never the bytes); for voice ``request_text`` is the transcript once
    made, for a document ``attachment_text`` is the text read from it (trimmed to the model's
    budget). ``thread_id`` is the forum topic the reply goes to.
    """

    __tablename__ = "requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dialog_id: Mapped[int] = mapped_column(
        ForeignKey("dialogs.id", ondelete="CASCADE"), nullable=False
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    update_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    request_text: Mapped[str] = mapped_column(Text, nullable=False)
    request_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    response_text: Mapped[str | None] = mapped_column(Text)
    response_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    delivered_parts: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )
    model_id: Mapped[int | None] = mapped_column(ForeignKey("llm_models.id", ondelete="SET NULL"))
    model_name: Mapped[str | None] = mapped_column(String(128))
    mode_name: Mapped[str | None] = mapped_column(String(64))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(14, 8))
    status: Mapped[RequestStatus] = mapped_column(
        str_enum(RequestStatus, "request_status"), nullable=False, default=RequestStatus.PENDING
    )
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[ErrorKind | None] = mapped_column(str_enum(ErrorKind, "error_kind"))
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    thread_id: Mapped[int | None] = mapped_column(BigInteger)
    attachment: Mapped[dict | None] = mapped_column(JSON)
    attachment_text: Mapped[str | None] = mapped_column(Text)

    dialog: Mapped[Dialog] = relationship()
    user: Mapped[User] = relationship()

    __table_args__ = (
        UniqueConstraint("dialog_id", "number"),
        Index("ix_requests_request_at", "request_at"),
        Index("ix_requests_user_id_request_at", "user_id", "request_at"),
        Index("ix_requests_status_request_at", "status", "request_at"),
        Index("ix_requests_model_id_request_at", "model_id", "request_at"),
        Index("ix_requests_chat_id_delivered_at", "chat_id", "delivered_at"),
    )

    def __repr__(self) -> str:
        """Short form for logs and the shell."""
        return f"<Request {self.dialog_id}#{self.number} {self.status}>"
