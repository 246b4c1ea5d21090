"""The batched Redis transport (``shared.broker``) on a real Redis, through Celery's own connection.

Each test uses a queue and unacked keys of its own, so the suite's worker and other tests'
messages never mix in.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from kombu import Connection, Exchange, Queue
from kombu.message import Message

from shared.broker import ACK_LINGER, ALIAS, READ_BATCH, TRANSPORT, Transport, broker_url
from tests.support import wait_until


@contextmanager
def _broker(
    app: Flask, redis: Any, **options: Any
) -> Iterator[tuple[Connection, Queue, dict[str, str]]]:
    """A connection of the app's Celery (our transport) with its own queue and unacked keys."""
    tag = secrets.token_hex(4)
    keys = {"unacked_key": f"test-unacked-{tag}", "unacked_index_key": f"test-unacked-ix-{tag}"}
    celery = app.extensions["celery"]
    name = f"test-broker-{tag}"
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
    connection = celery.connection_for_read(transport_options={**keys, **options})
    try:
        yield connection, queue, keys
    finally:
        connection.release()
        redis.delete(name, *keys.values(), f"{keys['unacked_index_key']}_mutex")


def _publish(connection: Connection, queue: Queue, count: int) -> None:
    with connection.Producer() as producer:
        for number in range(count):
            producer.publish({"n": number}, exchange=queue.exchange, routing_key=queue.name,
                             declare=[queue], serializer="json")  # fmt: skip


def test_the_apps_broker_connection_uses_the_batched_transport(app: Flask) -> None:
    """Celery's connections (TCP and unix socket URLs alike) get :class:`Transport`."""
    celery = app.extensions["celery"]
    assert celery.conf.broker_transport == TRANSPORT
    with celery.connection_for_read() as connection:
        assert isinstance(connection.transport, Transport)
    assert broker_url("redis://h:1/2") == "redis://h:1/2"
    unix = Connection(broker_url("unix:///x/redis.sock"), transport=TRANSPORT)
    assert unix.transport_cls == ALIAS
    assert unix.hostname == "socket:///x/redis.sock"
    assert isinstance(unix.transport, Transport)


def test_one_drain_moves_a_batch_within_the_prefetch_credit(app: Flask, redis: Any) -> None:
    """A BRPOP plus one RPOP deliver up to the credit; each delivered message is unacked."""
    with _broker(app, redis) as (connection, queue, keys):
        _publish(connection, queue, 10)
        received: list[Message] = []
        with connection.Consumer(queue, callbacks=[lambda _body, m: received.append(m)]) as c:
            c.qos(prefetch_count=4)
            connection.drain_events(timeout=5)
            assert [m.payload["n"] for m in received] == [0, 1, 2, 3]  # in order, one drain
            assert redis.llen(queue.name) == 6
            assert redis.hlen(keys["unacked_key"]) == 4
            assert redis.zcard(keys["unacked_index_key"]) == 4

            for message in received[:3]:
                message.ack()  # credit returns at once; Redis hears of it at the next drain
            assert redis.hlen(keys["unacked_key"]) == 4
            connection.drain_events(timeout=5)
            assert [m.payload["n"] for m in received] == [0, 1, 2, 3, 4, 5, 6]
            unacked = set(redis.hkeys(keys["unacked_key"]))
            assert unacked == {m.delivery_tag for m in received[3:]}
            assert redis.zcard(keys["unacked_index_key"]) == 4


def test_acks_ride_with_the_next_read_or_are_written_once_they_linger(
    app: Flask, redis: Any
) -> None:
    """A read's pipeline takes the collected acks along; idle ones linger, then are written.

    With nothing to read they wait :data:`ACK_LINGER` seconds, then a drain writes them alone.
    """
    with _broker(app, redis) as (connection, queue, keys):
        _publish(connection, queue, 3)
        received: list[Message] = []
        with connection.Consumer(queue, callbacks=[lambda _body, m: received.append(m)]) as c:
            c.qos(prefetch_count=1)
            connection.drain_events(timeout=5)
            received[0].ack()
            connection.drain_events(timeout=5)  # reads message 1: the ack goes with it
            assert set(redis.hkeys(keys["unacked_key"])) == {received[1].delivery_tag}
            received[1].ack()
            connection.drain_events(timeout=5)
            received[2].ack()
            assert redis.llen(queue.name) == 0
            with contextlib.suppress(socket.timeout):
                connection.drain_events(timeout=0.2)  # nothing to read; the ack is fresh
            assert redis.hlen(keys["unacked_key"]) == 1
            time.sleep(ACK_LINGER)
            with contextlib.suppress(socket.timeout):
                connection.drain_events(timeout=0.2)
            assert redis.hlen(keys["unacked_key"]) == 0
            assert redis.zcard(keys["unacked_index_key"]) == 0


def test_a_batch_is_capped(app: Flask, redis: Any) -> None:
    """Without a prefetch limit one drain still moves at most 1 + READ_BATCH messages."""
    with _broker(app, redis) as (connection, queue, _keys):
        _publish(connection, queue, READ_BATCH + 10)
        received: list[Message] = []
        with connection.Consumer(queue, callbacks=[lambda _body, m: received.append(m)]):
            connection.drain_events(timeout=5)
        assert len(received) == READ_BATCH + 1
        assert redis.llen(queue.name) == 9


def test_held_messages_are_renewed_and_only_abandoned_ones_come_back(
    app: Flask, redis: Any
) -> None:
    """Past the visibility timeout a held, renewed message stays; an abandoned one returns."""
    with _broker(app, redis, visibility_timeout=1) as (connection, queue, keys):
        _publish(connection, queue, 2)
        received: list[Message] = []
        with connection.Consumer(queue, callbacks=[lambda _body, m: received.append(m)]) as c:
            c.qos(prefetch_count=1)
            connection.drain_events(timeout=5)
            assert len(received) == 1 and redis.llen(queue.name) == 1
            qos = c.channel.qos
            time.sleep(1.2)  # past the visibility timeout: only the renewal keeps it
            qos.renew()
            qos.restore_visible(num=10, interval=1)
            assert redis.llen(queue.name) == 1, "a living consumer's message was taken back"
            tag = received[0].delivery_tag
            redis.zadd(keys["unacked_index_key"], {tag: time.time() - 10})  # its holder died
            qos.restore_visible(num=10, interval=1)
            assert redis.llen(queue.name) == 2
            assert redis.hlen(keys["unacked_key"]) == 0


def test_closing_writes_pending_acks_and_restores_the_rest(app: Flask, redis: Any) -> None:
    """At shutdown acknowledged messages are gone for good; the others go back to the queue."""
    with _broker(app, redis) as (connection, queue, keys):
        _publish(connection, queue, 6)
        received: list[Message] = []
        consumer = connection.Consumer(queue, callbacks=[lambda _body, m: received.append(m)])
        consumer.qos(prefetch_count=4)
        consumer.consume()
        connection.drain_events(timeout=5)
        assert len(received) == 4
        received[0].ack()
        received[1].ack()
        consumer.cancel()
        connection.default_channel.close()  # what a warm shutdown does
        assert redis.hlen(keys["unacked_key"]) == 0
        assert redis.zcard(keys["unacked_index_key"]) == 0
        assert redis.llen(queue.name) == 4  # 2 never delivered + 2 delivered, not acknowledged


def test_the_workers_acknowledgements_reach_redis(
    app: Flask, redis: Any, celery_worker: object
) -> None:
    """A real worker (the suite's, with kombu's event loop) leaves nothing unacknowledged."""
    celery = app.extensions["celery"]
    results = [celery.send_task("tasks.health.ping", args=[f"ack-{n}"]) for n in range(20)]
    assert [r.get(timeout=30) for r in results] == [{"pong": f"ack-{n}"} for n in range(20)]
    wait_until(lambda: redis.hlen("unacked") == 0, timeout=10, what="the acks to be written")
    assert redis.zcard("unacked_index") == 0
