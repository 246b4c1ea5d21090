"""The admin audit log: every change an admin makes to a watched object, written as it is made.

Capture is in ONE place, so no service can forget it: SQLAlchemy session events, registered
once per process by :func:`listen` (the web app does it; :func:`acting_as` too), look at the
rows of the classes in :data:`WATCHED` that a flush writes (and at bulk ``UPDATE``/``DELETE``
statements on them) and add :class:`~shared.models.AuditEntry` rows to the same transaction:
a change that is rolled back leaves no entry, a committed one always has its entry.

Only changes made **by someone** are recorded: the admin UI and the JSON API name the actor
when they authenticate a request (:func:`set_actor`; the web app clears it after every
request), CLI commands run :func:`acting_as` ``"cli"``. Without an actor every listener
returns at its first line, so a user writing to the bot (``last_seen_at``, their mode choice)
adds nothing, and the worker and the listener, which never build the web app, do not even
have the listeners.

What is recorded, per class (:class:`Watched`): the admin-managed fields as ``[old, new]``;
secrets — API keys, the bot token, token and password hashes — only as ``"set"``,
``"cleared"`` or ``"re-encrypted"`` (same secret, new ciphertext); activity and bookkeeping
columns (``last_seen_at``, ``updated_at``, …) not at all. Several flushes of one object in one
transaction make one entry.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, delete, event, insert, inspect, select, update
from sqlalchemy.orm import InstanceState, Mapper, ORMExecuteState, Session
from sqlalchemy.orm.base import NO_VALUE

from shared.db import page_of
from shared.models import (
    AdminUser,
    ApiToken,
    AuditAction,
    AuditEntry,
    Group,
    LLMModel,
    Mode,
    Plan,
    Setting,
    User,
)
from shared.models.types import utcnow
from shared.services.crypto import SecretUnreadable, decrypt
from shared.services.settings import SETTINGS

logger = logging.getLogger(__name__)

#: Actors that are not a person: CLI commands, and the app's own preparation (bootstrap).
CLI = "cli"
SYSTEM = "system"

#: What a secret field records instead of its value.
SET, CLEARED, REENCRYPTED = "set", "cleared", "re-encrypted"

_ACTOR: ContextVar[str | None] = ContextVar("ai_router_audit_actor", default=None)
_BEFORE = "ai_router.audit_before"
_PENDING = "ai_router.audit_pending"


# -- who ----------------------------------------------------------------------------------------


def current_actor() -> str | None:
    """Who is changing things in this context, or None (then nothing is recorded).

    Returns:
        The admin's login name, an API token's name (``"ADMIN_API_TOKEN"`` for the configured
        one), :data:`CLI`, :data:`SYSTEM`, or None.
    """
    return _ACTOR.get()


def set_actor(actor: str | None) -> None:
    """Name who is changing things from now on in this context (None: nobody).

    The web app calls it when it authenticates a request and clears it after every request;
    elsewhere prefer :func:`acting_as`.

    Args:
        actor: The actor, or None.
    """
    _ACTOR.set(actor[:128] if actor else None)


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Record the changes made inside the block as ``actor``'s (CLI commands, tests, jobs).

    Registers the listeners if this process has not yet (:func:`listen`).

    Args:
        actor: Who is acting (:data:`CLI`, :data:`SYSTEM`, an admin's name).

    Yields:
        Nothing; the previous actor is restored on exit.
    """
    listen()
    token = _ACTOR.set(actor[:128])
    try:
        yield
    finally:
        _ACTOR.reset(token)


# -- what -------------------------------------------------------------------------------------


def _user_label(user: Any) -> str:
    name = f"@{user.username}" if user.username else (user.first_name or "")
    return f"{name} ({user.telegram_id})" if name else str(user.telegram_id)


def _group_label(group: Any) -> str:
    return f"{group.title} ({group.chat_id})" if group.title else str(group.chat_id)


def _secret_setting(setting: Any) -> bool:
    spec = SETTINGS.get(setting.key)
    return bool(setting.is_secret or (spec is not None and spec.secret))


@dataclass(frozen=True)
class Watched:
    """How one model class is audited.

    Every column of the class is in exactly one of ``fields``, ``secrets`` and ``ignored``
    (a test holds it), so a new column is a decision, never an accident.

    Attributes:
        kind: The entry's ``kind``.
        object_id: The id the JSON API addresses an object by.
        label: A readable name of an object (from its current values).
        fields: Admin-managed attributes, recorded as ``[old, new]``.
        secrets: Secret attributes → the name recorded for them (value never recorded).
        encrypted: Secret attributes holding Fernet tokens: same plaintext = re-encrypted.
        ignored: Columns not audited (ids, activity, bookkeeping).
        secret_if: When true of an object, its ``fields`` are secrets too (secret settings).
        collections: Many-to-many relationships → the name recorded for them, as ``[old
            ids, new ids]`` (a plan's ``models`` → ``model_ids``).
    """

    kind: str
    object_id: Callable[[Any], Any]
    label: Callable[[Any], str]
    fields: tuple[str, ...]
    secrets: Mapping[str, str] = field(default_factory=dict)
    encrypted: frozenset[str] = frozenset()
    ignored: tuple[str, ...] = ()
    secret_if: Callable[[Any], bool] | None = None
    collections: Mapping[str, str] = field(default_factory=dict)

    @property
    def attributes(self) -> tuple[str, ...]:
        """Every recorded attribute: the fields, then the secrets."""
        return (*self.fields, *self.secrets)

    def name_of(self, attribute: str) -> str:
        """The name an attribute is recorded under."""
        return self.secrets.get(attribute) or self.collections.get(attribute, attribute)

    def is_secret(self, obj: Any, attribute: str) -> bool:
        """Whether an attribute of this object holds a secret."""
        return attribute in self.secrets or bool(self.secret_if and self.secret_if(obj))


#: The audited classes. Users: only what an admin manages (status, limit, note, names, choices)
#: — never the activity the bot writes (last_seen_at, reachable, the Telegram profile's
#: last_name and language). Groups: only their status (blocked by an admin); the rest is
#: Telegram's, refreshed by the bot. API tokens and admin accounts are audited too: issuing,
#: revoking and changing credentials are the changes an audit log exists for.
WATCHED: Mapping[type, Watched] = {
    Setting: Watched(
        kind="setting",
        object_id=lambda s: s.key,
        label=lambda s: s.key,
        fields=("value",),
        encrypted=frozenset({"value"}),
        ignored=("key", "is_secret", "updated_at"),
        secret_if=_secret_setting,
    ),
    LLMModel: Watched(
        kind="model",
        object_id=lambda m: m.id,
        label=lambda m: m.name or "",
        fields=(
            "name",
            "model",
            "base_url",
            "api_key_last4",
            "temperature",
            "max_tokens",
            "context_window",
            "vision",
            "transcription_model",
            "enabled",
            "is_default",
            "input_price_per_1m",
            "output_price_per_1m",
            "fallback_model_id",
        ),  # fmt: skip
        secrets={"api_key_encrypted": "api_key"},
        encrypted=frozenset({"api_key_encrypted"}),
        ignored=("id", "created_at", "updated_at"),
    ),
    Mode: Watched(
        kind="mode",
        object_id=lambda m: m.id,
        label=lambda m: m.name or "",
        fields=("name", "system_prompt", "is_default", "position"),
        ignored=("id", "created_at"),
    ),
    User: Watched(
        kind="user",
        object_id=lambda u: u.telegram_id,
        label=_user_label,
        fields=(
            "telegram_id",
            "username",
            "first_name",
            "status",
            "daily_request_limit",
            "note",
            "mode_id",
            "model_id",
            "plan_id",
            "plan_expires_at",
        ),  # fmt: skip
        ignored=(
            "id",
            "last_name",
            "language_code",
            "created_at",
            "last_seen_at",
            "reachable",
            "plan_reminded_at",
        ),  # fmt: skip
    ),
    Group: Watched(
        kind="group",
        object_id=lambda g: g.id,
        label=_group_label,
        fields=("status",),
        ignored=("id", "chat_id", "title", "kind", "is_forum", "first_seen_at", "last_seen_at"),
    ),
    Plan: Watched(
        kind="plan",
        object_id=lambda p: p.id,
        label=lambda p: p.name or "",
        fields=(
            "name",
            "description",
            "requests_per_day",
            "tokens_per_day",
            "tokens_per_month",
            "cost_usd_per_month",
            "is_default",
            "price_stars",
            "period_days",
            "fallback_model_id",
        ),  # fmt: skip
        ignored=("id", "created_at"),
        collections={"models": "model_ids"},
    ),
    ApiToken: Watched(
        kind="api_token",
        object_id=lambda t: t.id,
        label=lambda t: f"{t.name} ({t.prefix}…)",
        fields=("name", "prefix", "created_by_id", "revoked_at"),
        secrets={"token_hash": "token"},
        ignored=("id", "created_at", "last_used_at"),
    ),
    AdminUser: Watched(
        kind="admin",
        object_id=lambda a: a.id,
        label=lambda a: a.username or "",
        fields=("username", "is_active"),
        secrets={"password_hash": "password"},
        ignored=("id", "created_at", "last_login_at"),
    ),
}

#: The kinds, for filters.
KINDS: tuple[str, ...] = tuple(watched.kind for watched in WATCHED.values())


def _json(value: Any) -> Any:
    """A column value as JSON (enums by value, prices as numbers, times in ISO 8601)."""
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _secret_change(old: Any, new: Any, encrypted: bool) -> str:
    """What a changed secret records: set, cleared, or re-encrypted (same secret)."""
    if not new:
        return CLEARED
    if encrypted and old:
        try:
            if decrypt(old) == decrypt(new):
                return REENCRYPTED
        except SecretUnreadable:
            pass
    return SET


def _change(watched: Watched, obj: Any, attribute: str, old: Any, new: Any) -> Any | None:
    """One field's entry (``[old, new]``, or a secret's word), or None when nothing changed."""
    if watched.is_secret(obj, attribute):
        if old == new or (not old and not new):
            return None
        return _secret_change(old, new, attribute in watched.encrypted)
    old, new = _json(old), _json(new)
    return None if old == new else [old, new]


# -- recording --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Written:
    """An entry written in the current transaction: its row id, action and changes so far."""

    id: int
    action: AuditAction
    changes: dict[str, Any]


@dataclass
class _Pending:
    """The entries of one transaction, by object, so several flushes make one entry each."""

    transaction: object
    entries: dict[tuple[str, tuple[Any, ...]], _Written] = field(default_factory=dict)


def _merge(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Changes of two steps as one: the first old value, the last new value."""
    merged = dict(first)
    for name, change in second.items():
        earlier = merged.get(name)
        if isinstance(change, list) and isinstance(earlier, list):
            change = [earlier[0], change[1]]
        elif change == REENCRYPTED and earlier is not None:
            change = earlier
        merged[name] = change
    return {
        name: change
        for name, change in merged.items()
        if not (isinstance(change, list) and change[0] == change[1])
    }


def _record(
    session: Session,
    watched: Watched,
    identity: tuple[Any, ...],
    action: AuditAction,
    changes: dict[str, Any],
    about: tuple[Any, str],
) -> None:
    """Write (or extend) the entry of one object's change in the session's transaction.

    Entries are written with Core statements on the session's connection — inside the flush
    or the bulk statement that made the change, never as ORM objects (an object changed
    inside a flush would not be saved). A second change of the same object in the same
    transaction updates its entry: the first old value, the last new one; an object created
    and deleted in one transaction leaves nothing.

    Args:
        session: The session whose transaction holds the change.
        watched: How the object's class is audited.
        identity: The object's primary key (entries of one object in one transaction merge).
        action: What happened in this step.
        changes: This step's changes.
        about: The object's id (as the API addresses it) and its label.
    """
    actor = _ACTOR.get()
    if actor is None:
        return
    transaction = session.get_transaction()
    pending: _Pending | None = session.info.get(_PENDING)
    if pending is None or pending.transaction is not transaction:
        pending = session.info[_PENDING] = _Pending(transaction)
    key = (watched.kind, identity)
    object_id, label = str(about[0])[:64], about[1][:200]
    table = AuditEntry.__table__
    connection = session.connection()
    written = pending.entries.get(key)
    if written is not None:
        if action == AuditAction.UPDATE and not changes:
            return
        merged_action = written.action if written.action == AuditAction.CREATE else action
        merged = _merge(written.changes, changes)
        if (written.action, action) == (AuditAction.CREATE, AuditAction.DELETE) or (
            merged_action == AuditAction.UPDATE and not merged
        ):
            connection.execute(delete(table).where(table.c.id == written.id))
            del pending.entries[key]
            return
        connection.execute(
            update(table)
            .where(table.c.id == written.id)
            .values(action=merged_action, changes=merged, object_id=object_id, label=label)
        )
        pending.entries[key] = _Written(written.id, merged_action, merged)
        return
    if not changes and action != AuditAction.DELETE:
        return
    result = connection.execute(
        insert(table).values(
            at=utcnow(),
            actor=actor,
            action=action,
            kind=watched.kind,
            object_id=object_id,
            label=label,
            changes=changes,
        )
    )
    pending.entries[key] = _Written(result.inserted_primary_key[0], action, changes)
    logger.debug("audit: %s %s %s %s", actor, action, watched.kind, object_id)


def _about(watched: Watched, obj: Any) -> tuple[Any, str]:
    """An object's id (as the API addresses it) and its label."""
    return watched.object_id(obj), watched.label(obj)


def _changes(
    watched: Watched, obj: Any, pairs: Iterator[tuple[str, Any, Any]], *, secrets: bool = True
) -> dict[str, Any]:
    """The changes of ``(attribute, old, new)`` triples, by recorded name.

    Args:
        watched: How the object's class is audited.
        obj: The object (or a row of its columns): tells whether a setting is secret.
        pairs: The attributes with their old and new values.
        secrets: False leaves secrets out (a deletion records none).

    Returns:
        ``{name: [old, new] | "set" | "cleared" | "re-encrypted"}`` for what changed.
    """
    changes = {}
    for key, old, new in pairs:
        if not secrets and watched.is_secret(obj, key):
            continue
        change = _change(watched, obj, key, old, new)
        if change is not None:
            changes[watched.name_of(key)] = change
    return changes


@dataclass(frozen=True)
class _Gone:
    """A deleted object's entry, made before the flush that deletes it."""

    changes: dict[str, Any]
    about: tuple[Any, str]


def _ids(objects: Any) -> list[Any]:
    """The sorted ids of a collection's members (a many-to-many relationship's value)."""
    return sorted(obj.id for obj in objects or ())


def _collection_changes(watched: Watched, state: InstanceState[Any]) -> dict[str, Any]:
    """``{recorded name: [old ids, new ids]}`` of the watched collections a flush changed."""
    changes = {}
    for key, name in watched.collections.items():
        history = state.attrs[key].history
        if history.added or history.deleted:
            kept = list(history.unchanged or ())
            old, new = _ids([*kept, *history.deleted]), _ids([*kept, *history.added])
            if old != new:
                changes[name] = [old, new]
    return changes


def _unknown(state: InstanceState[Any], attributes: tuple[str, ...]) -> bool:
    """Whether some attribute's stored value is not in memory (expired, or set while expired)."""
    return any(
        key not in state.dict or state.committed_state.get(key) is NO_VALUE for key in attributes
    )


def _stored(session: Session, mapper: Mapper[Any], identity: tuple[Any, ...]) -> dict[str, Any]:
    """Every column of one row as the database holds it (attribute keys)."""
    columns = [prop.columns[0].label(prop.key) for prop in mapper.column_attrs]
    pk = mapper.primary_key[0]
    row = session.connection().execute(select(*columns).where(pk == identity[0])).first()
    return dict(row._mapping) if row is not None else {}


def _before_flush(session: Session, _context: object, _instances: object) -> None:
    """``before_flush``: read what the flush will delete, or overwrite unseen, while it exists."""
    if _ACTOR.get() is None:
        return
    before: dict[InstanceState[Any], Any] = {}
    for obj in session.deleted:
        watched = WATCHED.get(type(obj))
        if watched is not None:
            values = ((key, getattr(obj, key), None) for key in watched.attributes)
            changes = _changes(watched, obj, values, secrets=False)
            for key, name in watched.collections.items():
                if _ids(getattr(obj, key)):
                    changes[name] = [_ids(getattr(obj, key)), None]
            before[inspect(obj)] = _Gone(changes, _about(watched, obj))
    for obj in session.dirty:
        watched = WATCHED.get(type(obj))
        if watched is None:
            continue
        state = inspect(obj)
        if state.identity is not None and _unknown(state, watched.attributes):
            before[state] = _stored(session, state.mapper, state.identity)
    session.info[_BEFORE] = before


def _after_flush(session: Session, _context: object) -> None:
    """``after_flush``: add the entries of the watched rows this flush wrote."""
    if _ACTOR.get() is None:
        return
    before = session.info.pop(_BEFORE, {})
    for obj in session.new:
        watched = WATCHED.get(type(obj))
        if watched is None:
            continue
        state = inspect(obj)
        values = ((key, None, state.dict.get(key)) for key in watched.attributes)
        changes = _changes(watched, obj, values)
        for key, name in watched.collections.items():
            if _ids(state.dict.get(key)):
                changes[name] = [None, _ids(state.dict.get(key))]
        identity = tuple(state.mapper.primary_key_from_instance(obj))  # not yet state.identity
        _record(session, watched, identity, AuditAction.CREATE, changes, _about(watched, obj))
    for obj in session.dirty:
        watched = WATCHED.get(type(obj))
        if watched is None:
            continue
        state = inspect(obj)
        stored = before.get(state) or {}
        values = []
        for key in watched.attributes:
            history = state.attrs[key].history
            if history.added:
                old = history.deleted[0] if history.deleted else stored.get(key)
                values.append((key, old, history.added[0]))
        changes = _changes(watched, obj, iter(values))
        changes.update(_collection_changes(watched, state))
        _record(session, watched, state.identity, AuditAction.UPDATE, changes, _about(watched, obj))
    for obj in session.deleted:
        watched = WATCHED.get(type(obj))
        state = inspect(obj)
        gone = before.get(state)
        if watched is not None and isinstance(gone, _Gone):
            _record(session, watched, state.identity, AuditAction.DELETE, gone.changes, gone.about)


def _bulk(orm_state: ORMExecuteState) -> Any:
    """``do_orm_execute``: bulk ``UPDATE``/``DELETE`` of watched rows are recorded row by row.

    The matched rows are read before and (for an update) after the statement, in the same
    transaction.

    Args:
        orm_state: SQLAlchemy's description of the statement being executed.

    Returns:
        The statement's result when it was run here (so it runs once), else None.
    """
    if _ACTOR.get() is None or not (orm_state.is_update or orm_state.is_delete):
        return None
    mapper = orm_state.bind_mapper
    watched = WATCHED.get(mapper.class_) if mapper is not None else None
    if watched is None:
        return None
    session = orm_state.session
    columns = [prop.columns[0].label(prop.key) for prop in mapper.column_attrs]
    pk = mapper.primary_key[0]
    query = select(*columns)
    where = orm_state.statement.whereclause  # type: ignore[attr-defined]
    if where is not None:
        query = query.where(where)
    rows = {row._mapping[pk.key]: row for row in session.execute(query)}
    result = orm_state.invoke_statement()
    if orm_state.is_delete:
        for pk_value, row in rows.items():
            values = ((key, getattr(row, key), None) for key in watched.attributes)
            changes = _changes(watched, row, values, secrets=False)
            _record(
                session, watched, (pk_value,), AuditAction.DELETE, changes, _about(watched, row)
            )
        return result
    if rows:
        after = session.connection().execute(select(*columns).where(pk.in_(list(rows))))
        for row in after:
            old = rows[row._mapping[pk.key]]
            values = ((key, getattr(old, key), getattr(row, key)) for key in watched.attributes)
            changes = _changes(watched, row, values)
            about = _about(watched, row)
            _record(session, watched, (row._mapping[pk.key],), AuditAction.UPDATE, changes, about)
    return result


def _forget_pending(session: Session, _previous: object) -> None:
    """``after_soft_rollback``: entries rolled back (a savepoint too) are no longer merged into."""
    session.info.pop(_PENDING, None)


def listen() -> None:
    """Register the session events once per process (idempotent).

    The web app calls it when it is built; the worker and the listener never do, so the bot's
    hot path has no audit listener at all.
    """
    if event.contains(Session, "after_flush", _after_flush):
        return
    event.listen(Session, "before_flush", _before_flush)
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _bulk)
    event.listen(Session, "after_soft_rollback", _forget_pending)


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    """Filters of the audit log; None means "any".

    Attributes:
        kind: ``setting``, ``model``, ``mode``, ``user``, ``group``, ``plan``,
            ``api_token`` or ``admin``.
        object_id: One object (with ``kind``): a setting's key, a user's Telegram id, an id.
        actor: Who made the change (exact).
        since: Entries at or after this instant.
        until: Entries before this instant.
    """

    kind: str | None = None
    object_id: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(query: Select[Any], filters: AuditFilter) -> Select[Any]:
    if filters.kind:
        query = query.where(AuditEntry.kind == filters.kind)
    if filters.object_id:
        query = query.where(AuditEntry.object_id == filters.object_id)
    if filters.actor:
        query = query.where(AuditEntry.actor == filters.actor)
    if filters.since is not None:
        query = query.where(AuditEntry.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEntry.at < filters.until)
    return query


def query_audit(
    filters: AuditFilter, limit: int = 50, offset: int = 0
) -> tuple[list[AuditEntry], int]:
    """One page of the audit log, newest first, and the number of entries matching.

    Args:
        filters: What to select.
        limit: Page size (capped at :data:`shared.db.MAX_PAGE`).
        offset: Entries to skip.

    Returns:
        The entries and the total count.
    """
    query = _filtered(select(AuditEntry), filters)
    return page_of(query, (AuditEntry.at.desc(), AuditEntry.id.desc()), limit, offset)


__all__ = [
    "CLI",
    "KINDS",
    "SYSTEM",
    "WATCHED",
    "AuditFilter",
    "Watched",
    "acting_as",
    "current_actor",
    "listen",
    "query_audit",
    "set_actor",
]
