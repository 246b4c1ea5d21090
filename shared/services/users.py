"""Telegram users: registration by Telegram id, activity, access, and their mode/model choice."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, false, insert, select, update
from sqlalchemy.exc import IntegrityError

from shared.db import db, page_of
from shared.extensions import runtime, telegram
from shared.models import ErrorKind, LLMModel, Mode, Plan, PlanChangeReason, User, UserStatus
from shared.models.types import utcnow
from shared.runtime import Snapshot
from shared.services import audit, plans
from shared.services.settings import REGISTRATION_APPROVAL

logger = logging.getLogger(__name__)

#: ``last_seen_at`` is refreshed when it is older than this (one write a minute, not a message).
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


def get_user(telegram_id: int) -> User | None:
    """Find a user by Telegram id."""
    return db.session.scalar(select(User).where(User.telegram_id == telegram_id))


@dataclass(frozen=True)
class Refusal:
    """Why a user's request is refused.

    Attributes:
        kind: ``blocked``, ``pending`` or ``limit`` (picks the text the user gets).
        detail: The rule or limit, for the admin (the log row's ``error``).
    """

    kind: ErrorKind
    detail: str


@dataclass(frozen=True)
class Sender:
    """What the answering pipeline needs of a user, read without loading an entity.

    Attributes:
        id: The user's row id.
        telegram_id: Their Telegram id.
        status: ``active``, ``pending`` or ``blocked``.
        mode_id: Their chosen mode, or None.
        model_id: Their chosen model, or None.
        daily_request_limit: Their own limit, or None.
        plan_id: Their plan, or None (the default plan).
        plan_expires_at: When their plan ends, or None.
    """

    id: int
    telegram_id: int
    status: UserStatus
    mode_id: int | None
    model_id: int | None
    daily_request_limit: int | None
    plan_id: int | None = None
    plan_expires_at: datetime | None = None


_USERS = User.__table__
_FIND_USER = select(
    _USERS.c.id,
    _USERS.c.status,
    _USERS.c.mode_id,
    _USERS.c.model_id,
    _USERS.c.daily_request_limit,
    _USERS.c.plan_id,
    _USERS.c.plan_expires_at,
    _USERS.c.username,
    _USERS.c.first_name,
    _USERS.c.last_name,
    _USERS.c.language_code,
    _USERS.c.last_seen_at,
    _USERS.c.reachable,
).where(_USERS.c.telegram_id == bindparam("tid"))
#: Profile fields refreshed from Telegram's ``User`` object (kept when Telegram omits them).
PROFILE_FIELDS = ("username", "first_name", "last_name", "language_code")
#: Their column sizes: longer values (only a forged update has them) are cut.
PROFILE_LENGTHS = {"username": 64, "first_name": 128, "last_name": 128, "language_code": 16}


def _profile(tg_user: dict[str, Any]) -> dict[str, str]:
    """The profile fields Telegram sent, as strings that fit their columns (no NUL bytes)."""
    profile = {}
    for name in PROFILE_FIELDS:
        value = tg_user.get(name)
        if isinstance(value, str) and value:
            cleaned = value.replace("\x00", "")[: PROFILE_LENGTHS[name]]
            if cleaned:
                profile[name] = cleaned
    return profile


#: How long the pacer refuses a chat after its 403 (the user writing again lifts it at once).
UNREACHABLE_DAYS = 7


def register_sender(
    tg_user: dict[str, Any], *, snapshot: Snapshot | None = None, private: bool = True
) -> Sender:
    """Register a Telegram user on first contact, or refresh their profile and activity.

    A new user's status follows the ``registration`` setting: ``open`` → active,
    ``approval`` → pending. Safe under concurrency: when two updates of a new user race, the
    loser of the insert reads the winner's row. Writes only what changed: the profile when
    Telegram reports something new, ``last_seen_at`` at most once per
    :data:`LAST_SEEN_RESOLUTION`. A user marked unreachable (they had blocked the bot) is
    reachable again when they write to it in private: that is the proof (a message in a group
    says nothing about the private chat).

    Args:
        tg_user: Telegram's ``User`` object as a dict (``id``, ``username``, ``first_name``, …).
        snapshot: The runtime settings (read from the process's cache when None).
        private: Whether the message came from the user's private chat.

    Returns:
        The user's row as the pipeline needs it.
    """
    telegram_id = int(tg_user["id"])
    conn = db.session.connection()
    now = utcnow()
    row = conn.execute(_FIND_USER, {"tid": telegram_id}).first()
    if row is None:
        row = _insert_user(tg_user, snapshot or runtime.get(), now)
    changes = {
        name: value for name, value in _profile(tg_user).items() if value != getattr(row, name)
    }
    if row.last_seen_at is None or now - row.last_seen_at >= LAST_SEEN_RESOLUTION:
        changes["last_seen_at"] = now  # activity to the minute: no UPDATE for every message
    if not row.reachable and private:
        changes["reachable"] = True
        telegram.pacer.set_reachable(telegram_id, True)
        logger.info("user reachable again telegram_id=%s", telegram_id)
    if changes:
        conn.execute(update(_USERS).where(_USERS.c.id == row.id).values(**changes))
    return Sender(
        id=row.id,
        telegram_id=telegram_id,
        status=UserStatus(row.status),
        mode_id=row.mode_id,
        model_id=row.model_id,
        daily_request_limit=row.daily_request_limit,
        plan_id=row.plan_id,
        plan_expires_at=row.plan_expires_at,
    )


def _insert_user(tg_user: dict[str, Any], snapshot: Snapshot, now: datetime) -> Any:
    """Insert a new user (a savepoint guards the race with a concurrent first message)."""
    telegram_id = int(tg_user["id"])
    status = (
        UserStatus.PENDING
        if snapshot.setting("registration") == REGISTRATION_APPROVAL
        else UserStatus.ACTIVE
    )
    try:
        with db.session.begin_nested():
            db.session.connection().execute(
                insert(_USERS).values(
                    telegram_id=telegram_id, status=status, created_at=now, last_seen_at=None
                )
            )
        logger.info("registered user telegram_id=%s status=%s", telegram_id, status)
    except IntegrityError:
        logger.info("user registered concurrently telegram_id=%s", telegram_id)
    return db.session.connection().execute(_FIND_USER, {"tid": telegram_id}).one()


def mark_unreachable(chat_id: int, reason: str) -> None:
    """Telegram refused a private chat for good (403): the user is ``reachable: false``.

    The caller commits, then calls :func:`close_unreachable` so no worker sends to the chat
    until the user writes again. Groups are left alone (a group that removed the bot is
    refused by Telegram itself, and nobody in it "writes again" as that chat).

    Args:
        chat_id: The chat (= the user's Telegram id for a private chat).
        reason: Telegram's description, for the log.
    """
    logger.warning("chat unreachable chat_id=%s: %s", chat_id, reason)
    if chat_id > 0:
        db.session.execute(
            update(_USERS).where(_USERS.c.telegram_id == chat_id).values(reachable=False)
        )


def close_unreachable(chat_id: int) -> None:
    """After :func:`mark_unreachable` was committed: every worker refuses sends to the chat.

    The mark expires after :data:`UNREACHABLE_DAYS` (a send then asks Telegram again), so a
    mark the database never recorded cannot silence a user forever.

    Args:
        chat_id: The private chat (groups are never marked).
    """
    if chat_id > 0:
        telegram.pacer.set_reachable(chat_id, False, ttl=UNREACHABLE_DAYS * 86400)


def touch_user(
    tg_user: dict[str, Any], *, snapshot: Snapshot | None = None, private: bool = True
) -> User:
    """:func:`register_sender`, then the user's entity (for handlers that change the user).

    Args:
        tg_user: Telegram's ``User`` object as a dict.
        snapshot: The runtime settings (read from the process's cache when None).
        private: Whether the update came from the user's private chat.

    Returns:
        The user entity, current with what :func:`register_sender` wrote.
    """
    sender = register_sender(tg_user, snapshot=snapshot, private=private)
    return db.session.get(User, sender.id, populate_existing=True)


def access_refusal(user: User | Sender) -> Refusal | None:
    """Whether a user may ask at all (only ``active`` users may), and if not, why.

    The plan's limits are checked separately, atomically across workers, by
    ``shared.services.quotas.reserve``.

    Args:
        user: The user.

    Returns:
        None when the user may ask, else the refusal.
    """
    if user.status != UserStatus.ACTIVE:
        kind = ErrorKind.BLOCKED if user.status == UserStatus.BLOCKED else ErrorKind.PENDING
        return Refusal(kind, f"user is {user.status}")
    return None


def choose_mode(user: User, mode_id: int) -> Mode | None:
    """Switch the user's mode.

    Args:
        user: The user.
        mode_id: The chosen mode.

    Returns:
        The mode, or None if it does not exist (nothing changes then).
    """
    mode = db.session.get(Mode, mode_id)
    if mode is not None:
        user.mode = mode
        db.session.flush()
    return mode


def choose_model(user: User, model_id: int) -> LLMModel | None:
    """Switch the user's model, among the enabled ones their plan allows.

    Args:
        user: The user.
        model_id: The chosen model.

    Returns:
        The model, or None if it does not exist, is disabled or is not in the user's plan
        (nothing changes then).
    """
    model = db.session.get(LLMModel, model_id)
    if model is None or not model.enabled:
        return None
    if model.id not in {spec.id for spec in models_for(user)}:
        return None
    user.model = model
    db.session.flush()
    return model


def models_for(user: User | Sender, snapshot: Snapshot | None = None) -> list[Any]:
    """The enabled models a user's plan lets them choose, in display order (``ModelSpec``).

    Args:
        user: The user.
        snapshot: The runtime settings (read from the process's cache when None).

    Returns:
        The models.
    """
    snapshot = snapshot or runtime.get()
    plan = plans.effective_plan(snapshot, user.plan_id, user.plan_expires_at, utcnow())
    return plans.allowed_models(snapshot, plan)


def model_of(user: User | Sender, snapshot: Snapshot | None = None) -> Any:
    """The model a user is answered by now (their choice within their plan, else a default).

    Args:
        user: The user.
        snapshot: The runtime settings (read from the process's cache when None).

    Returns:
        The ``ModelSpec``, or None when no enabled model is allowed.
    """
    snapshot = snapshot or runtime.get()
    plan = plans.effective_plan(snapshot, user.plan_id, user.plan_expires_at, utcnow())
    return plans.model_for(snapshot, plan, user.model_id)


class UserExists(ValueError):
    """A user with this Telegram id exists already."""


def create_user(
    telegram_id: int,
    *,
    username: str | None = None,
    first_name: str | None = None,
    status: UserStatus = UserStatus.ACTIVE,
    daily_request_limit: int | None = None,
    note: str | None = None,
) -> User:
    """Pre-authorize (or pre-block) a Telegram id before the person writes to the bot.

    Args:
        telegram_id: The Telegram user id.
        username: Optional @username (without the @).
        first_name: Optional name.
        status: Initial status.
        daily_request_limit: Per-user limit; None means the default.
        note: Admin's note.

    Returns:
        The new user (flushed).

    Raises:
        UserExists: If the Telegram id is known already.
    """
    if get_user(telegram_id) is not None:
        raise UserExists(f"user {telegram_id} exists")
    user = User(
        telegram_id=telegram_id,
        username=username,
        first_name=first_name,
        status=UserStatus(status),
        daily_request_limit=daily_request_limit,
        note=note,
    )
    db.session.add(user)
    db.session.flush()
    return user


def set_status(users: list[User], status: UserStatus) -> int:
    """Block, unblock or approve users; takes effect on their very next request.

    Args:
        users: The users.
        status: The new status.

    Returns:
        How many users changed.
    """
    changed = 0
    for user in users:
        if user.status != status:
            user.status = UserStatus(status)
            changed += 1
    db.session.flush()
    logger.info("set status=%s for %s user(s)", status, changed)
    return changed


#: Fields of a user an admin may change (the Telegram id is the user's address, never changed).
EDITABLE_FIELDS = (
    "username",
    "first_name",
    "status",
    "daily_request_limit",
    "note",
    "plan_id",
    "plan_expires_at",
)


class UnknownPlan(ValueError, LookupError):
    """A plan id given for a user does not exist."""


def update_user(user: User, values: dict[str, Any]) -> User:
    """Apply an admin's changes to a user; a status change goes through :func:`set_status`.

    A plan or expiry change goes through ``shared.services.plans.change_plan`` and is recorded
    in the user's plan history as the current audit actor's (reason ``admin``). Giving
    ``plan_id`` alone keeps the expiry; giving the default plan's id clears it.

    Args:
        user: The user.
        values: Some of :data:`EDITABLE_FIELDS`, already validated.

    Returns:
        The user (flushed).

    Raises:
        ValueError: On a field that is not editable.
        UnknownPlan: When ``plan_id`` names no plan.
    """
    values = dict(values)
    unknown = set(values) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    if "status" in values:
        set_status([user], UserStatus(values.pop("status")))
    if "plan_id" in values or "plan_expires_at" in values:
        _assign_plan(user, values)
    for key, value in values.items():
        setattr(user, key, value)
    db.session.flush()
    return user


def _assign_plan(user: User, values: dict[str, Any]) -> None:
    """Apply ``plan_id`` / ``plan_expires_at`` from an admin's changes (popped from ``values``).

    The rules: the default plan never expires (its id, or None, clears the expiry); a new plan
    given without an expiry has none (an old plan's end is not carried over); an expiry given
    alone applies to the user's current plan.
    """
    changing = "plan_id" in values
    plan_id = values.pop("plan_id", user.plan_id)
    if changing and plan_id != user.plan_id and "plan_expires_at" not in values:
        expires_at = None
    else:
        expires_at = values.pop("plan_expires_at", user.plan_expires_at)
    values.pop("plan_expires_at", None)
    if plan_id is not None:
        plan = db.session.get(Plan, plan_id)
        if plan is None:
            raise UnknownPlan(f"plan_id: no plan {plan_id}")
        if plan.is_default:
            plan_id = None
    if plan_id is None:
        expires_at = None
    plans.change_plan(
        user,
        plan_id,
        expires_at,
        reason=PlanChangeReason.ADMIN,
        actor=audit.current_actor() or audit.SYSTEM,
    )


def find_users(
    *,
    status: UserStatus | None = None,
    search: str | None = None,
    plan_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[User], int]:
    """A page of users, most recently active first, and how many match.

    Args:
        status: Only users with this status.
        search: Text looked for in the username and first name (case-insensitive).
        plan_id: Only users this plan governs now (``plans.governed_by``; an unknown plan
            matches nobody).
        limit: Page size (capped at :data:`shared.db.MAX_PAGE`).
        offset: Rows to skip.

    Returns:
        The users and the number of matching users.
    """
    query = select(User)
    if status is not None:
        query = query.where(User.status == UserStatus(status))
    if search:
        pattern = f"%{search}%"
        query = query.where(User.username.ilike(pattern) | User.first_name.ilike(pattern))
    if plan_id is not None:
        plan = db.session.get(Plan, plan_id)
        query = query.where(plans.governed_by(plan) if plan is not None else false())
    return page_of(query, (User.last_seen_at.desc().nulls_last(), User.id.desc()), limit, offset)
