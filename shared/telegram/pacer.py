"""One pacer for every Bot API send, shared by every process and host through Redis.

Telegram allows a bot about 30 messages per second overall, about one per second into a chat
(short bursts pass) and 20 per minute into a group, and answers 429 with ``retry_after`` beyond
that — with longer penalties for a bot that keeps sending through them. Every call that sends
or changes a message therefore asks the pacer first (:meth:`Pacer.acquire`):

* **Lanes.** A global lane and one lane per chat (a group's lane has the group's pace). A chat's
  lane is a GCRA schedule (its "theoretical arrival time" in Redis); the global lane is a
  calendar of 100 ms buckets (30/s: 3 sends per bucket), so a chat that must wait books a
  later bucket without holding back the others. A send is due when both lanes have room. One
  Lua script checks and books them atomically, on Redis's clock, so any number of workers on
  any number of hosts share one schedule.
* **Reservations.** An answer that cannot go now books the next free slot of each lane and
  is told how long to wait; senders are served in booking order and never poll. A slot further
  away than the caller's horizon is not booked: the caller defers the whole send instead of
  holding a worker slot (:class:`~shared.telegram.client.SendDeferred`).
* **Priorities.** Answers and command replies (:attr:`Priority.ANSWER`) book slots. Drafts
  (:attr:`Priority.DRAFT`) and "typing…" (:attr:`Priority.TYPING`) never wait: they go only
  when their lanes have spare room beyond what answers need (a draft leaves a chat's last token
  to the final message and goes only while the global bucket is under half full), else they
  are skipped. "typing…" counts for no flood limit and books nothing: it goes while the global
  bucket is not full and the chat's lane is open, at most once per :data:`TYPING_EVERY_MS` per
  chat.
* **Closed lanes.** A 429 closes the chat's lane for ``retry_after`` for every worker at once
  (:meth:`Pacer.close`); when 429s come from several chats within a second the global lane
  closes too. Nothing is booked into a closed lane, and a sender that waited re-checks before
  it sends (:meth:`Pacer.closed_for`).
* **Unreachable chats** (the user blocked the bot) are refused at once
  (:attr:`Verdict.UNREACHABLE`) until the user writes again (:meth:`Pacer.set_reachable`).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from shared.redis import KEY_PREFIX, RedisStore

#: "typing…" at most this often per chat (Telegram shows it for about 5 s).
TYPING_EVERY_MS = 5000
#: 429s from this many different chats within :data:`STORM_WINDOW_MS` close the global lane.
STORM_CHATS = 3
STORM_WINDOW_MS = 1000

# KEYS: 1 global closed, 2 chat TAT, 3 chat closed, 4 chat unreachable, 5 chat typing mark,
#       6 prefix of the global lane's buckets (a bucket's key is the prefix and its number).
# ARGV: 1 priority (0 answer, 1 draft, 2 typing), 2 horizon ms,
#       3 global bucket ms (0: no global lane), 4 sends per global bucket,
#       5 chat interval ms, 6 chat tolerance ms, 7 typing every ms.
# Returns {code, wait ms}: code 1 booked (send after wait), 0 not booked (an answer's slot is
# beyond the horizon, or a draft/typing without spare room), -2 unreachable.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[4]) == 1 then return {-2, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local priority, horizon = tonumber(ARGV[1]), tonumber(ARGV[2])
local bucket_ms, per_bucket = tonumber(ARGV[3]), tonumber(ARGV[4])
local interval, tolerance = tonumber(ARGV[5]), tonumber(ARGV[6])
local at = now
for _, key in ipairs({KEYS[1], KEYS[3]}) do
  at = math.max(at, tonumber(redis.call('GET', key) or '0'))
end
local tat = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now)
if priority == 1 then
  -- drafts never wait and leave the chat's last token to the final message
  tolerance = tolerance - interval
end
if priority < 2 then at = math.max(at, tat - tolerance) end
local bucket = nil
if priority > 0 then
  if at > now then return {0, 0} end
  if bucket_ms > 0 then
    bucket = math.floor(now / bucket_ms)
    local used = tonumber(redis.call('GET', KEYS[6] .. bucket) or '0')
    -- spare room only: drafts go while the bucket is under half full, typing while not full
    if (priority == 1 and used * 2 >= per_bucket) or used >= per_bucket then
      return {0, 0}
    end
  end
  if priority > 1 then
    -- typing counts for no flood limit: it books nothing but its own 5 s mark
    if redis.call('SET', KEYS[5], '1', 'NX', 'PX', ARGV[7]) then return {1, 0} end
    return {0, 0}
  end
elseif bucket_ms > 0 then
  -- the first bucket from `at` on with room: a calendar, so a chat that must wait does not
  -- hold back the others
  bucket = math.floor(at / bucket_ms)
  local last = math.floor((now + horizon) / bucket_ms)
  while bucket <= last and tonumber(redis.call('GET', KEYS[6] .. bucket) or '0') >= per_bucket do
    bucket = bucket + 1
  end
  if bucket > last then return {0, math.max(at, bucket * bucket_ms) - now} end
  at = math.max(at, bucket * bucket_ms)
elseif at - now > horizon then
  return {0, at - now}
end
if bucket then
  redis.call('INCR', KEYS[6] .. bucket)
  redis.call('PEXPIRE', KEYS[6] .. bucket, at - now + 2000)
end
local booked = math.max(tat, at) + interval
redis.call('SET', KEYS[2], booked, 'PX', booked - now + tonumber(ARGV[6]) + 1000)
return {1, at - now}
"""

# KEYS: 1 chat closed, 2 global closed, 3 recent 429s (zset of chat ids).
# ARGV: 1 retry_after ms, 2 chat id, 3 storm chats, 4 storm window ms.
# Returns 1 when the global lane was closed too.
_CLOSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilms = now + tonumber(ARGV[1])
local function close(key)
  local current = tonumber(redis.call('GET', key) or '0')
  if untilms > current then redis.call('SET', key, untilms, 'PX', tonumber(ARGV[1]) + 1000) end
end
close(KEYS[1])
redis.call('ZADD', KEYS[3], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[4]) * 2)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then
  close(KEYS[2])
  return 1
end
return 0
"""

# KEYS: 1 global closed, 2 chat closed. Returns the ms until both are open.
_CLOSED_FOR = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for _, key in ipairs(KEYS) do
  wait = math.max(wait, tonumber(redis.call('GET', key) or '0') - now)
end
return wait
"""


class Verdict(enum.Enum):
    """What the pacer says of a send."""

    GO = "go"  #: booked: send after ``Slot.wait`` seconds
    BEYOND = "beyond"  #: an answer's slot is further than its horizon: nothing booked
    SKIP = "skip"  #: a draft or "typing…" with no spare room now: do not send it
    UNREACHABLE = "unreachable"  #: the user blocked the bot: send nothing


@dataclass(frozen=True)
class Slot:
    """The pacer's answer.

    Attributes:
        verdict: Go, defer, skip or drop.
        wait: Seconds until the slot (for ``GO`` and ``BEYOND``).
    """

    verdict: Verdict
    wait: float = 0.0


class Priority(enum.IntEnum):
    """Who goes first when lanes are busy (lower first)."""

    ANSWER = 0
    DRAFT = 1
    TYPING = 2


@dataclass(frozen=True)
class PaceLimits:
    """The pace of each kind of lane.

    Attributes:
        global_per_second: Messages per second for the whole bot (0: no global lane).
        chat_per_second: Messages per second into a private chat.
        chat_burst: Messages a private chat takes back to back.
        group_per_minute: Messages per minute into a group (chat id < 0), evenly spaced.
    """

    global_per_second: float = 30.0
    chat_per_second: float = 1.0
    chat_burst: int = 2
    group_per_minute: int = 20

    def global_buckets(self) -> tuple[int, int]:
        """The global lane as a calendar: ``(bucket ms, sends per bucket)``; ``(0, 0)``: none.

        Buckets of at least 100 ms holding a whole number of sends: 30/s is 3 per 100 ms.
        """
        if self.global_per_second <= 0:
            return 0, 0
        per_bucket = max(1, math.ceil(self.global_per_second / 10))
        return round(1000 * per_bucket / self.global_per_second), per_bucket

    def chat_lane(self, chat_id: int) -> tuple[int, int]:
        """A chat's lane: ``(interval ms, tolerance ms)`` of its GCRA schedule.

        Args:
            chat_id: The chat (negative for groups).

        Returns:
            The interval between sends and how far ahead of it a burst may go.
        """
        if chat_id < 0:
            # 5 % slower than the limit: two sends booked an interval apart may reach Telegram
            # a little closer together
            return round(60_000 / self.group_per_minute * 1.05), 0
        interval = round(1000 / self.chat_per_second)
        return interval, interval * (self.chat_burst - 1)


class Pacer:
    """The Redis-backed pacer (see the module docstring).

    Args:
        redis: The Redis extension (scripts are cached per app).
        limits: The lanes' pace.
    """

    def __init__(self, redis: RedisStore, limits: PaceLimits) -> None:
        self._redis = redis
        self.limits = limits

    @staticmethod
    def _keys(chat_id: int) -> list[str]:
        base = f"{KEY_PREFIX}pace:"
        return [
            f"{base}global:closed",
            f"{base}chat:{chat_id}",
            f"{base}chat:{chat_id}:closed",
            f"{base}chat:{chat_id}:unreachable",
            f"{base}chat:{chat_id}:typing",
            f"{base}global:",
        ]

    def acquire(self, chat_id: int, priority: Priority, horizon: float = 0.0) -> Slot:
        """Book a send into a chat.

        Args:
            chat_id: The chat.
            priority: Who is sending.
            horizon: For an answer, the longest wait (seconds) worth booking.

        Returns:
            ``GO`` with the wait before sending (booked), ``BEYOND`` with the wait (an answer
            whose slot is past the horizon: nothing booked), ``SKIP`` (a draft or "typing…"
            without spare room), or ``UNREACHABLE``.
        """
        bucket_ms, per_bucket = self.limits.global_buckets()
        interval, tolerance = self.limits.chat_lane(chat_id)
        code, wait_ms = self._redis.script(_ACQUIRE)(
            keys=self._keys(chat_id),
            args=[int(priority), int(horizon * 1000), bucket_ms, per_bucket, interval, tolerance,
                  TYPING_EVERY_MS],
        )  # fmt: skip
        if code == -2:
            return Slot(Verdict.UNREACHABLE)
        if code == 1:
            return Slot(Verdict.GO, wait_ms / 1000)
        if priority != Priority.ANSWER:
            return Slot(Verdict.SKIP)
        return Slot(Verdict.BEYOND, wait_ms / 1000)

    def close(self, chat_id: int, retry_after: float) -> bool:
        """Close a chat's lane after a 429, for every worker; a 429 storm closes the global lane.

        Args:
            chat_id: The chat Telegram refused.
            retry_after: Telegram's ``retry_after`` (seconds).

        Returns:
            Whether the global lane was closed too.
        """
        keys = self._keys(chat_id)
        return bool(
            self._redis.script(_CLOSE)(
                keys=[keys[2], keys[0], f"{KEY_PREFIX}pace:recent429"],
                args=[int(retry_after * 1000), chat_id, STORM_CHATS, STORM_WINDOW_MS],
            )
        )

    def closed_for(self, chat_id: int) -> float:
        """Seconds until a chat's lanes (its own and the global one) are open.

        Args:
            chat_id: The chat.

        Returns:
            0 when both are open.
        """
        keys = self._keys(chat_id)
        return max(0, int(self._redis.script(_CLOSED_FOR)(keys=[keys[0], keys[2]]))) / 1000

    def set_reachable(self, chat_id: int, reachable: bool, ttl: int | None = None) -> None:
        """Refuse (or accept again) every send into a chat, for every worker.

        Args:
            chat_id: The chat.
            reachable: False after Telegram said the user blocked the bot.
            ttl: Seconds the refusal lasts (None: until lifted).
        """
        key = self._keys(chat_id)[3]
        if reachable:
            self._redis.client.delete(key)
        else:
            self._redis.client.set(key, "1", ex=ttl)
