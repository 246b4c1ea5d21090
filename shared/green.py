"""How a gevent worker spends its hub: no turn for a readiness check, bursts in arrival order.

Before every request on a kept-alive connection urllib3 asks whether the server has closed it
(``wait_for_read(sock, timeout=0)`` through ``select.poll``). Under gevent's monkey-patching that
poll is gevent's, which answers even a zero timeout by parking the greenlet until the hub comes
round again: under load a turn of the hub is the CPU work of every greenlet that became ready
meanwhile, so each Bot API call and each LLM call waited one extra turn before a byte was sent
(measured with a hub probe at 100 users: a turn costs 2–4 ms on average and tens of
milliseconds at p99). A zero-timeout poll never blocks, so here the kernel's own poll answers
it at once; a wait with a timeout stays gevent's, cooperative.

:func:`install` is called by every process that builds the Celery app and does something only
in one that gevent has patched (the worker with ``--pool gevent``). :class:`CpuSlots` keeps a
burst of messages in arrival order through the CPU-heavy steps of answering.
"""

from __future__ import annotations

import select
import socket
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app

from shared.db import cooperative

#: Set on the installed function, so installing twice keeps one wrapper.
_MARK = "_ai_router_green"


def install() -> bool:
    """Answer urllib3's zero-timeout readiness checks without a hub turn (idempotent).

    Returns:
        Whether the process is on gevent (and the check is now the kernel's).
    """
    if not cooperative():
        return False
    from gevent import monkey
    from urllib3.util import wait

    if getattr(wait.wait_for_socket, _MARK, False):
        return True
    kernel_poll = monkey.get_original("select", "poll")
    cooperative_wait = wait.poll_wait_for_socket

    def wait_for_socket(
        sock: socket.socket, read: bool = False, write: bool = False, timeout: float | None = None
    ) -> bool:
        if timeout != 0:  # a real wait: gevent's poll lets the other greenlets run meanwhile
            return cooperative_wait(sock, read, write, timeout)
        if not read and not write:
            raise RuntimeError("must specify at least one of read=True, write=True")
        poller: Any = kernel_poll()
        poller.register(sock, (select.POLLIN if read else 0) | (select.POLLOUT if write else 0))
        return bool(poller.poll(0))

    setattr(wait_for_socket, _MARK, True)
    wait.wait_for_socket = wait_for_socket  # wait_for_read/wait_for_write look it up per call
    return True


#: With this many greenlets queued per slot, the gate opens: everyone waiting goes in, in
#: order, and so does everyone arriving, until no more than the slots are inside again. A
#: backlog (the worker saturated) is then served as it always was, the hub batching many ready
#: greenlets per turn: measured at 1,000 users, a gate that never opened cost 20 % more CPU
#: per reply and 13 % of the replies per second. A burst of a few dozen stays well below it.
OPEN_PER_SLOT = 64


class _Gate:
    """The slots of one gevent worker process (built only there).

    No lock: greenlets switch only where they wait, never inside these methods.
    """

    def __init__(self, slots: int) -> None:
        import gevent
        from gevent.event import Event
        from gevent.local import local

        self._sleep, self._event = gevent.sleep, Event  # imported once, not per enter()
        self.slots = slots
        self.inside = 0
        self.queue: deque[Any] = deque()  # gevent Events of the waiting greenlets, oldest first
        self.open = False
        self.resuming = 0
        self.open_at = slots * OPEN_PER_SLOT
        self.local = local()  # per greenlet: whether it holds a slot

    def holding(self) -> bool:
        return bool(getattr(self.local, "held", False))

    def enter(self) -> None:
        """Take a slot, waiting in arrival order; a queue grown long opens the gate."""
        if not self.queue and not self.resuming and (self.open or self.inside < self.slots):
            self.inside += 1
        else:
            turn = self._event()
            self.queue.append(turn)
            if len(self.queue) >= self.open_at:
                self.open = True
            self._admit()  # with the gate open: everyone, in the order they came
            try:
                if turn.is_set():
                    self._sleep(0)  # admitted at once: behind those admitted before us
                else:
                    turn.wait()  # whoever admitted us counted us in
            except BaseException:
                if turn.is_set():
                    self.resuming -= 1
                    self.leave()
                else:
                    self.queue.remove(turn)
                raise
            self.resuming -= 1
        self.local.held = True

    def leave(self) -> None:
        """Give the slot back; the oldest waiter gets it (or, with the gate open, everyone)."""
        self.local.held = False
        self.inside -= 1
        if self.open and self.inside <= self.slots:
            self.open = False
        self._admit()

    def _admit(self) -> None:
        while self.queue and (self.open or self.inside < self.slots):
            self.inside += 1
            self.resuming += 1  # admitted, not yet running: newcomers queue behind them
            self.queue.popleft().set()


class CpuSlots:
    """Flask extension: at most N greenlets run the CPU-heavy steps of answering at once.

    Messages arrive in bursts (a group, a broadcast, or a closed loop of users whose model
    answers in the same second). Each step between two waits goes to the back of gevent's hub,
    so with 20 messages in a burst every one of them waited for every other one's intake
    before its LLM request left, and for every other one's record and send before its reply
    did: processor sharing, where each finishes at the end of the burst. Through ``held()``
    only ``WORKER_CPU_SLOTS`` greenlets at a time do those steps (the intake; the record and
    the send), the others wait their turn in arrival order (a FIFO queue of events, off the
    hub's queue): the first of a burst is answered first. Measured at 100 closed-loop users
    (docs/benchmarks.md): overhead p50 65–174 ms without, 43–53 ms with 4 slots.

    No slot is held while the model answers (``ask`` runs outside), nor over the Bot API's
    network wait, a retry's backoff or a wait for Telegram's flood limits (``released()``), so
    a slow Telegram does not hold up the intake of other chats. With :data:`OPEN_PER_SLOT`
    waiting per slot the gate opens for everyone waiting and arriving, in order, until the
    backlog is gone. Outside a gevent worker (the web, the listener, the thread pool, tests)
    both context managers do nothing.
    """

    def init_app(self, app: Flask) -> None:
        """Build the app's slots when this process runs on gevent and slots are configured.

        Args:
            app: The Flask app (``AI_ROUTER.worker_cpu_slots``; 0 turns the gate off).
        """
        slots = app.config["AI_ROUTER"].worker_cpu_slots
        app.extensions["cpu_slots"] = _Gate(slots) if slots > 0 and cooperative() else None

    @staticmethod
    def _gate() -> _Gate | None:
        return current_app.extensions.get("cpu_slots")

    @staticmethod
    @contextmanager
    def held() -> Iterator[None]:
        """Run the block in a slot (waiting for one in arrival order); nested: the same slot."""
        gate = CpuSlots._gate()
        if gate is None or gate.holding():
            yield
            return
        gate.enter()
        try:
            yield
        finally:
            if gate.holding():
                gate.leave()

    @staticmethod
    @contextmanager
    def released() -> Iterator[None]:
        """Give the current greenlet's slot back for the block (a long sleep), then wait again."""
        gate = CpuSlots._gate()
        if gate is None or not gate.holding():
            yield
            return
        gate.leave()
        yield  # raising (a kill, a time limit): leave without queueing for a slot again
        gate.enter()
