"""Generations in progress, and /stop: ending one from any process within a second.

A worker registers each LLM call it makes (:meth:`Generations.running`) under its row id with a
:class:`~shared.llm.Cancel`. ``/stop`` may be handled by another process or host, so it goes
through Redis (:meth:`Generations.stop`, called by
``shared.services.conversation.stop_chat``): it marks the chat's row being answered as stopped
(``ai_router:stop:<request id>``, for a call that has not started yet) and publishes the row id
on ``ai_router:stop``. Every worker process listens on that channel with one background
subscriber (a greenlet under gevent, else a thread, started with the first generation,
reconnecting after a Redis outage and pinging its connection); the process running that row
cancels it, which closes the connection to the provider (it stops generating and billing). A
call checks the mark right after registering, and the subscriber checks the marks of every
running call whenever it (re)subscribes, so a stop that raced a start or a reconnection is not
lost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from flask import Flask, current_app

from shared.llm import Cancel
from shared.redis import KEY_PREFIX, RedisStore

logger = logging.getLogger(__name__)

#: The channel stop requests are published on (the message is the row id).
STOP_CHANNEL = f"{KEY_PREFIX}stop"
#: How long a stop mark waits for a call that has not started yet.
STOP_MARK_SECONDS = 600
#: Seconds between reconnection attempts of the subscriber.
RECONNECT_DELAY = 1.0
#: Seconds between two pings of the subscriber's connection.
PING_EVERY = 30.0


def stop_key(request_id: int) -> str:
    """The Redis key marking a row's generation as stopped (set by /stop, checked at start).

    Args:
        request_id: The row.

    Returns:
        The key.
    """
    return f"{KEY_PREFIX}stop:{request_id}"


class _Registry:
    """One process's generations in progress and its subscriber (per app)."""

    def __init__(self) -> None:
        self.running: dict[int, Cancel] = {}
        self.lock = threading.Lock()
        self.subscriber: threading.Thread | None = None
        #: The process whose subscriber is listening, None while none is: every generation
        #: checks it, so it must be cheap (``Thread.is_alive()`` costs a turn of gevent's hub:
        #: it tries the thread's lock, and a failed try yields). A forked child sees its
        #: parent's pid and starts its own.
        self.listening: int | None = None


def in_flight() -> int:
    """How many generations the current app (this process) is running now."""
    registry: _Registry = current_app.extensions["generations"]
    with registry.lock:
        return len(registry.running)


class Generations:
    """Flask extension: the generations this process runs, cancellable from any process.

    Args:
        redis: The Redis extension (the stop marks and the channel).
    """

    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    def init_app(self, app: Flask) -> None:
        """Create the app's registry (nothing connects until the first generation).

        Args:
            app: The Flask app.
        """
        app.extensions["generations"] = _Registry()

    @contextmanager
    def running(self, request_id: int, *, check_mark: bool = True) -> Iterator[Cancel]:
        """Register a row's LLM call for the time of the ``with`` block.

        Args:
            request_id: The row being answered.
            check_mark: Look for a stop mark once registered (False: the caller checks
                :func:`stop_key` itself in a round trip it makes anyway, after this call).

        Yields:
            The call's cancel handle: already cancelled when /stop came first.
        """
        registry: _Registry = current_app.extensions["generations"]
        self._ensure_subscriber(registry, current_app._get_current_object())
        cancel = Cancel()
        with registry.lock:
            registry.running[request_id] = cancel
        try:
            if check_mark and self._redis.client.exists(stop_key(request_id)):
                cancel.cancel()
            yield cancel
        finally:
            with registry.lock:
                registry.running.pop(request_id, None)

    def stop(self, request_id: int) -> None:
        """Stop a row's generation, wherever it runs (or as soon as it starts).

        Args:
            request_id: The row.
        """
        client = self._redis.client
        client.set(stop_key(request_id), "1", ex=STOP_MARK_SECONDS)
        client.publish(STOP_CHANNEL, str(request_id))

    def _ensure_subscriber(self, registry: _Registry, app: Flask) -> None:
        pid = os.getpid()
        if registry.listening == pid:
            return
        with registry.lock:
            if registry.listening == pid:
                return
            registry.subscriber = threading.Thread(
                target=self._listen, args=(registry, app), name="stop-subscriber", daemon=True
            )
            registry.subscriber.start()
            registry.listening = pid

    def _listen(self, registry: _Registry, app: Flask) -> None:
        """Cancel this process's generations named on the channel; reconnect on errors.

        After every (re)subscription the stop marks of the generations running here are
        checked, so a stop published while the subscriber was not listening is not lost. The
        connection is pinged every :data:`PING_EVERY` seconds, so a dead one is noticed. Only
        a kill ends it (a greenlet killed, the interpreter exiting); the next generation then
        starts another.
        """
        try:
            self._listen_forever(registry, app)
        finally:
            with registry.lock:
                if registry.subscriber is threading.current_thread():
                    registry.listening = None

    def _listen_forever(self, registry: _Registry, app: Flask) -> None:
        while True:
            pubsub = None
            try:
                with app.app_context():
                    pubsub = self._redis.client.pubsub(ignore_subscribe_messages=True)
                    client = self._redis.client
                pubsub.subscribe(STOP_CHANNEL)
                pubsub.get_message(timeout=1.0)  # the subscription's confirmation
                self._sweep(registry, client)
                pinged = time.monotonic()
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._cancel(registry, message["data"])
                    if time.monotonic() - pinged >= PING_EVERY:
                        pubsub.ping()
                        pinged = time.monotonic()
            except Exception:  # Redis went away: listen again once it is back
                logger.warning("stop subscriber lost Redis; reconnecting", exc_info=True)
                time.sleep(RECONNECT_DELAY)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # noqa: BLE001 - the connection is already gone
                        logger.debug("closing the stop subscription failed", exc_info=True)

    @staticmethod
    def _cancel(registry: _Registry, data: object) -> None:
        """Cancel the generation a stop message names, if it runs in this process."""
        try:
            request_id = int(data)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return
        with registry.lock:
            cancel = registry.running.get(request_id)
        if cancel is not None:
            logger.info("stopping generation request_id=%s", request_id)
            cancel.cancel()

    @staticmethod
    def _sweep(registry: _Registry, client: redis.Redis) -> None:
        """Cancel the running generations whose stop mark is set (one pipelined round trip)."""
        with registry.lock:
            running = list(registry.running)
        if not running:
            return
        pipe = client.pipeline(transaction=False)
        for request_id in running:
            pipe.exists(stop_key(request_id))
        for request_id, marked in zip(running, pipe.execute(), strict=True):
            if marked:
                Generations._cancel(registry, request_id)
