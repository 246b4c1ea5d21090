"""Groups and supergroups the bot was asked in: the admin sees them and may block one."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import db
from shared.models.types import UtcDateTime, str_enum, utcnow


class GroupStatus(enum.StrEnum):
    """Whether the bot answers in a group: ``active``, or ``blocked`` by an admin."""

    ACTIVE = "active"
    BLOCKED = "blocked"


class Group(db.Model):
    """A group or supergroup chat in which someone addressed the bot.

    Invariants: ``chat_id`` (Telegram's, negative) is unique; the row is created by the first
    request in the group and refreshed (title, forum flag, ``last_seen_at``) by later ones. Its
    members, requests and dialogs are read from the message log (``requests.chat_id``); access,
    plans and limits stay each sender's own — a blocked group refuses everyone in it.
    """

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, unique=True, nullable=False)
    title: Mapped[str] = mapped_column(String(256), nullable=False, default="")
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="group")
    is_forum: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    status: Mapped[GroupStatus] = mapped_column(
        str_enum(GroupStatus, "group_status"), nullable=False, default=GroupStatus.ACTIVE
    )
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)

    def __repr__(self) -> str:
        """Short form for logs and the shell."""
        return f"<Group {self.chat_id} {self.title!r} {self.status}>"
