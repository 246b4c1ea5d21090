"""The one factory for Redis clients.

Every process builds its clients here from ``Config.redis_url`` (``redis://``, ``rediss://`` or
``unix://`` for the embedded server). redis-py 8 sets a 5 s default ``socket_timeout``: callers
that block longer (long ``BLPOP``, lock waits) must pass a larger ``socket_timeout``.
"""

from __future__ import annotations

from typing import Any

import redis
from flask import Flask, current_app

#: Prefix of every key ai_router writes itself (Celery's keys are Celery's own).
KEY_PREFIX = "ai_router:"

#: Seconds before a plain command gives up; blocking commands pass their own timeout.
DEFAULT_SOCKET_TIMEOUT = 5.0
#: Connections one client keeps at most; more callers wait for a free one.
MAX_CONNECTIONS = 200
#: Seconds a caller waits for a free connection before failing.
POOL_WAIT = 20.0


def redis_client(url: str, *, socket_timeout: float | None = DEFAULT_SOCKET_TIMEOUT) -> redis.Redis:
    """Create a Redis client (connections are opened lazily, on first command).

    Args:
        url: A Redis URL.
        socket_timeout: Read timeout in seconds; None waits forever (only for blocking calls
            that bound themselves).

    Returns:
        A client that decodes responses to ``str``. Its pool *waits* (up to
        :data:`POOL_WAIT` seconds) for a free connection once :data:`MAX_CONNECTIONS` are in
        use: redis-py's default pool raises instead, which hundreds of concurrent tasks of one
        gevent worker would hit.
    """
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT,
        decode_responses=True,
        socket_timeout=socket_timeout,
        socket_connect_timeout=DEFAULT_SOCKET_TIMEOUT,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)


def celery_url(url: str) -> str:
    """Translate a redis-py URL into the form Celery's broker and backend expect.

    Celery (kombu) names unix sockets ``redis+socket://``; TCP URLs are the same in both.

    Args:
        url: A redis-py URL.

    Returns:
        The URL for Celery's ``broker_url``/``result_backend``.
    """
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://") :]
    return url


def app_script(app: Flask, source: str) -> Any:
    """An app's runner of a Lua script, registered once per app and run with EVALSHA.

    For callers that hold the app rather than run inside its context (the ingress).

    Args:
        app: The Flask app (its Redis client is bound).
        source: The script.

    Returns:
        A callable ``runner(keys=[...], args=[...])``.
    """
    scripts: dict[str, Any] = app.extensions.setdefault("redis_scripts", {})
    runner = scripts.get(source)
    if runner is None:
        runner = scripts[source] = app.extensions["redis"].register_script(source)
    return runner


class RedisStore:
    """Flask extension holding the app's Redis client (``app.extensions["redis"]``).

    Created unbound at import time (``shared.extensions.redis_store``) and bound by
    :meth:`init_app`; the client connects lazily, on its first command.
    """

    def init_app(self, app: Flask) -> None:
        """Build the app's client from ``app.config["AI_ROUTER"].redis_url``.

        Args:
            app: The Flask app.
        """
        app.extensions["redis"] = redis_client(app.config["AI_ROUTER"].redis_url)

    def script(self, source: str) -> Any:
        """The app's runner of a Lua script (registered once per app, run with EVALSHA).

        Args:
            source: The script.

        Returns:
            A callable ``runner(keys=[...], args=[...])``.
        """
        return app_script(current_app, source)

    @property
    def client(self) -> redis.Redis:
        """The current app's client.

        Raises:
            RuntimeError: Outside an app context.
        """
        return current_app.extensions["redis"]


def current_redis() -> redis.Redis:
    """Return the Redis client of the current Flask app (built once per app by ``init_app``).

    Returns:
        The app's client.

    Raises:
        RuntimeError: Outside an app context.
    """
    return current_app.extensions["redis"]
