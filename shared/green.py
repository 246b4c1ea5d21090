"""Readiness checks that cost no turn of gevent's hub (a worker process on gevent).

Before every request on a kept-alive connection urllib3 asks whether the server has closed it
(``wait_for_read(sock, timeout=0)`` through ``select.poll``). Under gevent's monkey-patching that
poll is gevent's, which answers even a zero timeout by parking the greenlet until the hub comes
round again: under load a turn of the hub is the CPU work of every greenlet that became ready
meanwhile, so each Bot API call and each LLM call waited one extra turn before a byte was sent
(measured with a hub probe at 100 users: a turn costs 2–4 ms on average and tens of
milliseconds at p99). A zero-timeout poll never blocks, so here the kernel's own poll answers
it at once; a wait with a timeout stays gevent's, cooperative.

:func:`install` is called by every process that builds the Celery app and does something only
in one that gevent has patched (the worker with ``--pool gevent``).
"""

from __future__ import annotations

import select
import socket
from typing import Any

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
