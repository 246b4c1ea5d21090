"""Short leases kept alive while their holder lives: a crash is recovered in seconds.

Work a task takes — a chat's lock, a row's claim on its LLM call, a command's claim on its
update — is a Redis key holding the taker's token with a short lifetime
(``LEASE_SECONDS``, 30 s by default). While the process lives, a keeper thread (a greenlet in
the gevent worker) renews every lease the process holds every third of that lifetime, in one
Lua call that renews a key only if it still holds the token. So an LLM call or a flood-limited
send may take minutes, and a process that dies lets go of everything it held within one lease
— not after the task's time limit. The broker's side is the same idea (``shared.broker``:
delivered messages are renewed in the unacked index, and the visibility timeout is one lease).

Holders register with :meth:`Leases.hold` and unregister with :meth:`Leases.drop`; renewing a
key someone else holds now (it lapsed and was taken) does nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from flask import Flask, current_app

from shared.redis import RedisStore

logger = logging.getLogger(__name__)

#: Renew only keys that still hold our token. KEYS: the leases; ARGV[1] ttl ms, ARGV[i+1]
#: the token of KEYS[i]. Returns how many were renewed.
_RENEW = """
local renewed = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    renewed = renewed + 1
  end
end
return renewed
"""
#: Leases renewed per Lua call.
BATCH = 500


def lease_seconds() -> int:
    """How long a lease lives without renewal (``LEASE_SECONDS``)."""
    return int(current_app.config["AI_ROUTER"].lease_seconds)


@dataclass
class _Held:
    """The leases one app (process) holds, and its keeper."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: dict[str, str] = field(default_factory=dict)
    keeper: threading.Thread | None = None


class Leases:
    """Flask extension: the leases this process holds, renewed in the background.

    Args:
        redis: The Redis extension.
    """

    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    def init_app(self, app: Flask) -> None:
        """Give the app its registry (the keeper starts with the first lease).

        Args:
            app: The Flask app.
        """
        app.extensions["leases"] = _Held()

    def hold(self, key: str, token: str) -> None:
        """Keep a lease alive from now on (the caller has just set ``key`` to ``token``).

        Args:
            key: The Redis key.
            token: The value that proves it is ours.
        """
        app = current_app._get_current_object()  # noqa: SLF001 - the keeper needs the app
        held: _Held = app.extensions["leases"]
        with held.lock:
            held.tokens[key] = token
            if held.keeper is None:
                held.keeper = threading.Thread(
                    target=self._keep, args=(app,), name="lease-keeper", daemon=True
                )
                held.keeper.start()

    def drop(self, key: str) -> None:
        """Stop renewing a lease (it was released, or its work is done).

        Args:
            key: The Redis key.
        """
        held: _Held = current_app.extensions["leases"]
        with held.lock:
            held.tokens.pop(key, None)

    def renew(self) -> int:
        """Renew every lease this process holds, now.

        Returns:
            How many were still ours and were renewed.
        """
        held: _Held = current_app.extensions["leases"]
        with held.lock:
            items = list(held.tokens.items())
        if not items:
            return 0
        ttl = str(lease_seconds() * 1000)
        script = self._redis.script(_RENEW)
        renewed = 0
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            keys = [key for key, _token in chunk]
            renewed += int(script(keys=keys, args=[ttl, *(token for _key, token in chunk)]))
        if renewed < len(items):
            logger.warning("%s of %s leases had lapsed", len(items) - renewed, len(items))
        return renewed

    def _keep(self, app: Flask) -> None:
        every = max(1.0, app.config["AI_ROUTER"].lease_seconds / 3)
        while True:
            time.sleep(every)
            with app.app_context():
                try:
                    self.renew()
                except Exception:  # noqa: BLE001 - Redis away: the next round tries again
                    logger.warning("could not renew leases", exc_info=True)
