"""Plans: what exists, which plan a user is on, which models it allows, and plan changes.

The rules, for the admin UI, the JSON API, the bot and the periodic jobs alike:

- **exactly one default plan** (the plan of every user without one, and of every user whose
  plan expired): ticking «default» moves the flag (:func:`save_plan`), the default cannot be
  unticked or deleted (:class:`DefaultPlanRequired`);
- **the effective plan** (:func:`effective_plan`): the user's plan while it has not expired,
  else the default — enforcement never waits for the expiry job;
- **models**: a plan lists the models its users may choose; none listed means every enabled
  model (:func:`allowed_models`, :func:`model_for`);
- **every change of a user's plan or expiry is recorded** (:class:`PlanChange`: who, when, why —
  ``admin``, ``purchase``, ``refund``, ``expiry``) by :func:`change_plan`, the only writer of
  ``User.plan_id`` and ``User.plan_expires_at``;
- **a purchase extends** from the later of now and the current expiry of the same plan
  (:func:`extend_by_purchase`); **a refund takes the period back** (:func:`take_back`).

Hot paths read plans from the runtime snapshot (:class:`PlanSpec`), never from the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from shared.db import db
from shared.llm import ModelSpec
from shared.models import LLMModel, Plan, PlanChange, PlanChangeReason, User
from shared.models.types import utcnow
from shared.services.catalog import make_default

if TYPE_CHECKING:
    from shared.runtime import Snapshot

#: Seeded on first start: (name, description, values). The first one is the default.
DEFAULT_PLANS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "Free",
        "Бесплатный тариф / the free plan",
        {
            "requests_per_day": 30,
            "tokens_per_day": 50_000,
            "tokens_per_month": 500_000,
            "cost_usd_per_month": None,
            "price_stars": None,
            "period_days": 30,
        },
    ),
    (
        "Paid",
        "Больше запросов и все модели / more requests and every model",
        {
            "requests_per_day": 500,
            "tokens_per_day": 1_000_000,
            "tokens_per_month": 10_000_000,
            "cost_usd_per_month": Decimal("20"),
            "price_stars": 250,
            "period_days": 30,
        },
    ),
)
#: A plan's period may not exceed this many days (one purchase).
MAX_PERIOD_DAYS = 3660
#: Telegram's bounds for one Stars price.
MIN_STARS, MAX_STARS = 1, 10_000
#: The limits of a plan (None = unlimited; never negative).
LIMIT_FIELDS = ("requests_per_day", "tokens_per_day", "tokens_per_month", "cost_usd_per_month")


@dataclass(frozen=True)
class PlanSpec:
    """A detached plan, as the runtime snapshot keeps it.

    Attributes:
        id: Row id.
        name: Shown to users.
        description: Shown in ``/buy``.
        requests_per_day: None = unlimited (a user's own daily limit overrides it).
        tokens_per_day: None = unlimited.
        tokens_per_month: None = unlimited.
        cost_usd_per_month: None = unlimited.
        model_ids: The models allowed; empty = every enabled model.
        is_default: Whether it is the default plan.
        price_stars: None = not for sale.
        period_days: What one purchase adds.
        fallback_model_id: Answers instead of a refusal once the dollar limit is reached.
    """

    id: int
    name: str
    description: str
    requests_per_day: int | None
    tokens_per_day: int | None
    tokens_per_month: int | None
    cost_usd_per_month: Decimal | None
    model_ids: frozenset[int]
    is_default: bool
    price_stars: int | None
    period_days: int
    fallback_model_id: int | None

    @classmethod
    def from_plan(cls, plan: Plan) -> PlanSpec:
        """Detach a plan row (its models must be loadable)."""
        return cls(
            id=plan.id,
            name=plan.name,
            description=plan.description or "",
            requests_per_day=plan.requests_per_day,
            tokens_per_day=plan.tokens_per_day,
            tokens_per_month=plan.tokens_per_month,
            cost_usd_per_month=plan.cost_usd_per_month,
            model_ids=frozenset(plan.model_ids),
            is_default=plan.is_default,
            price_stars=plan.price_stars,
            period_days=plan.period_days,
            fallback_model_id=plan.fallback_model_id,
        )

    @property
    def on_sale(self) -> bool:
        """Whether ``/buy`` offers it."""
        return self.price_stars is not None and self.price_stars > 0


class PlanError(ValueError):
    """A change to a plan breaks a rule."""


class PlanNameTaken(PlanError):
    """Another plan has this name; the caller must roll the session back."""


class DefaultPlanRequired(PlanError):
    """The default plan cannot be unticked or deleted (exactly one plan is the default)."""


class UnknownModels(PlanError, LookupError):
    """A model id given for a plan does not exist."""


class InvalidPlanValue(PlanError):
    """A limit below zero, a period out of 1..MAX_PERIOD_DAYS, or a price Telegram refuses."""


def _check_values(values: dict[str, Any]) -> None:
    """The value rules of a plan (forms and schemas check them too; this is the last word)."""
    for name in LIMIT_FIELDS:
        if values.get(name) is not None and values[name] < 0:
            raise InvalidPlanValue(f"{name} cannot be negative")
    period = values.get("period_days")
    if "period_days" in values and (period is None or not 1 <= period <= MAX_PERIOD_DAYS):
        raise InvalidPlanValue(f"period_days must be 1..{MAX_PERIOD_DAYS}")
    price = values.get("price_stars")
    if price is not None and not MIN_STARS <= price <= MAX_STARS:
        raise InvalidPlanValue(f"price_stars must be {MIN_STARS}..{MAX_STARS} (or none)")


def list_plans() -> list[Plan]:
    """Every plan: the default first, then by price and name."""
    return list(
        db.session.scalars(
            select(Plan).order_by(Plan.is_default.desc(), Plan.price_stars.nulls_first(), Plan.name)
        )
    )


def default_plan() -> Plan | None:
    """The default plan (None only before seeding)."""
    return db.session.scalar(select(Plan).where(Plan.is_default))


def seed_plans(legacy_daily_limit: int | None = None) -> None:
    """Create «Free» (the default) and «Paid» when no plan exists; idempotent.

    A new install gets «Free» with modest limits. An install upgraded from before plans (it
    has users) keeps what its users had: «Free» limits requests per day by the old
    ``default_daily_limit`` setting only (none if it was unset) — an upgrade never starts
    refusing anyone; the admin sets the limits they want.

    Args:
        legacy_daily_limit: The old ``default_daily_limit`` setting, if any.
    """
    if db.session.scalar(select(Plan.id).limit(1)) is not None:
        return
    upgrading = db.session.scalar(select(User.id).limit(1)) is not None
    for index, (name, description, values) in enumerate(DEFAULT_PLANS):
        plan = Plan(name=name, description=description, is_default=index == 0, **values)
        if index == 0 and (upgrading or legacy_daily_limit is not None):
            plan.requests_per_day = legacy_daily_limit
        if index == 0 and upgrading:
            plan.tokens_per_day = plan.tokens_per_month = None
        db.session.add(plan)
    db.session.flush()


def save_plan(plan: Plan, values: dict[str, Any]) -> Plan:
    """Create or change a plan from validated values, keeping every plan rule.

    Args:
        plan: A new or persistent plan.
        values: Columns to set, plus ``model_ids`` (the allowed models; empty = all) and
            ``is_default`` (True makes it THE default; False on the default is refused).

    Returns:
        The plan, flushed.

    Raises:
        PlanNameTaken: If another plan has the name.
        DefaultPlanRequired: If the default plan's flag would be cleared.
        UnknownModels: If a model id (allowed or fallback) names no model.
        InvalidPlanValue: For a negative limit, a period or a price out of range.
    """
    values = dict(values)
    _check_values(values)
    is_default = values.pop("is_default", None)
    if is_default is False and plan.is_default:
        raise DefaultPlanRequired("make another plan the default instead")
    if "model_ids" in values:
        plan.models = _models(values.pop("model_ids") or [])
    fallback_id = values.get("fallback_model_id")
    if fallback_id is not None and db.session.get(LLMModel, fallback_id) is None:
        raise UnknownModels(f"fallback_model_id: no model {fallback_id}")
    for key, value in values.items():
        setattr(plan, key, value)
    if plan.is_default is None:
        plan.is_default = False
    db.session.add(plan)
    try:
        db.session.flush()
    except IntegrityError as exc:
        raise PlanNameTaken("a plan with this name exists") from exc
    if is_default:
        make_default(plan)
    return plan


def _models(ids: Iterable[int]) -> list[LLMModel]:
    wanted = sorted(set(ids))
    models = list(db.session.scalars(select(LLMModel).where(LLMModel.id.in_(wanted))))
    missing = set(wanted) - {model.id for model in models}
    if missing:
        raise UnknownModels(f"model_ids: no model {sorted(missing)}")
    return models


def delete_plan(plan: Plan, *, actor: str) -> int:
    """Delete a plan; its users move to the default plan (each change recorded).

    Args:
        plan: A plan that is not the default.
        actor: Who deletes it (for the users' plan history).

    Returns:
        How many users were moved.

    Raises:
        DefaultPlanRequired: For the default plan.
    """
    if plan.is_default:
        raise DefaultPlanRequired("the default plan cannot be deleted")
    users = list(db.session.scalars(select(User).where(User.plan_id == plan.id)))
    for user in users:
        change_plan(
            user,
            None,
            None,
            reason=PlanChangeReason.ADMIN,
            actor=actor,
            note=f"plan «{plan.name}» deleted",
        )
    db.session.delete(plan)
    db.session.flush()
    return len(users)


def effective_plan(
    snapshot: Snapshot, plan_id: int | None, expires_at: datetime | None, now: datetime
) -> PlanSpec | None:
    """The plan that governs a user now: theirs until it expires, else the default.

    Args:
        snapshot: The runtime settings (plans in memory).
        plan_id: The user's plan, or None.
        expires_at: When it ends (None = never).
        now: The current instant.

    Returns:
        The plan, or None when no plan exists at all (before seeding: no limits).
    """
    if plan_id is not None and (expires_at is None or expires_at > now):
        plan = snapshot.plans.get(plan_id)
        if plan is not None:
            return plan
    return snapshot.plans.get(snapshot.default_plan_id) if snapshot.default_plan_id else None


def allowed_models(snapshot: Snapshot, plan: PlanSpec | None) -> list[ModelSpec]:
    """The enabled models a plan's users may choose, in display order.

    Args:
        snapshot: The runtime settings.
        plan: The plan (None = no restriction).

    Returns:
        The models (every enabled model when the plan lists none).
    """
    models = list(snapshot.models.values())
    if plan is None or not plan.model_ids:
        return models
    return [model for model in models if model.id in plan.model_ids]


def model_for(snapshot: Snapshot, plan: PlanSpec | None, chosen_id: int | None) -> ModelSpec | None:
    """The model a user is answered by: their choice if the plan allows it, else a default.

    The active model when the plan allows it, else the first model the plan allows.

    Args:
        snapshot: The runtime settings.
        plan: The user's effective plan.
        chosen_id: The model the user chose, or None.

    Returns:
        The model, or None when no enabled model is allowed.
    """
    allowed = allowed_models(snapshot, plan)
    ids = {model.id for model in allowed}
    for candidate in (chosen_id, snapshot.default_model_id):
        if candidate is not None and candidate in ids:
            return snapshot.models[candidate]
    return allowed[0] if allowed else None


def change_plan(
    user: User,
    plan_id: int | None,
    expires_at: datetime | None,
    *,
    reason: PlanChangeReason,
    actor: str,
    payment_id: int | None = None,
    note: str | None = None,
) -> PlanChange | None:
    """Set a user's plan and expiry and record the change (the only writer of both columns).

    Args:
        user: The user (persistent).
        plan_id: The new plan; None = the default plan.
        expires_at: When it ends (aware); None = never.
        reason: Why.
        actor: Who (an admin, a token, ``telegram`` for a purchase, ``system`` for expiry).
        payment_id: The payment behind a purchase or refund.
        note: A remark for the history.

    Returns:
        The recorded change, or None when nothing changed.
    """
    if user.plan_id == plan_id and user.plan_expires_at == expires_at:
        return None
    names = _plan_names({i for i in (user.plan_id, plan_id) if i is not None})
    change = PlanChange(
        user_id=user.id,
        reason=reason,
        actor=actor[:128],
        from_plan_id=user.plan_id,
        from_plan_name=names.get(user.plan_id) if user.plan_id else None,
        from_expires_at=user.plan_expires_at,
        to_plan_id=plan_id,
        to_plan_name=names.get(plan_id) if plan_id else None,
        to_expires_at=expires_at,
        payment_id=payment_id,
        note=note[:255] if note else None,
    )
    user.plan_id = plan_id
    user.plan_expires_at = expires_at
    user.plan_reminded_at = None
    db.session.add(change)
    db.session.flush()
    from shared.services import quotas  # noqa: PLC0415 - quotas imports this module

    quotas.forget(user.id)
    return change


def _plan_names(ids: set[int]) -> dict[int | None, str]:
    if not ids:
        return {}
    return dict(db.session.execute(select(Plan.id, Plan.name).where(Plan.id.in_(ids))).all())


def extend_by_purchase(
    user: User,
    plan: Plan,
    period_days: int,
    *,
    payment_id: int | None,
    now: datetime | None = None,
) -> datetime | None:
    """Give a user ``period_days`` of a bought plan, from the later of now and their plan's end.

    The days left of the plan the user is on are kept (the bought plan starts counting from
    their end); buying the plan one has without an end changes nothing (it has no end to
    extend). A user on the default plan gets the period from now.

    Args:
        user: The buyer.
        plan: The plan bought.
        period_days: The days bought.
        payment_id: The payment (recorded in the history).
        now: The current instant (tests pass it).

    Returns:
        The new end (None when the plan had none and still has none).
    """
    now = now or utcnow()
    end = user.plan_expires_at
    running = user.plan_id is not None and (end is None or end > now)
    if running and end is None and user.plan_id == plan.id:
        return None
    start = end if running and end is not None and end > now else now
    expires_at = start + timedelta(days=period_days)
    change_plan(
        user,
        plan.id,
        expires_at,
        reason=PlanChangeReason.PURCHASE,
        actor="telegram",
        payment_id=payment_id,
    )
    return expires_at


def take_back(
    user: User,
    plan_id: int | None,
    period_days: int,
    *,
    actor: str,
    payment_id: int,
    now: datetime | None = None,
) -> datetime | None:
    """Take back a refunded purchase's days; a plan left with none falls back to the default.

    Only when the user is still on the refunded plan: a plan that expired or was changed since
    has nothing left to take back.

    Args:
        user: The buyer.
        plan_id: The plan that was bought.
        period_days: The days it gave.
        actor: Who refunds.
        payment_id: The refunded payment.
        now: The current instant (tests pass it).

    Returns:
        The new expiry (None when the user is back on the default plan or was not on it).
    """
    now = now or utcnow()
    if plan_id is None or user.plan_id != plan_id or user.plan_expires_at is None:
        return None
    expires_at = user.plan_expires_at - timedelta(days=period_days)
    if expires_at <= now:
        change_plan(
            user, None, None, reason=PlanChangeReason.REFUND, actor=actor, payment_id=payment_id
        )
        return None
    change_plan(
        user,
        plan_id,
        expires_at,
        reason=PlanChangeReason.REFUND,
        actor=actor,
        payment_id=payment_id,
    )
    return expires_at


def expire_due(now: datetime | None = None, *, batch: int = 500) -> list[tuple[User, str]]:
    """Move users whose plan has expired back to the default plan (each change recorded).

    Each move is a conditional UPDATE (the plan must still be ended when it runs), so a
    purchase committed meanwhile is never undone, and two checks running at once move a user
    once.

    Args:
        now: The current instant (tests pass it).
        batch: At most this many users per call (the job calls again while it finds some).

    Returns:
        ``(user, name of the plan that expired)`` for each user moved.
    """
    now = now or utcnow()
    users = list(
        db.session.scalars(
            select(User)
            .where(User.plan_expires_at.is_not(None), User.plan_expires_at <= now)
            .order_by(User.plan_expires_at)
            .limit(batch)
        )
    )
    moved = []
    for user in users:
        name, plan_id, ended = (
            (user.plan.name if user.plan else ""),
            user.plan_id,
            user.plan_expires_at,
        )
        done = db.session.execute(
            update(User)
            .where(User.id == user.id, User.plan_expires_at <= now)
            .values(plan_id=None, plan_expires_at=None, plan_reminded_at=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not done:
            continue
        db.session.expire(user, ["plan_id", "plan_expires_at", "plan_reminded_at", "plan"])
        db.session.add(
            PlanChange(
                user_id=user.id,
                reason=PlanChangeReason.EXPIRY,
                actor="system",
                from_plan_id=plan_id,
                from_plan_name=name or None,
                from_expires_at=ended,
            )
        )
        moved.append((user, name))
    db.session.flush()
    from shared.services import quotas  # noqa: PLC0415 - quotas imports this module

    for user, _name in moved:
        quotas.forget(user.id)
    return moved


def reminders_due(now: datetime | None = None, *, days: int = 3, batch: int = 500) -> list[User]:
    """Users whose plan ends within ``days`` and who were not reminded yet; marks them reminded.

    Args:
        now: The current instant (tests pass it).
        days: How long before the end to remind.
        batch: At most this many users per call.

    Returns:
        The users to remind (``plan_reminded_at`` set in this flush).
    """
    now = now or utcnow()
    users = list(
        db.session.scalars(
            select(User)
            .where(
                User.plan_expires_at.is_not(None),
                User.plan_expires_at > now,
                User.plan_expires_at <= now + timedelta(days=days),
                User.plan_reminded_at.is_(None),
            )
            .order_by(User.plan_expires_at)
            .limit(batch)
        )
    )
    for user in users:
        user.plan_reminded_at = now
    db.session.flush()
    return users


def plan_of(user: User, now: datetime | None = None) -> tuple[Plan | None, datetime | None]:
    """The plan governing a user now, and when it ends (rows, for the admin and the API).

    Args:
        user: The user.
        now: The current instant (tests pass it).

    Returns:
        ``(plan, expires_at)``: their own plan and its end while it has not expired, else the
        default plan and None (the expiry job records the fallback a little later).
    """
    now = now or utcnow()
    if user.plan is not None and (user.plan_expires_at is None or user.plan_expires_at > now):
        return user.plan, user.plan_expires_at
    return default_plan(), None


def plans_of(
    users: Iterable[User], now: datetime | None = None
) -> dict[int, tuple[Plan | None, datetime | None]]:
    """:func:`plan_of` for a page of users, reading the default plan once.

    Args:
        users: The users (their ``plan`` relationship loaded with them).
        now: The current instant (tests pass it).

    Returns:
        ``{user id: (plan, expires_at)}``.
    """
    now = now or utcnow()
    users = list(users)
    default: list[Plan | None] = []
    result: dict[int, tuple[Plan | None, datetime | None]] = {}
    for user in users:
        if user.plan is not None and (user.plan_expires_at is None or user.plan_expires_at > now):
            result[user.id] = (user.plan, user.plan_expires_at)
            continue
        if not default:
            default.append(default_plan())
        result[user.id] = (default[0], None)
    return result


def governed_by(plan: Plan, now: datetime | None = None) -> ColumnElement[bool]:
    """SQL matching the users a plan governs now (:func:`plan_of`'s rule, for list filters).

    Args:
        plan: The plan.
        now: The current instant (tests pass it).

    Returns:
        The condition on ``User``: the plan's own users whose plan has not ended, plus — for
        the default plan — users with no plan or an ended one.
    """
    now = now or utcnow()
    running = or_(User.plan_expires_at.is_(None), User.plan_expires_at > now)
    own = and_(User.plan_id == plan.id, running)
    if not plan.is_default:
        return own
    return or_(own, User.plan_id.is_(None), User.plan_expires_at <= now)


def history_of(user_id: int, limit: int = 50) -> list[PlanChange]:
    """A user's plan changes, newest first.

    Args:
        user_id: The user (database id).
        limit: At most this many.

    Returns:
        The changes.
    """
    return list(
        db.session.scalars(
            select(PlanChange)
            .where(PlanChange.user_id == user_id)
            .order_by(PlanChange.at.desc(), PlanChange.id.desc())
            .limit(limit)
        )
    )
