"""Generations in progress and /stop across processes (real Redis, real subscriber)."""

from __future__ import annotations

from flask import Flask

from shared.extensions import generations, redis_store
from shared.services.generations import Generations
from tests.support import wait_until


def test_a_stop_from_another_process_cancels_the_call(app: Flask, second_process: Flask) -> None:
    """Another app (another process) stops row 41: the running call here is cancelled."""
    other = second_process
    with app.app_context(), generations.running(41) as cancel, generations.running(42) as spared:
        wait_until(
            lambda: app.extensions["generations"].subscriber.is_alive(), what="the subscriber"
        )
        with other.app_context():
            generations.stop(41)
        wait_until(lambda: cancel.cancelled, timeout=10, what="the stop to arrive")
        assert not spared.cancelled


def test_a_stop_before_the_start_is_not_lost(app: Flask) -> None:
    """The mark of a stop that came first cancels the call as it starts."""
    with app.app_context():
        generations.stop(43)
        with generations.running(43) as cancel:
            assert cancel.cancelled


def test_the_sweep_cancels_what_the_channel_missed(app: Flask) -> None:
    """A mark set while nobody listened is found when the subscriber (re)subscribes."""
    with app.app_context(), generations.running(44) as cancel:
        redis_store.client.set("ai_router:stop:44", "1")  # as if the message had been missed
        Generations._sweep(app.extensions["generations"], redis_store.client)  # noqa: SLF001
        assert cancel.cancelled
