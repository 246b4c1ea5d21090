"""Flood control as Telegram applies it: 429 ``Too Many Requests`` with ``retry_after``.

Telegram documents its limits loosely ("about 30 messages per second" overall, "no more than
one message per second" in a chat with short bursts passing, "20 messages per minute" in a
group) and answers 429 with ``parameters.retry_after`` beyond them; a bot that keeps sending
through a 429 is penalised for longer. :class:`FloodLimits` models exactly that:

* a bot-wide token bucket (``global_per_second``, bursts up to ``global_burst``);
* a token bucket per chat (``chat_per_second``, bursts up to ``chat_burst``);
* a sliding 60 s window per group (negative chat ids): at most ``group_per_minute`` messages;
* every method in ``methods`` counts (edits and drafts count like messages); others are free;
* after a 429 the scope stays closed for ``retry_after`` seconds; each call into a closed scope
  is refused again and extends the penalty by ``penalty`` seconds.

All methods run with the fake's lock held.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

#: Methods that send or change a message (what Telegram's flood control counts).
COUNTED_METHODS = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageReplyMarkup",
        "sendMessageDraft",
        "sendPhoto",
        "sendDocument",
        "sendVoice",
        "sendAudio",
        "sendInvoice",
    }
)


@dataclass(frozen=True)
class FloodLimits:
    """The limits the fake enforces (defaults: Telegram's documented figures).

    Attributes:
        global_per_second: Messages per second for the whole bot.
        global_burst: Messages the bot may send at once after a pause.
        chat_per_second: Messages per second into one chat.
        chat_burst: Messages one chat takes at once after a pause.
        group_per_minute: Messages per 60 s into one group (chat id < 0).
        penalty: Seconds added to a closed scope by every call sent into it.
        methods: The methods that count.
    """

    global_per_second: float = 30.0
    global_burst: int = 30
    chat_per_second: float = 1.0
    chat_burst: int = 3
    group_per_minute: int = 20
    penalty: float = 1.0
    methods: frozenset[str] = COUNTED_METHODS


@dataclass
class _Bucket:
    rate: float
    burst: int
    tokens: float = 0.0
    at: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def wait(self, now: float) -> float:
        """Refill; 0 when a token is free, else the seconds until one is."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


@dataclass
class FloodState:
    """What the fake remembers to enforce :class:`FloodLimits`.

    Args:
        limits: The limits.
    """

    limits: FloodLimits
    _global: _Bucket = field(init=False)
    _chats: dict[int, _Bucket] = field(default_factory=dict)
    _groups: dict[int, deque[float]] = field(default_factory=dict)
    _closed: dict[str, float] = field(default_factory=dict)
    refused: int = 0

    def __post_init__(self) -> None:
        """Start with the bot-wide bucket full."""
        self._global = _Bucket(self.limits.global_per_second, self.limits.global_burst)

    def check(self, method: str, chat_id: int | None, now: float) -> int | None:
        """Count one call; None when it passes, else the ``retry_after`` of the 429.

        Args:
            method: The canonical method name.
            chat_id: The target chat (None for calls without one).
            now: ``time.monotonic()``.

        Returns:
            None, or whole seconds to wait (at least 1).
        """
        if method not in self.limits.methods or chat_id is None:
            return None
        scopes = ["global", f"chat:{chat_id}"] + ([f"group:{chat_id}"] if chat_id < 0 else [])
        for scope in scopes:
            until = self._closed.get(scope, 0.0)
            if until > now:  # sent into a closed scope: refused, and the penalty grows
                self._closed[scope] = until + self.limits.penalty
                return self._refuse(self._closed[scope] - now)
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Bucket(
                self.limits.chat_per_second, self.limits.chat_burst
            )
        window = self._groups.setdefault(chat_id, deque()) if chat_id < 0 else None
        while window and window[0] <= now - 60:
            window.popleft()
        waits = [(self._global.wait(now), "global"), (chat.wait(now), f"chat:{chat_id}")]
        if window is not None and len(window) >= self.limits.group_per_minute:
            waits.append((window[0] + 60 - now, f"group:{chat_id}"))
        wait, scope = max(waits)
        if wait > 0:
            self._closed[scope] = now + math.ceil(wait)
            return self._refuse(wait)
        self._global.tokens -= 1
        chat.tokens -= 1
        if window is not None:
            window.append(now)
        return None

    def _refuse(self, wait: float) -> int:
        self.refused += 1
        return max(1, math.ceil(wait))
