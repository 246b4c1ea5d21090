"""Plans bought with Telegram Stars: invoices, the pre-checkout answer, payments, refunds.

The flow, all through the Bot API (currency ``XTR``, no provider token):

1. ``/buy`` lists the plans on sale (:func:`offers`); a choice sends an invoice
   (:func:`invoice_params`) whose payload names the plan, its price and the buyer
   (:func:`invoice_payload`);
2. Telegram asks ``pre_checkout_query`` and wants an answer within 10 seconds:
   :func:`pre_checkout_verdict` says ``ok`` only while that plan is still on sale at that price,
   for that buyer — it reads the in-memory snapshot only, so the answer never waits on the
   database;
3. ``successful_payment`` arrives in a message: :func:`record_payment` stores it once per
   ``telegram_payment_charge_id`` (a redelivered payment changes nothing) and extends the plan
   (``shared.services.plans.extend_by_purchase``);
4. an admin refunds (:func:`refund`): ``refundStarPayment`` first, then the payment is marked
   ``refunded`` and the period taken back (``shared.services.plans.take_back``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import select

from shared.db import db, page_of
from shared.extensions import telegram
from shared.models import Payment, PaymentStatus, Plan, User
from shared.models.types import utcnow
from shared.redis import KEY_PREFIX
from shared.services.plans import PlanSpec, extend_by_purchase, take_back
from shared.telegram.errors import TelegramApiError
from shared.telegram.texts import t

if TYPE_CHECKING:
    from shared.runtime import Snapshot

logger = logging.getLogger(__name__)

#: Telegram Stars.
STARS = "XTR"
_PAYLOAD_PREFIX = "plan"


def offers(snapshot: Snapshot) -> list[PlanSpec]:
    """The plans on sale, in display order (the snapshot's)."""
    return [plan for plan in snapshot.plans.values() if plan.on_sale]


def invoice_payload(plan: PlanSpec, telegram_id: int) -> str:
    """The invoice's payload: ``plan:<plan id>:<price>:<buyer's Telegram id>`` (≤ 128 bytes)."""
    return f"{_PAYLOAD_PREFIX}:{plan.id}:{plan.price_stars}:{telegram_id}"


@dataclass(frozen=True)
class Payload:
    """An invoice payload read back.

    Attributes:
        plan_id: The plan offered.
        stars: Its price when the invoice was sent.
        telegram_id: The buyer.
    """

    plan_id: int
    stars: int
    telegram_id: int

    @classmethod
    def parse(cls, payload: object) -> Payload | None:
        """Read a payload of :func:`invoice_payload`; None for anything else."""
        if not isinstance(payload, str):
            return None
        parts = payload.split(":")
        if len(parts) != 4 or parts[0] != _PAYLOAD_PREFIX:
            return None
        try:
            return cls(int(parts[1]), int(parts[2]), int(parts[3]))
        except ValueError:
            return None


def invoice_params(chat_id: int, plan: PlanSpec, telegram_id: int, lang: str) -> dict[str, Any]:
    """The ``sendInvoice`` parameters of a plan, in Stars (no provider token).

    Args:
        chat_id: The chat.
        plan: A plan on sale.
        telegram_id: The buyer.
        lang: Text language.

    Returns:
        The parameters.
    """
    title = plan.name[:32]
    description = plan.description or t("invoice_description", lang, days=plan.period_days)
    return {
        "chat_id": chat_id,
        "title": title,
        "description": description[:255],
        "payload": invoice_payload(plan, telegram_id),
        "currency": STARS,
        "prices": [{"label": title, "amount": plan.price_stars}],
    }


def pre_checkout_verdict(
    sender_id: int, currency: str, total_amount: int, payload: str, snapshot: Snapshot
) -> str | None:
    """Whether to accept a ``pre_checkout_query``: None for ok, else the reason (a text key).

    Accepted only for a payload of ours, in Stars, from the buyer it names, for a plan still on
    sale at the price the invoice was sent with.

    Args:
        sender_id: Who pays (the query's ``from``).
        currency: The query's currency.
        total_amount: What Telegram will charge.
        payload: The invoice's payload.
        snapshot: The runtime settings (the plans).

    Returns:
        None to answer ``ok: true``; else ``"plan_unavailable"`` or ``"price_changed"``.
    """
    parsed = Payload.parse(payload)
    if parsed is None or currency != STARS or sender_id != parsed.telegram_id:
        return "plan_unavailable"
    plan = snapshot.plans.get(parsed.plan_id)
    if plan is None or not plan.on_sale:
        return "plan_unavailable"
    if plan.price_stars != parsed.stars or total_amount != plan.price_stars:
        return "price_changed"
    return None


@dataclass(frozen=True)
class Purchase:
    """A recorded payment and what it gave.

    Attributes:
        payment_id: The payment.
        plan_name: The plan bought.
        expires_at: The plan's new end (None: the plan had no end, and still has none).
        new: False when the update that recorded it is handled again (a retry).
    """

    payment_id: int
    plan_name: str
    expires_at: datetime | None
    new: bool = True


def record_payment(
    user: User, payment: dict[str, Any], *, update_id: int | None = None
) -> Purchase | None:
    """Store a ``successful_payment`` once and extend the buyer's plan (caller commits).

    The row and the plan change are one unit of work (no savepoint: on SQLite a savepoint
    opened outside a transaction would commit the row on its own). A copy of the same update
    racing this one fails the unit of work on the unique charge id; its task's retry then finds
    the payment.

    Args:
        user: The buyer (persistent): the message's sender.
        payment: The ``successful_payment`` object.
        update_id: The update that carries it (recorded: a retry of that same update, after a
            crash between the commit and the thanks, thanks again; a duplicate does not).

    Returns:
        The purchase (``new`` False for a retry of the update that recorded it); None when
        the charge was recorded by another update (Telegram delivered it twice), or when it
        is not a purchase of ours for this buyer — payload, currency, price or buyer do not
        match (recorded without a plan and logged: Telegram took the Stars, an admin refunds).
    """
    charge_id = payment.get("telegram_payment_charge_id")
    if not isinstance(charge_id, str) or not charge_id:
        logger.error("successful_payment without a charge id from telegram_id=%s", user.telegram_id)
        return None
    seen = db.session.scalar(select(Payment).where(Payment.telegram_payment_charge_id == charge_id))
    if seen is not None:
        logger.info("payment %s seen before", charge_id)
        if update_id is None or seen.update_id != update_id or seen.plan_id is None:
            return None
        return Purchase(seen.id, seen.plan_name, user.plan_expires_at, new=False)
    payload = Payload.parse(payment.get("invoice_payload"))
    stars = payment.get("total_amount")
    plan = db.session.get(Plan, payload.plan_id) if payload else None
    ours = (
        payload is not None
        and payment.get("currency") == STARS
        and stars == payload.stars
        and user.telegram_id == payload.telegram_id
    )
    if plan is None or not ours:
        logger.error(
            "payment %s of telegram_id=%s is no purchase of ours (payload %r, %s %s): "
            "refund it from the admin",
            charge_id,
            user.telegram_id,
            payment.get("invoice_payload"),
            stars,
            payment.get("currency"),
        )
        plan = None
    row = Payment(
        user_id=user.id,
        telegram_id=user.telegram_id,
        update_id=update_id,
        plan_id=plan.id if plan else None,
        plan_name=plan.name if plan else "?",
        stars=stars if isinstance(stars, int) else 0,
        period_days=plan.period_days if plan else 0,
        telegram_payment_charge_id=charge_id[:255],
        provider_payment_charge_id=str(payment.get("provider_payment_charge_id") or "")[:255]
        or None,
        invoice_payload=str(payment.get("invoice_payload") or "")[:128],
    )
    db.session.add(row)
    db.session.flush()  # IntegrityError for a concurrent copy: the caller rolls back, retries
    if plan is None:
        return None
    expires_at = extend_by_purchase(user, plan, plan.period_days, payment_id=row.id)
    logger.info(
        "payment %s: telegram_id=%s bought %s until %s",
        charge_id,
        user.telegram_id,
        plan.name,
        expires_at.isoformat() if expires_at else "forever",
    )
    return Purchase(row.id, plan.name, expires_at)


class PaymentError(ValueError):
    """A refund that cannot be made."""


class PaymentNotFound(PaymentError, LookupError):
    """No payment has this id."""


class AlreadyRefunded(PaymentError):
    """The payment was refunded before."""


class RefundRefused(PaymentError):
    """Telegram refused the refund (its description is the message)."""


class RefundInProgress(AlreadyRefunded):
    """Another refund of this payment is being made right now."""


#: How long a refund holds its payment (a second refund meanwhile is refused); a successful
#: one is committed long before, a refused one lets go at once.
REFUND_HOLD_SECONDS = 120


def refund(payment_id: int, *, actor: str) -> Payment:
    """Refund a payment through Telegram, then take the period back (caller commits).

    Telegram is asked first: nothing changes here unless the Stars went back. A refund
    Telegram reports as done already (``CHARGE_ALREADY_REFUNDED``) is recorded as refunded.

    Args:
        payment_id: The payment.
        actor: Who refunds (the audit actor).

    Returns:
        The payment, now ``refunded``.

    Raises:
        PaymentNotFound: For an unknown id.
        AlreadyRefunded: When it was refunded before.
        RefundRefused: When Telegram refused (or could not be reached).
    """
    payment = db.session.get(Payment, payment_id, with_for_update=True)
    if payment is None:
        raise PaymentNotFound(f"no payment {payment_id}")
    if payment.status == PaymentStatus.REFUNDED:
        raise AlreadyRefunded(f"payment {payment_id} was refunded on {payment.refunded_at}")
    # SQLite ignores FOR UPDATE: a Redis hold keeps two refunds of one payment apart there too
    hold = f"{KEY_PREFIX}refund:{payment.id}"
    redis = current_app.extensions["redis"]
    if not redis.set(hold, actor[:128], nx=True, ex=REFUND_HOLD_SECONDS):
        raise RefundInProgress(f"payment {payment_id} is being refunded right now")
    try:
        _refund_at_telegram(payment)
    except RefundRefused:
        redis.delete(hold)
        raise
    payment.status = PaymentStatus.REFUNDED
    payment.refunded_at = utcnow()
    payment.refunded_by = actor[:128]
    user = db.session.get(User, payment.user_id) if payment.user_id is not None else None
    if user is not None:
        take_back(user, payment.plan_id, payment.period_days, actor=actor, payment_id=payment.id)
    db.session.flush()
    logger.info("payment %s refunded by %s", payment.id, actor)
    return payment


def _refund_at_telegram(payment: Payment) -> None:
    """``refundStarPayment``; a charge Telegram says it refunded already counts as done.

    Raises:
        RefundRefused: When Telegram refused, or could not be reached.
    """
    try:
        telegram.call(
            "refundStarPayment",
            {
                "user_id": payment.telegram_id,
                "telegram_payment_charge_id": payment.telegram_payment_charge_id,
            },
        )
    except TelegramApiError as exc:
        if "CHARGE_ALREADY_REFUNDED" not in str(exc.description):
            raise RefundRefused(f"Telegram refused the refund: {exc.description}") from exc
    except Exception as exc:  # noqa: BLE001 - network, no token: nothing was refunded
        raise RefundRefused(f"Telegram could not be reached: {type(exc).__name__}") from exc


def list_payments(
    *,
    telegram_id: int | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Payment], int]:
    """Payments newest first, with the number of matching payments.

    Args:
        telegram_id: Only this buyer's.
        status: Only ``paid`` or ``refunded`` ones.
        limit: Page size (capped at :data:`shared.db.MAX_PAGE`).
        offset: Rows to skip.

    Returns:
        The page and the total.
    """
    query = select(Payment)
    if telegram_id is not None:
        query = query.where(Payment.telegram_id == telegram_id)
    if status is not None:
        query = query.where(Payment.status == PaymentStatus(status))
    return page_of(query, (Payment.created_at.desc(), Payment.id.desc()), limit, offset)
