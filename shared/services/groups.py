"""Groups and supergroups: when the bot answers there, and the groups the admin sees.

Rules kept here (and nowhere else):

- a message in a group is for the bot only when it is addressed to it (:func:`addressed`): it
  mentions the bot (``@username``, or the bot's name as the first word), replies to one of the
  bot's messages, or is a command meant for this bot (one of its own ``/cmd``, or
  ``/cmd@this_bot``; never ``/cmd@other_bot`` or an unknown bare command); anything else in a
  group is ignored at the door;
- the address is taken out of the question (:func:`strip_address`): the model reads
  "what is 2+2", not "@bot what is 2+2";
- a group is registered by the first request in it and refreshed by later ones
  (:func:`register_group`); a group an admin blocked refuses everyone in it;
- :func:`set_status` is the one writer of a group's status; a blocked group cannot be deleted
  (:func:`delete_group`: it would come back active with its next message);
- its dialog is shared by its members, one per forum topic (``shared.services.dialogs``).

Access, plans and limits stay the sender's own: a group is a place, not an account.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from shared.db import db, page_of
from shared.models import Group, GroupStatus, Request
from shared.models.types import utcnow

logger = logging.getLogger(__name__)

#: Chat types in which the bot answers only when addressed.
GROUP_TYPES = frozenset({"group", "supergroup"})
#: ``last_seen_at`` and the title are written at most this often per group.
SEEN_RESOLUTION = timedelta(minutes=1)
#: Characters that may follow the bot's name used as the first word ("Bot, …", "Bot: …").
_NAME_END = re.compile(r"[\s,.:;!?\u2014-]")

_GROUPS = Group.__table__


@dataclass(frozen=True)
class BotIdentity:
    """Who the bot is, as ``getMe`` says (to recognise messages addressed to it).

    Attributes:
        id: The bot's user id.
        username: Its username, without ``@`` (compared case-insensitively).
        first_name: Its display name (a message may start with it).
    """

    id: int
    username: str
    first_name: str

    @classmethod
    def of(cls, user: dict[str, Any]) -> BotIdentity:
        """From ``getMe``'s ``User`` (``TelegramClient.me``)."""
        return cls(
            int(user["id"]), str(user.get("username") or ""), str(user.get("first_name") or "")
        )


def is_group(chat: dict[str, Any] | None) -> bool:
    """Whether a Telegram ``Chat`` object is a group or supergroup."""
    return isinstance(chat, dict) and chat.get("type") in GROUP_TYPES


def topic_of(message: dict[str, Any]) -> int | None:
    """The forum topic a message was sent in (replies go there), or None outside topics."""
    thread = message.get("message_thread_id")
    return thread if message.get("is_topic_message") is True and isinstance(thread, int) else None


def dialog_place(message: dict[str, Any]) -> tuple[int | None, int | None]:
    """The group and topic whose shared dialog a message belongs to; (None, None) in private."""
    chat = message.get("chat")
    if not is_group(chat):
        return None, None
    return chat["id"], topic_of(message)


def _utf16_slice(text: str, offset: int, length: int) -> str:
    """The part of ``text`` at Telegram's UTF-16 ``offset``/``length``."""
    encoded = text.encode("utf-16-le")
    return encoded[offset * 2 : (offset + length) * 2].decode("utf-16-le", errors="ignore")


def _text_and_entities(message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The message's text (or caption) and its entities (only the well-formed ones)."""
    if isinstance(message.get("text"), str):
        text, entities = message["text"], message.get("entities")
    else:
        caption = message.get("caption")
        text = caption if isinstance(caption, str) else ""
        entities = message.get("caption_entities")
    if not isinstance(entities, list):
        return text, []
    return text, [e for e in entities if isinstance(e, dict)]


def command_target(text: str) -> str | None:
    """The ``@bot`` a leading ``/command@bot`` names, lower-case; None without one."""
    if not text.startswith("/"):
        return None
    word = text[1:].split(maxsplit=1)[0] if len(text) > 1 else ""
    _command, at, target = word.partition("@")
    return target.lower() if at else None


def _handle_in(text: str, username: str) -> bool:
    """Whether ``@username`` occurs in the text as a whole handle (not a longer one's start)."""
    pattern = rf"@{re.escape(username)}(?![A-Za-z0-9_])"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def addressed(message: dict[str, Any], bot: BotIdentity, commands: frozenset[str]) -> bool:
    """Whether a group message is for this bot (see the module's rules).

    Args:
        message: Telegram's ``Message`` in a group.
        bot: The bot's identity.
        commands: The bot's own commands (a bare ``/command`` in a group is another bot's
            unless it is one of these).

    Returns:
        True for a mention, a reply to the bot, the bot's name as the first word, or a
        command for this bot; False for everything else.
    """
    text, entities = _text_and_entities(message)
    if text.startswith("/"):
        target = command_target(text)
        if target is not None:
            return target == bot.username.lower()
        command = text[1:].split(maxsplit=1)[0].lower() if len(text) > 1 else ""
        return command in commands
    reply = message.get("reply_to_message")
    sender = reply.get("from") if isinstance(reply, dict) else None
    if isinstance(sender, dict) and sender.get("id") == bot.id:
        return True
    handle = "@" + bot.username.lower()
    for entity in entities:
        if entity.get("type") == "mention":
            offset, length = entity.get("offset"), entity.get("length")
            if isinstance(offset, int) and isinstance(length, int):
                if _utf16_slice(text, offset, length).lower() == handle:
                    return True
        elif entity.get("type") == "text_mention":
            user = entity.get("user")
            if isinstance(user, dict) and user.get("id") == bot.id:
                return True
    if not entities and bot.username and _handle_in(text, bot.username):
        return True  # a client that sent no entities
    return _starts_with_name(text, bot.first_name)


def _starts_with_name(text: str, name: str) -> bool:
    """Whether ``text`` begins with ``name`` as a whole word (case-insensitive)."""
    name = name.strip()
    if not name or not text.lower().startswith(name.lower()):
        return False
    rest = text[len(name) :]
    return not rest or bool(_NAME_END.match(rest))


def strip_address(text: str, bot: BotIdentity) -> str:
    """The question without the address: ``@bot`` anywhere, or the bot's name leading it.

    Args:
        text: The message text (or caption).
        bot: The bot's identity.

    Returns:
        The text with the mentions of this bot removed and the leading name and punctuation
        taken off; the text unchanged when nothing addressed the bot in it.
    """
    pattern = rf"@{re.escape(bot.username)}(?![A-Za-z0-9_])"
    stripped = re.sub(pattern, "", text, flags=re.IGNORECASE) if bot.username else text
    if _starts_with_name(stripped.lstrip(), bot.first_name):
        stripped = stripped.lstrip()[len(bot.first_name.strip()) :]
    stripped = stripped.lstrip(" \t,.:;!?\u2014-")
    return re.sub(r"[ \t]{2,}", " ", stripped).strip()


def register_group(chat: dict[str, Any]) -> GroupStatus:
    """Register a group on its first request, or refresh its title and activity.

    Safe under concurrency (a savepoint guards the insert; the loser reads the winner's row);
    writes only what changed, ``last_seen_at`` at most once per :data:`SEEN_RESOLUTION`.
    Flushed, not committed.

    Args:
        chat: Telegram's ``Chat`` object of the group.

    Returns:
        The group's status (``blocked``: refuse everyone in it).
    """
    chat_id = int(chat["id"])
    title = str(chat.get("title") or "")[:256]
    forum = chat.get("is_forum") is True
    conn = db.session.connection()
    now = utcnow()
    row = conn.execute(_find(chat_id)).first()
    if row is None:
        try:
            with db.session.begin_nested():
                db.session.connection().execute(
                    insert(_GROUPS).values(
                        chat_id=chat_id,
                        title=title,
                        kind=str(chat.get("type") or "group")[:16],
                        is_forum=forum,
                        status=GroupStatus.ACTIVE,
                        first_seen_at=now,
                        last_seen_at=now,
                    )
                )
            logger.info("registered group chat_id=%s", chat_id)
            return GroupStatus.ACTIVE
        except IntegrityError:
            row = db.session.connection().execute(_find(chat_id)).one()
    changes: dict[str, Any] = {}
    if title and title != row.title:
        changes["title"] = title
    if forum != row.is_forum:
        changes["is_forum"] = forum
    if now - row.last_seen_at >= SEEN_RESOLUTION:
        changes["last_seen_at"] = now
    if changes:
        conn.execute(update(_GROUPS).where(_GROUPS.c.id == row.id).values(**changes))
    return GroupStatus(row.status)


def _find(chat_id: int) -> Select:
    """The columns :func:`register_group` reads of a group."""
    return select(
        _GROUPS.c.id, _GROUPS.c.status, _GROUPS.c.title, _GROUPS.c.is_forum, _GROUPS.c.last_seen_at
    ).where(_GROUPS.c.chat_id == chat_id)


def set_status(group: Group, status: GroupStatus) -> None:
    """Block a group (the bot refuses everyone in it) or let it be answered again.

    The one writer of a group's status, for the admin UI and the API alike. Flushed, not
    committed; the audit log records the change.

    Args:
        group: The group.
        status: The new status.
    """
    if group.status != status:
        logger.info("group chat_id=%s %s -> %s", group.chat_id, group.status, status)
    group.status = status
    db.session.flush()


class GroupBlocked(ValueError):
    """A blocked group cannot be deleted: its next message would register it again, active."""


def delete_group(group: Group) -> None:
    """Forget a group (the admin's «Delete»): its next request registers it again.

    Only an active group: deleting a blocked one would quietly unblock it. Its requests and
    dialogs stay in the log. Flushed, not committed; the audit log records the deletion.

    Args:
        group: The group.

    Raises:
        GroupBlocked: If the group is blocked (unblock it first).
    """
    if group.status == GroupStatus.BLOCKED:
        raise GroupBlocked(
            "a blocked group cannot be deleted: its next message would register it again, "
            "active; unblock it first"
        )
    logger.info("group chat_id=%s deleted", group.chat_id)
    db.session.delete(group)
    db.session.flush()


def find_groups(
    *, status: GroupStatus | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Group], int]:
    """A page of groups, most recently seen first, and how many match (the admin API's list).

    Args:
        status: Only groups with this status.
        limit: Page size (capped at :data:`shared.db.MAX_PAGE`).
        offset: Rows to skip.

    Returns:
        The groups and the number of matching groups.
    """
    query = select(Group)
    if status is not None:
        query = query.where(Group.status == GroupStatus(status))
    return page_of(query, (Group.last_seen_at.desc(), Group.id.desc()), limit, offset)


@dataclass(frozen=True)
class GroupActivity:
    """What the message log says about a group.

    Attributes:
        members: Distinct senders who asked the bot there.
        requests: Requests logged there.
        last_request_at: The newest request's time, or None.
    """

    members: int
    requests: int
    last_request_at: datetime | None


def activity_of(chat_ids: list[int]) -> dict[int, GroupActivity]:
    """The activity of several groups in one query (the admin's list and the API).

    Args:
        chat_ids: Telegram chat ids of groups.

    Returns:
        Activity by chat id; a group with no request yet has zeros.
    """
    found: dict[int, GroupActivity] = {chat_id: GroupActivity(0, 0, None) for chat_id in chat_ids}
    if not chat_ids:
        return found
    rows = db.session.execute(
        select(
            Request.chat_id,
            func.count(func.distinct(Request.user_id)),
            func.count(Request.id),
            func.max(Request.request_at),
        )
        .where(Request.chat_id.in_(chat_ids))
        .group_by(Request.chat_id)
    ).all()
    for chat_id, members, requests, last in rows:
        found[chat_id] = GroupActivity(members, requests, last)
    return found
