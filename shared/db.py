"""The process-wide Flask-SQLAlchemy ``db`` object and database engine tuning.

``db`` is one of the few allowed module-level objects: an unbound extension, attached to an app
by ``web.create_app``. Models subclass ``db.Model``. Constraint names follow a fixed convention
so Alembic migrations are stable on SQLite (batch mode) and PostgreSQL alike.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, Select, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Milliseconds a SQLite connection waits for a lock before failing with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 15000


class Base(DeclarativeBase):
    """Declarative base of every model; carries the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    """Tune every new SQLite connection: WAL journal, busy timeout, enforced foreign keys.

    WAL lets the web app read while a worker writes; the busy timeout makes concurrent writers
    (several worker threads) wait instead of failing.

    Args:
        dbapi_connection: The raw DB-API connection just opened.
        _record: SQLAlchemy's connection record (unused).
    """
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def configure_engine(engine: Engine) -> None:
    """Attach the SQLite pragmas to an engine (a no-op for other databases).

    Called once per app after ``db.init_app``; it registers a listener and connects to nothing.

    Args:
        engine: The app's engine.
    """
    if engine.dialect.name == "sqlite" and not event.contains(engine, "connect", _sqlite_pragmas):
        event.listen(engine, "connect", _sqlite_pragmas)


def cooperative() -> bool:
    """Whether this process runs on gevent (sockets monkey-patched, e.g. ``celery -P gevent``).

    Returns:
        True when blocking I/O yields to other greenlets.
    """
    try:
        from gevent import monkey
    except ImportError:  # gevent is a runtime dependency, but the web never needs it
        return False
    return bool(monkey.is_module_patched("socket"))


def engine_options(database_url: str, pool_size: int) -> dict[str, Any]:
    """SQLAlchemy engine options for a database URL in this process.

    - PostgreSQL and others: ``pool_size`` connections plus as many again in bursts, with a
      ping before each checkout (the server may have dropped an idle connection).
    - SQLite: no ping. Under gevent, ONE connection: SQLite's busy wait runs in C and would
      freeze every greenlet of the process, so greenlets queue for the connection instead
      (cooperatively) and SQLite never sees two writers from one process. Writes are
      serialized by SQLite anyway.

    Args:
        database_url: The SQLAlchemy URL.
        pool_size: ``Config.db_pool_size``.

    Returns:
        Options for ``SQLALCHEMY_ENGINE_OPTIONS`` / ``create_engine``.
    """
    if database_url.startswith("sqlite"):
        if cooperative():
            return {"pool_size": 1, "max_overflow": 0, "pool_timeout": 120}
        return {}
    return {"pool_pre_ping": True, "pool_size": pool_size, "max_overflow": pool_size * 2}


#: The largest page a list query answers (the admin UI's and the API's ``limit``).
MAX_PAGE = 500


def page_of(query: Select, order_by: tuple[Any, ...], limit: int, offset: int) -> tuple[list, int]:
    """One page of a query's rows in the given order, and how many rows the query matches.

    Args:
        query: The filtered ``select`` of the rows.
        order_by: The page's order (newest first, with a tiebreaker, for the lists).
        limit: Page size, capped at :data:`MAX_PAGE` (at least 1).
        offset: Rows to skip (at least 0).

    Returns:
        The rows and the total count.
    """
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(
        query.order_by(*order_by).limit(max(1, min(limit, MAX_PAGE))).offset(max(0, offset))
    ).all()
    return list(rows), int(total or 0)
