"""Plan limits enforced across every worker at once: Redis counters with reservations.

A question is checked **before** the LLM call, atomically, by one Lua script per question
(:func:`reserve`): it compares what the user used today and this month with their limits and,
when under every one, counts the request and *reserves* an estimate of its tokens and cost, all
in the same step. So N workers taking N questions of one user at the same moment can never
let more through than the limits allow: 50 messages sent at once with 3 requests left get
exactly 3 answers. After the answer, :func:`settle` replaces the reservation with the real
usage (the LLM's token counts and the model's prices); a failed call settles at zero.

Keys (per user, in the configured timezone's day and month; ``KEY_PREFIX`` first):

- ``quota:{user_id}:d:{YYYY-MM-DD}`` — hash ``req`` (requests), ``tok`` (tokens), and one
  ``r:{update_id}`` field per open reservation (``"tokens:nanodollars"``; named after the
  Telegram update, known before the row is written, so a redelivered update finds its
  reservation held instead of counting twice); lives 2 days;
- ``quota:{user_id}:m:{YYYY-MM}`` — hash ``tok``, ``usd`` (nanodollars); lives 35 days.

**The database stays the source of truth.** A missing key (a new day, a Redis that lost its
data) is rebuilt from the ``requests`` table (:func:`shared.services.usage.spent_since`) before
the check — requests not denied, tokens and cost of answered ones — and only if it is still
missing (two workers rebuilding at once write it once); a plan change drops them
(:func:`forget`). Approximations, all on the side of the user: a request whose worker died
between the check and the answer keeps its reservation (its request until the day ends, its
tokens and dollars until the month ends); a request pending while the counters are rebuilt is
counted in full when it settles; the reservation estimates the question and at most
:data:`ANSWER_RESERVE` answer tokens, not the dialog's history, so a burst can pass a token or
dollar limit by its prompts. A plan without limits costs no Redis call.

Refusals carry :class:`LimitHit`: which limit, its value, and when it resets; it round-trips
through the log row's ``error`` (:meth:`LimitHit.to_error`, :meth:`LimitHit.parse`), so the
refusal text can be rebuilt from the row.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from flask import current_app

from shared.db import db
from shared.extensions import redis_store
from shared.llm import ModelSpec, estimate_tokens
from shared.models.types import utcnow
from shared.redis import KEY_PREFIX
from shared.services import usage
from shared.services.plans import PlanSpec

logger = logging.getLogger(__name__)

#: Tokens reserved for the answer of a model without ``max_tokens`` (and the cap otherwise).
ANSWER_RESERVE = 512
DAY_TTL = 2 * 86400
MONTH_TTL = 35 * 86400
NANO = Decimal(1_000_000_000)
#: The limits, in the order they are checked (and named in refusals and ``error``).
LIMIT_NAMES = ("requests_per_day", "tokens_per_day", "tokens_per_month", "cost_usd_per_month")
DAILY = frozenset({"requests_per_day", "tokens_per_day"})

_RESERVE = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then
  return {'rebuild'}
end
if redis.call('HEXISTS', KEYS[1], 'r:' .. ARGV[1]) == 1 then return {'held'} end
local used = {
  tonumber(redis.call('HGET', KEYS[1], 'req') or '0'),
  tonumber(redis.call('HGET', KEYS[1], 'tok') or '0'),
  tonumber(redis.call('HGET', KEYS[2], 'tok') or '0'),
  tonumber(redis.call('HGET', KEYS[2], 'usd') or '0'),
}
local names = {'requests_per_day', 'tokens_per_day', 'tokens_per_month', 'cost_usd_per_month'}
for i = 1, 4 do
  local limit = tonumber(ARGV[i + 1])
  if limit >= 0 and used[i] >= limit then return {names[i], tostring(used[i])} end
end
redis.call('HINCRBY', KEYS[1], 'req', 1)
redis.call('HINCRBY', KEYS[1], 'tok', ARGV[6])
redis.call('HINCRBY', KEYS[2], 'tok', ARGV[6])
redis.call('HINCRBY', KEYS[2], 'usd', ARGV[7])
redis.call('HSET', KEYS[1], 'r:' .. ARGV[1], ARGV[6] .. ':' .. ARGV[7])
return {'ok'}
"""

_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local field = 'r:' .. ARGV[1]
local held = redis.call('HGET', KEYS[1], field)
local tokens, nanos = 0, 0
if held then
  local sep = string.find(held, ':', 1, true)
  tokens = tonumber(string.sub(held, 1, sep - 1))
  nanos = tonumber(string.sub(held, sep + 1))
  redis.call('HDEL', KEYS[1], field)
  if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[1], 'req', -1) end
elseif ARGV[4] == '1' then
  return 0
end
local d_tokens = tonumber(ARGV[2]) - tokens
redis.call('HINCRBY', KEYS[1], 'tok', d_tokens)
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HINCRBY', KEYS[2], 'tok', d_tokens)
  redis.call('HINCRBY', KEYS[2], 'usd', tonumber(ARGV[3]) - nanos)
end
return 1
"""

_INIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'req', ARGV[1], 'tok', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[2], 'tok', ARGV[3], 'usd', ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
return 1
"""


@dataclass(frozen=True)
class Limits:
    """The limits that apply to one user (None = unlimited).

    Attributes:
        requests_per_day: The user's own daily limit when set, else the plan's.
        tokens_per_day: The plan's.
        tokens_per_month: The plan's.
        cost_usd_per_month: The plan's.
    """

    requests_per_day: int | None = None
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None
    cost_usd_per_month: Decimal | None = None

    @classmethod
    def of(cls, plan: PlanSpec | None, own_daily_limit: int | None = None) -> Limits:
        """The limits of a plan, with a user's own daily request limit overriding the plan's.

        Args:
            plan: The user's effective plan (None: no plan exists, no limits).
            own_daily_limit: ``User.daily_request_limit``.

        Returns:
            The limits.
        """
        if plan is None:
            return cls(requests_per_day=own_daily_limit)
        return cls(
            requests_per_day=(
                own_daily_limit if own_daily_limit is not None else plan.requests_per_day
            ),
            tokens_per_day=plan.tokens_per_day,
            tokens_per_month=plan.tokens_per_month,
            cost_usd_per_month=plan.cost_usd_per_month,
        )

    @property
    def unlimited(self) -> bool:
        """Whether no limit applies (no counter needs to be kept)."""
        return all(getattr(self, name) is None for name in LIMIT_NAMES)

    def value(self, name: str) -> int | Decimal | None:
        """A limit by name (one of :data:`LIMIT_NAMES`)."""
        return getattr(self, name)


@dataclass(frozen=True)
class LimitHit:
    """A refusal: which limit was reached, its value, and when it resets.

    Attributes:
        limit: One of :data:`LIMIT_NAMES`.
        value: The limit's value.
        resets_at: When the counter starts again (aware).
    """

    limit: str
    value: int | Decimal
    resets_at: datetime

    _PATTERN = re.compile(r"^limit (\w+)=([\d.]+) reached; resets at (\S+)")

    def to_error(self) -> str:
        """The log row's ``error``: ``limit NAME=VALUE reached; resets at ISO-8601``."""
        return f"limit {self.limit}={self.value} reached; resets at {self.resets_at.isoformat()}"

    @classmethod
    def parse(cls, error: str | None) -> LimitHit | None:
        """Read a hit back from a row's ``error`` (None for another or an older error text)."""
        match = cls._PATTERN.match(error or "")
        if match is None or match.group(1) not in LIMIT_NAMES:
            return None
        raw = match.group(2)
        value: int | Decimal = Decimal(raw) if match.group(1) == "cost_usd_per_month" else int(raw)
        try:
            return cls(match.group(1), value, datetime.fromisoformat(match.group(3)))
        except ValueError:
            return None


class Held:
    """:func:`reserve`'s answer for a name whose reservation is open already (a redelivery).

    Nothing was counted again; the caller must not release what it did not reserve.
    """


HELD = Held()


@dataclass(frozen=True)
class Period:
    """The day and month a request counts in, and their keys and ends."""

    day_key: str
    month_key: str
    day_ends: datetime
    month_ends: datetime

    @classmethod
    def of(cls, user_id: int, tz_name: str, at: datetime) -> Period:
        """The period of a request made at ``at`` (aware) by a user, in ``tz_name``."""
        day = usage.day_start(tz_name, at)
        return cls(
            f"{KEY_PREFIX}quota:{user_id}:d:{day.date().isoformat()}",
            f"{KEY_PREFIX}quota:{user_id}:m:{day.strftime('%Y-%m')}",
            usage.next_day_start(tz_name, at),
            usage.next_month_start(tz_name, at),
        )

    def resets_at(self, limit: str) -> datetime:
        """When a limit's counter starts again."""
        return self.day_ends if limit in DAILY else self.month_ends


def forget(user_id: int, at: datetime | None = None) -> None:
    """Drop a user's current day and month counters: the next check rebuilds them.

    Called when the user's plan changes. Counters are kept only while a plan has limits, so
    after time on an unlimited plan they would lack that time's use; rebuilt, they count it.
    A Redis error is logged (the counters then stay as they are until the day or month ends).

    Args:
        user_id: The user.
        at: An instant of the period (default: now).
    """
    try:
        period = Period.of(user_id, current_app.config["AI_ROUTER"].timezone, at or utcnow())
        current_app.extensions["redis"].delete(period.day_key, period.month_key)
    except Exception:  # noqa: BLE001 - the plan change stands; the counters err as before
        logger.warning("could not reset the quota counters of user_id=%s", user_id, exc_info=True)


def estimate(spec: ModelSpec | None, text: str, extra_tokens: int = 0) -> tuple[int, int]:
    """The reservation of a question: tokens and nanodollars, from its text and the model.

    Args:
        spec: The model that will answer (None: no price, nothing to reserve but the tokens).
        text: The question.
        extra_tokens: What comes with it (a document's or an image's share of the prompt).

    Returns:
        ``(tokens, nanodollars)``.
    """
    prompt = estimate_tokens(text) + extra_tokens
    answer = min(spec.max_tokens or ANSWER_RESERVE, ANSWER_RESERVE) if spec else ANSWER_RESERVE
    if spec is None:
        return prompt + answer, 0
    usd = (
        Decimal(prompt) * spec.input_price_per_1m + Decimal(answer) * spec.output_price_per_1m
    ) / Decimal(1_000_000)
    return prompt + answer, int(usd * NANO)


def _nanos(value: Decimal | None) -> int:
    return -1 if value is None else int(Decimal(value) * NANO)


def _limit_arg(value: int | None) -> int:
    return -1 if value is None else int(value)


def reserve(
    user_id: int,
    name: int,
    limits: Limits,
    reservation: tuple[int, int],
    *,
    at: datetime,
    ignore_cost: bool = False,
) -> LimitHit | Held | None:
    """Check every limit and, when under all, count the request and hold its reservation.

    Args:
        user_id: The user.
        name: Names the reservation (the request's ``update_id``: known before its row).
        limits: The user's limits (callers skip this for :attr:`Limits.unlimited`).
        reservation: ``(tokens, nanodollars)`` from :func:`estimate`.
        at: When the request was made (its day and month).
        ignore_cost: Do not check the dollar limit (a plan's cheaper fallback model answers).

    Returns:
        None when the request may go on (counted and reserved now); :data:`HELD` when a
        reservation of that name is open already (counted once, by its first holder); else the
        limit it hit.
    """
    tz_name = current_app.config["AI_ROUTER"].timezone
    period = Period.of(user_id, tz_name, at)
    script = redis_store.script(_RESERVE)
    args = [
        name,
        _limit_arg(limits.requests_per_day),
        _limit_arg(limits.tokens_per_day),
        _limit_arg(limits.tokens_per_month),
        -1 if ignore_cost else _nanos(limits.cost_usd_per_month),
        reservation[0],
        reservation[1],
    ]
    for _attempt in range(2):
        answer = script(keys=[period.day_key, period.month_key], args=args)
        verdict = answer[0].decode() if isinstance(answer[0], bytes) else answer[0]
        if verdict == "ok":
            return None
        if verdict == "held":
            return HELD
        if verdict == "rebuild":
            rebuild(user_id, period, tz_name, at)
            continue
        value = limits.value(verdict)
        assert value is not None
        return LimitHit(verdict, value, period.resets_at(verdict))
    raise RuntimeError("quota counters vanished twice in a row")


def rebuild(user_id: int, period: Period, tz_name: str, at: datetime) -> None:
    """Write a user's missing counters from the database (only keys still missing are set).

    Runs before the checked request's row exists, in a short session of its own.

    Args:
        user_id: The user.
        period: The counters' period.
        tz_name: IANA timezone of the day and month.
        at: An instant inside the period.
    """
    day_start, month_start = usage.day_start(tz_name, at), usage.month_start(tz_name, at)
    try:
        day = usage.spent_since([user_id], day_start)[user_id]
        month = usage.spent_since([user_id], month_start)[user_id]
    finally:
        db.session.commit()  # nothing written: ends the read, frees the connection
    logger.info("quota counters of user_id=%s rebuilt from the database", user_id)
    redis_store.script(_INIT)(
        keys=[period.day_key, period.month_key],
        args=[
            day.requests,
            day.tokens,
            month.tokens,
            int(month.cost_usd * NANO),
            DAY_TTL,
            MONTH_TTL,
        ],
    )


def settle(
    user_id: int,
    name: int,
    requested_at: datetime,
    tokens: int,
    cost_usd: Decimal | None,
    *,
    drop: bool = False,
) -> None:
    """Replace a request's reservation with what it really used (zero for a failed call).

    Safe to call for a request that reserved nothing (its plan had no limits, or the counters
    were rebuilt meanwhile: the real usage is then added in full). Never raises: a Redis error
    leaves the reservation, which errs on the user's side, and is logged.

    Args:
        user_id: The user.
        name: The reservation's name (the request's ``update_id``).
        requested_at: When it was made (its day and month, as when it was reserved).
        tokens: Prompt plus completion tokens the model reported.
        cost_usd: What they cost.
        drop: Uncount the request too (:func:`release`); only with its reservation open.
    """
    try:
        tz_name = current_app.config["AI_ROUTER"].timezone
        period = Period.of(user_id, tz_name, requested_at)
        redis_store.script(_SETTLE)(
            keys=[period.day_key, period.month_key],
            args=[name, int(tokens), int(Decimal(cost_usd or 0) * NANO), int(drop)],
        )
    except Exception:  # noqa: BLE001 - the answer is recorded; the counters err on the safe side
        logger.warning("could not settle the quota of reservation %s", name, exc_info=True)


def release(user_id: int, name: int, requested_at: datetime) -> None:
    """Give back a reservation whose row was never committed: the request does not count.

    Args:
        user_id: The user.
        name: The reservation's name.
        requested_at: When it was made.
    """
    settle(user_id, name, requested_at, 0, None, drop=True)


@dataclass(frozen=True)
class UsageReport:
    """What ``/usage`` shows: the plan, and each limit with what is used of it.

    Attributes:
        plan_name: The effective plan (None when no plan exists).
        expires_at: When it ends (None = never).
        used: ``{limit name: amount used}`` for every name of :data:`LIMIT_NAMES`.
        limits: The limits that apply.
        day_resets_at: When the daily limits start again.
        month_resets_at: When the monthly limits start again.
    """

    plan_name: str | None
    expires_at: datetime | None
    used: dict[str, int | Decimal]
    limits: Limits
    day_resets_at: datetime
    month_resets_at: datetime


def report(
    user_id: int,
    plan: PlanSpec | None,
    expires_at: datetime | None,
    own_daily_limit: int | None,
    now: datetime | None = None,
) -> UsageReport:
    """A user's use against their limits, from the database (the source of truth).

    Args:
        user_id: The user.
        plan: Their effective plan.
        expires_at: When it ends.
        own_daily_limit: ``User.daily_request_limit`` (overrides the plan's requests per day).
        now: The current instant (tests pass it).

    Returns:
        The report.
    """
    tz_name = current_app.config["AI_ROUTER"].timezone
    spent = usage.plan_usage([user_id], tz_name, now)[user_id]
    return UsageReport(
        plan_name=plan.name if plan else None,
        expires_at=expires_at,
        used={
            "requests_per_day": spent.requests_today,
            "tokens_per_day": spent.tokens_today,
            "tokens_per_month": spent.tokens_month,
            "cost_usd_per_month": spent.cost_usd_month,
        },
        limits=Limits.of(plan, own_daily_limit),
        day_resets_at=usage.next_day_start(tz_name, now),
        month_resets_at=usage.next_month_start(tz_name, now),
    )
