"""Hot settings in process memory: the bot token, models, modes and settings, refreshed on change.

The bot, the listener and the webhook read these on every update; reading and decrypting them
from the database each time was most of the per-message waste. :class:`RuntimeSettings` keeps
one immutable :class:`Snapshot` per app and process:

- a **version counter** in Redis (``ai_router:runtime:version``) is incremented after every
  commit that touched a ``Setting``, ``LLMModel`` or ``Mode`` row (an ORM event registered once
  here, so no service can forget it);
- each process compares its snapshot's version with Redis at most once per
  :data:`CHECK_INTERVAL` and reloads (one short session of its own) when they differ, so every
  process sees an admin's change within about a second;
- without Redis the snapshot is reloaded at the same interval (stale by a second at most).

Invariant: a snapshot is never mutated; readers may keep one for the length of a request.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from flask import Flask, current_app
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from shared.db import configure_engine
from shared.llm import ModelSpec
from shared.models import LLMModel, Mode, Plan, Setting
from shared.redis import KEY_PREFIX
from shared.services.crypto import SecretUnreadable, decrypt
from shared.services.plans import PlanSpec

logger = logging.getLogger(__name__)

VERSION_KEY = f"{KEY_PREFIX}runtime:version"
#: Seconds between two checks of the version key in one process.
CHECK_INTERVAL = 1.0
#: The rows whose change makes every process reload its snapshot.
WATCHED = (Setting, LLMModel, Mode, Plan)
_DIRTY = "ai_router.runtime_dirty"


@dataclass(frozen=True)
class ModeSpec:
    """A detached answer mode.

    Attributes:
        id: Row id.
        name: Shown to users and logged.
        system_prompt: Sent first to the LLM (may be empty).
    """

    id: int
    name: str
    system_prompt: str


@dataclass(frozen=True)
class Snapshot:
    """Everything hot, read once per change.

    Attributes:
        version: The Redis version it was loaded at (-1 when Redis was unreachable).
        settings: Plain settings by key (secrets decrypted; unreadable ones left out).
        unreadable: Keys of secret settings that could not be decrypted.
        models: Enabled models by id, in display order (by name), keys decrypted.
        default_model_id: The active model: the default if enabled, else the first enabled one.
        modes: Modes by id, in display order.
        default_mode_id: The default mode, else the first one.
        plans: Plans by id (the default first, then by price and name).
        default_plan_id: The default plan (None only before seeding).
    """

    version: int
    settings: dict[str, str] = field(default_factory=dict)
    unreadable: frozenset[str] = frozenset()
    models: dict[int, ModelSpec] = field(default_factory=dict)
    default_model_id: int | None = None
    modes: dict[int, ModeSpec] = field(default_factory=dict)
    default_mode_id: int | None = None
    plans: dict[int, PlanSpec] = field(default_factory=dict)
    default_plan_id: int | None = None

    def setting(self, key: str, default: str | None = None) -> str | None:
        """A setting's value (decrypted), or ``default`` when unset."""
        return self.settings.get(key, default)

    @property
    def token(self) -> str | None:
        """The bot token, or None when unset."""
        return self.settings.get("telegram_bot_token")

    def model(self, chosen_id: int | None) -> ModelSpec | None:
        """The model a user gets: their choice if still enabled, else the active model."""
        if chosen_id is not None and chosen_id in self.models:
            return self.models[chosen_id]
        return self.models.get(self.default_model_id) if self.default_model_id else None

    def mode(self, chosen_id: int | None) -> ModeSpec | None:
        """The mode a user gets: their choice if it exists, else the default mode."""
        if chosen_id is not None and chosen_id in self.modes:
            return self.modes[chosen_id]
        return self.modes.get(self.default_mode_id) if self.default_mode_id else None


def load_snapshot(session: Session, version: int) -> Snapshot:
    """Read settings, enabled models, modes and plans into a snapshot.

    Args:
        session: A session used for these reads only.
        version: The version to stamp on it.

    Returns:
        The snapshot.
    """
    settings: dict[str, str] = {}
    unreadable: set[str] = set()
    for row in session.scalars(select(Setting)):
        if row.value is None:
            continue
        if not row.is_secret:
            settings[row.key] = row.value
            continue
        try:
            settings[row.key] = decrypt(row.value)
        except SecretUnreadable:
            unreadable.add(row.key)
    rows = list(session.scalars(select(LLMModel).where(LLMModel.enabled).order_by(LLMModel.name)))
    models = {row.id: ModelSpec.from_model(row) for row in rows}
    default_model = next((row.id for row in rows if row.is_default), None)
    if default_model is None and rows:
        default_model = min(row.id for row in rows)
    mode_rows = list(session.scalars(select(Mode).order_by(Mode.position, Mode.id)))
    modes = {row.id: ModeSpec(row.id, row.name, row.system_prompt or "") for row in mode_rows}
    default_mode = next((row.id for row in mode_rows if row.is_default), None)
    if default_mode is None and mode_rows:
        default_mode = mode_rows[0].id
    plan_rows = session.scalars(
        select(Plan).order_by(Plan.is_default.desc(), Plan.price_stars.nulls_first(), Plan.name)
    )
    plans = {row.id: PlanSpec.from_plan(row) for row in plan_rows}
    default_plan = next((plan.id for plan in plans.values() if plan.is_default), None)
    return Snapshot(
        version=version,
        settings=settings,
        unreadable=frozenset(unreadable),
        models=models,
        default_model_id=default_model,
        modes=modes,
        default_mode_id=default_mode,
        plans=plans,
        default_plan_id=default_plan,
    )


@dataclass
class _State:
    """Per-app state of :class:`RuntimeSettings` (kept in ``app.extensions``)."""

    snapshot: Snapshot | None = None
    checked_at: float = 0.0
    engine: Engine | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class RuntimeSettings:
    """Flask extension giving every process an in-memory :class:`Snapshot` of the hot settings."""

    def init_app(self, app: Flask) -> None:
        """Bind to an app and make sure changes to watched rows bump the version.

        Args:
            app: The Flask app (its Redis client must be bound first).
        """
        app.extensions["runtime"] = _State()
        _listen_for_changes()

    def get(self) -> Snapshot:
        """The current snapshot, reloaded when another process (or this one) changed a row.

        Returns:
            The snapshot (checked against Redis at most once per :data:`CHECK_INTERVAL`).
        """
        state: _State = current_app.extensions["runtime"]
        snapshot = state.snapshot
        now = time.monotonic()
        if snapshot is not None and now - state.checked_at < CHECK_INTERVAL:
            return snapshot
        with state.lock:
            if state.snapshot is not None and now - state.checked_at < CHECK_INTERVAL:
                return state.snapshot
            version = _read_version()
            if state.snapshot is None or version == -1 or version != state.snapshot.version:
                state.snapshot = self._load(version)
            state.checked_at = time.monotonic()
            return state.snapshot

    def invalidate(self) -> None:
        """Drop this process's snapshot, so the next :meth:`get` reloads (after own writes)."""
        state: _State = current_app.extensions["runtime"]
        with state.lock:
            state.snapshot = None

    @staticmethod
    def _load(version: int) -> Snapshot:
        """Read a snapshot on a connection of its own, outside the app's pool.

        The caller may hold the app's only pooled connection (SQLite under gevent) in an open
        unit of work; the snapshot never waits for it and never touches that transaction.
        """
        state: _State = current_app.extensions["runtime"]
        if state.engine is None:
            state.engine = create_engine(
                current_app.config["SQLALCHEMY_DATABASE_URI"], poolclass=NullPool
            )
            configure_engine(state.engine)
        factory = sessionmaker(bind=state.engine, expire_on_commit=False)
        with factory() as session:
            snapshot = load_snapshot(session, version)
            session.rollback()
        logger.debug("runtime settings loaded version=%s", version)
        return snapshot


def _read_version() -> int:
    """The version counter in Redis (0 when never bumped, -1 when Redis cannot be read)."""
    try:
        return int(current_app.extensions["redis"].get(VERSION_KEY) or 0)
    except Exception:  # Redis down: reload every interval rather than fail the caller
        logger.warning("runtime settings: cannot read the version from Redis", exc_info=True)
        return -1


def bump_version() -> None:
    """Tell every process that watched rows changed (called after such a commit)."""
    current_app.extensions["redis"].incr(VERSION_KEY)
    state: _State | None = current_app.extensions.get("runtime")
    if state is not None:
        with state.lock:
            state.snapshot = None


def _flag_if_watched(session: Session, *_args: object) -> None:
    """``after_flush``: remember that watched rows were written in this transaction."""
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, WATCHED):
            session.info[_DIRTY] = True
            return


def _flag_bulk(orm_execute_state: object) -> None:
    """``do_orm_execute``: bulk UPDATE/DELETE statements on watched tables count too."""
    state = orm_execute_state
    if not (state.is_update or state.is_delete):  # type: ignore[attr-defined]
        return
    mapper = state.bind_mapper  # type: ignore[attr-defined]
    if mapper is not None and issubclass(mapper.class_, WATCHED):
        state.session.info[_DIRTY] = True  # type: ignore[attr-defined]


def _bump_after_commit(session: Session) -> None:
    """``after_commit``: bump the version once for a transaction that changed watched rows."""
    if not session.info.pop(_DIRTY, False):
        return
    try:
        bump_version()
    except Exception:  # the change is committed; other processes catch up at their next reload
        logger.exception("could not announce a settings change")


def _clear_flag(session: Session, *_args: object) -> None:
    """``after_rollback``: a rolled back change announces nothing."""
    session.info.pop(_DIRTY, None)


def _listen_for_changes() -> None:
    """Register the session events once per process (idempotent)."""
    if event.contains(Session, "after_flush", _flag_if_watched):
        return
    event.listen(Session, "after_flush", _flag_if_watched)
    event.listen(Session, "do_orm_execute", _flag_bulk)
    event.listen(Session, "after_commit", _bump_after_commit)
    event.listen(Session, "after_rollback", _clear_flag)


__all__ = ["ModeSpec", "RuntimeSettings", "Snapshot", "bump_version", "load_snapshot"]
