"""The admin audit log: who changed which setting, model, mode, user or account, and when."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import db
from shared.models.types import UtcDateTime, str_enum, utcnow


class AuditAction(enum.StrEnum):
    """What happened to the object."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class AuditEntry(db.Model):
    """One change an admin (admin UI, JSON API or CLI) made to one object.

    Written by ``shared.services.audit`` in the same transaction as the change, so a change
    that is rolled back leaves no entry. Invariants: rows are only ever inserted (never edited
    once committed); ``changes`` maps a field to ``[old, new]`` (JSON values; ``old`` is null on
    create, ``new`` null on delete), except secret fields, whose value is only ``"set"``,
    ``"cleared"`` or ``"re-encrypted"`` — a secret, a ciphertext or a hash is never stored;
    ``object_id`` is the id the JSON API addresses the object by (a setting's key, a user's
    Telegram id, else the row id).
    """

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    action: Mapped[AuditAction] = mapped_column(
        str_enum(AuditAction, "audit_action"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    object_id: Mapped[str] = mapped_column(String(64), nullable=False)
    label: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)

    __table_args__ = (
        Index("ix_audit_entries_at", "at"),
        Index("ix_audit_entries_kind_object_id", "kind", "object_id"),
    )

    def __repr__(self) -> str:
        """Short form for logs and the shell."""
        return f"<AuditEntry {self.actor} {self.action} {self.kind} {self.object_id}>"
