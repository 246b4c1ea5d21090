"""Celery's Redis transport, batched: one consumer round trip serves many messages.

Why: a gevent worker runs one consumer greenlet beside hundreds of task greenlets, and every
Redis round trip of that consumer waits for a turn of gevent's hub — a turn that, under load,
is the whole CPU work of every greenlet that became ready meanwhile (milliseconds). kombu's
Redis transport makes three such round trips per message: the ``BRPOP`` that fetches it, the
pipeline that records it as unacknowledged, and the pipeline that acknowledges it. Measured at
100 closed-loop users, a message then waited ≈ 120 ms (p50; p90 ≈ 300 ms) in Redis before the
worker even received it, while the worker's CPU was 40 % idle: the consumer, not the CPU, set
the pace.

This transport keeps kombu's semantics (the same keys, the same unacked index and visibility
timeout, the same restore on shutdown) and changes only how many messages a round trip moves:

* after a ``BRPOP`` returns one message, ONE round trip (a pipeline) writes its unacked
  record, writes the acknowledgements collected since the last write, and takes up to
  :data:`READ_BATCH` more messages from the same queue (``RPOP key count``, within the
  prefetch credit); the records of those are written in a second one. Every record is sent
  before the consumer yields, so before its task runs;
* acknowledgements are collected and ride with the next read's pipeline; a worker with no
  message to read writes them at the start of a drain once they are :data:`ACK_LINGER`
  seconds old (and pools with kombu's event loop on every tick of the loop). The consumer's
  loop is then one ``BRPOP`` and one pipeline per batch; it was four round trips, and at 100
  users each one waits for a turn of the hub;
* the unacked records of the messages a consumer holds are renewed every third of the
  visibility timeout, so the timeout can be one short lease (``LEASE_SECONDS``): a dead
  worker's messages are restored within it (``celery_setup.restore_abandoned``), a living
  worker's never, however long its tasks run. An
  acknowledgement that was collected but not written when the process died only means the
  message is redelivered after the visibility timeout — which the tasks already tolerate
  (every task is idempotent).

Selected by ``broker_transport`` in :func:`shared.celery_setup.celery_config`; the broker URL
is unchanged (``redis://`` or, for a unix socket, ``socket://``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from time import time
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, virtual
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from shared.config import Config

logger = logging.getLogger(__name__)

#: At most this many messages are read after a ``BRPOP`` in one extra round trip.
READ_BATCH = 16
#: Seconds an acknowledgement may wait for the next read before a drain writes it on its own.
ACK_LINGER = 1.0


class QoS(kombu_redis.QoS):
    """kombu's Redis ack emulation with batched unacked records and acknowledgements."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch: Any = None  # a pipeline collecting unacked records while a batch is read
        self._acked: list[str] = []
        self._acked_since: float | None = None  # when the oldest unwritten ack was collected
        self._renewed_at = time()

    def append(self, message: Any, delivery_tag: str) -> None:
        """Record a delivered message as unacknowledged (in the open batch, if any).

        Args:
            message: The kombu message.
            delivery_tag: Its tag.
        """
        if self._batch is None:
            super().append(message, delivery_tag)
            return
        delivery = message.delivery_info
        raw = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])  # noqa: SLF001
        self._batch.zadd(self.unacked_index_key, {delivery_tag: time()})
        self._batch.hset(self.unacked_key, delivery_tag, raw)
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        """Acknowledge: the prefetch credit returns now, Redis is told at the next flush.

        Args:
            delivery_tag: The message's tag.
        """
        if not self._acked:
            self._acked_since = time()
        self._acked.append(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def acks_into(self, pipe: Any) -> int:
        """Queue the removal of every collected acknowledgement on a pipeline.

        Call :meth:`acks_written` with the result once the pipeline has executed; until then
        the tags stay collected (a Redis error keeps them for the next write).

        Args:
            pipe: A pipeline about to be executed.

        Returns:
            How many tags were queued.
        """
        count = len(self._acked)
        if count:
            tags = self._acked[:count]
            pipe.zrem(self.unacked_index_key, *tags).hdel(self.unacked_key, *tags)
        return count

    def acks_written(self, count: int) -> None:
        """Forget the first ``count`` acknowledgements: Redis has them.

        Args:
            count: What :meth:`acks_into` returned.
        """
        del self._acked[:count]
        # what is left was collected while the pipeline ran: its clock starts now
        self._acked_since = time() if self._acked else None

    def acks_lingering(self) -> bool:
        """Whether collected acknowledgements have waited :data:`ACK_LINGER` for a read."""
        return self._acked_since is not None and time() - self._acked_since >= ACK_LINGER

    def flush_acks(self) -> None:
        """Remove every acknowledged message from the unacked index, in one round trip.

        On a Redis error the tags are kept for the next flush (the error propagates, as kombu's
        own acknowledgement would).
        """
        if not self._acked:
            return
        with self.pipe_or_acquire() as pipe:
            count = self.acks_into(pipe)
            pipe.execute()
        self.acks_written(count)

    def renew(self) -> None:
        """Mark every message this consumer holds as alive, if a third of the visibility passed.

        kombu restores a message whose unacked record is older than the visibility timeout;
        renewing the records of the messages a living worker holds (running, waiting for a
        slot, or waiting for their countdown) lets the timeout be short — one lease — so a dead
        worker's messages go to another within seconds, never a living worker's.
        """
        now = time()
        if now - self._renewed_at < self.visibility_timeout / 3:
            return
        self._renewed_at = now
        tags = list(self._delivered)
        if tags:
            with self.pipe_or_acquire() as pipe:
                pipe.zadd(self.unacked_index_key, dict.fromkeys(tags, now), xx=True).execute()

    def restore_unacked_once(self, stderr: Any = None) -> Any:
        """At shutdown: write the pending acknowledgements, then restore the rest (kombu's).

        When the broker connection was lost, Celery closes the channel after kombu has detached
        it from its connection, and kombu's restore then fails on that (``AttributeError`` on
        the missing connection info), which Celery takes for an unrecoverable error and exits
        — a worker did not survive a Redis restart. Here the restore is left to the sweep
        instead: the messages stay in the unacked index and come back after the visibility
        timeout (one lease), while the worker reconnects.
        """
        with suppress(Exception):  # Redis may be what is failing; they are redelivered then
            self.flush_acks()
        transport = getattr(self.channel, "connection", None)
        if transport is None or transport.client is None:
            logger.warning(
                "broker connection lost: %s unacknowledged messages return after the "
                "visibility timeout",
                len(self._delivered),
            )
            return None
        return super().restore_unacked_once(stderr)


class Channel(kombu_redis.Channel):
    """kombu's Redis channel reading up to :data:`READ_BATCH` more messages after a BRPOP."""

    QoS = QoS

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """A client for one synchronous command: ``client``, else one kept per channel.

        kombu builds a new ``redis.Redis`` around the channel's pool for every publish and
        every ack; building one costs about as much as the LPUSH it sends (a tenth of the
        listener's CPU). A client is safe to share — each command takes a connection from the
        pool — so one is kept, and rebuilt when the channel's pool is replaced (after a fork or
        a disconnect).

        Args:
            client: A client the caller already holds.

        Yields:
            The client to use.
        """
        if client:
            yield client
            return
        pool = self.pool
        kept = self.__dict__.get("_kept_client")
        if kept is None or kept.connection_pool is not pool:
            kept = self.__dict__["_kept_client"] = self._create_client()
        yield kept

    def _brpop_read(self, **options: Any) -> bool:
        qos: QoS = self.qos
        with self.conn_or_acquire() as client:
            qos._batch = client.pipeline()  # noqa: SLF001
            try:
                return self._read_batch(client, **options)
            finally:
                batch, qos._batch = qos._batch, None  # noqa: SLF001
                if len(batch):
                    batch.execute()

    def _read_batch(self, client: Any, **options: Any) -> bool:
        """BRPOP's answer; then one pipeline: its record, the collected acks, more messages.

        The first message's task is spawned before the pipeline runs, and runs while the
        consumer waits for it: its unacked record was sent first. The records of the messages
        the pipeline brought are written by :meth:`_brpop_read` before it yields again.
        """
        qos: QoS = self.qos
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise virtual.Empty()
            key, item = dest__item
            key = bytes_to_str(key)
            dest = key.rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            self.connection._deliver(loads(bytes_to_str(item)), dest)  # noqa: SLF001
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()
        batch = qos._batch  # noqa: SLF001
        acked = qos.acks_into(batch)
        credit = min(READ_BATCH, self._credit())
        more_at = None
        if credit > 0 and not self.global_keyprefix:
            more_at = len(batch)
            batch.rpop(key, credit)
        results = batch.execute()
        qos.acks_written(acked)
        qos._batch = client.pipeline()  # noqa: SLF001 - the records of what RPOP brought
        for more in (results[more_at] if more_at is not None else None) or ():
            self.connection._deliver(loads(bytes_to_str(more)), dest)  # noqa: SLF001
        return True

    def _credit(self) -> int:
        """Messages the prefetch limit still allows."""
        qos = self.qos
        if not qos.prefetch_count:
            return READ_BATCH
        return qos.prefetch_count - (len(qos._delivered) - len(qos._dirty))  # noqa: SLF001


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`, writing collected acks in batches.

    A worker without an event loop (the gevent pool: Celery's ``synloop``) writes them with the
    next read, or at the start of a drain once they linger; one with kombu's event loop (the
    thread and prefork pools) on every tick of the loop.
    """

    Channel = Channel

    def drain_events(self, connection: Any, timeout: float | None = None) -> Any:
        """Drain (kombu's), first writing acknowledgements no read has taken along.

        Acknowledgements ride with the next read's pipeline (:meth:`Channel._read_batch`); only
        those that waited :data:`ACK_LINGER` (no message came) cost a round trip of their own.

        Args:
            connection: The kombu connection.
            timeout: Seconds to wait for a message.

        Returns:
            What kombu's drain returns.
        """
        for channel in self.channels:
            if channel.qos.acks_lingering():
                channel.qos.flush_acks()
            channel.qos.renew()
        return super().drain_events(connection, timeout)

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        """Register kombu's way, plus writing the acknowledgements on every tick.

        Args:
            connection: The kombu connection.
            loop: Celery's event loop (``kombu.asynchronous.Hub``).
        """
        super().register_with_event_loop(connection, loop)
        loop.on_tick.add(self.flush_acks)

    def flush_acks(self) -> None:
        """Write every channel's collected acknowledgements, renew its held messages when due.

        One round trip per channel for the acks, one more when the renewal is due.
        """
        for channel in self.channels:
            channel.qos.flush_acks()
            channel.qos.renew()


#: The import path of :class:`Transport` (Celery's ``broker_transport``).
TRANSPORT = f"{__name__}:Transport"
#: Its name in kombu's transport registry, for the ``<name>+socket://`` form of a unix socket
#: (kombu refuses an import path there: a URL must not choose what gets imported).
ALIAS = "ai-router-redis"


def register() -> None:
    """Name :class:`Transport` in kombu's registry (idempotent; connects to nothing)."""
    TRANSPORT_ALIASES.setdefault(ALIAS, TRANSPORT)


def broker_url(redis_url: str) -> str:
    """The broker URL that selects :class:`Transport` for a redis-py URL.

    A TCP URL stays as it is (``broker_transport`` names the transport); a unix socket needs
    kombu's ``<transport>+socket://`` form, whose prefix overrides ``broker_transport``: it
    names the transport by its registered :data:`ALIAS`.

    Args:
        redis_url: ``redis://``, ``rediss://`` or ``unix://``.

    Returns:
        The URL for Celery's ``broker_url``.
    """
    if redis_url.startswith("unix://"):
        register()
        return f"{ALIAS}+socket://{redis_url[len('unix://') :]}"
    return redis_url


def broker_settings(config: Config) -> dict[str, Any]:
    """Celery's settings for reaching the broker through :class:`Transport`.

    The same for every process that speaks to the broker: the worker and the producers
    (``shared.celery_setup.celery_settings``) and Flower (``flower_app``), so they all meet on
    the same queues, the same unix socket alias and the same visibility timeout.

    Args:
        config: The configuration (``REDIS_URL``, ``LEASE_SECONDS``, ``WORKER_CONCURRENCY``).

    Returns:
        ``broker_url``, ``broker_transport``, ``broker_transport_options`` and
        ``broker_connection_retry_on_startup``, for ``Celery.conf.update``. The visibility
        timeout is one lease: the worker renews the messages it holds (:class:`QoS`), so a
        running task is not handed to a second worker, and a dead worker's tasks go to another
        within a lease plus a sweep.
    """
    return {
        "broker_url": broker_url(config.redis_url),
        "broker_transport": TRANSPORT,
        "broker_connection_retry_on_startup": True,
        # Celery's Redis channels allow 10 connections by default and redis-py 8 raises when
        # a pool is full: a gevent worker with hundreds of tasks then fails to ack (and runs
        # tasks twice). Allow one per concurrent task, plus room for the consumer and events.
        "broker_transport_options": {
            "visibility_timeout": config.lease_seconds,
            "max_connections": config.worker_concurrency + 100,
        },
    }
