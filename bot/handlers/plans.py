"""``/usage``, ``/buy`` and paying for a plan in Telegram Stars (invoice, pre-checkout, payment)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from flask import current_app
from telebot.types import CallbackQuery, Message, PreCheckoutQuery

from bot.middleware import Outbox
from shared.extensions import runtime
from shared.models import User, UserStatus
from shared.models.types import row_id, utcnow
from shared.services import payments, quotas
from shared.services.plans import effective_plan
from shared.telegram.keyboards import PLAN, plans_keyboard
from shared.telegram.texts import local_time, t


def _date(moment: datetime) -> str:
    """A moment in the configured timezone, as users read it."""
    return local_time(moment, current_app.config["AI_ROUTER"].timezone)


def _amount(value: int | Decimal) -> str:
    """A used amount or limit: integers as is, dollars with two decimals."""
    return f"{value:.2f}" if isinstance(value, Decimal) else str(value)


def usage_text(user: User, lang: str) -> str:
    """The ``/usage`` message: plan, expiry, used and left today and this month, resets.

    Args:
        user: The user.
        lang: Text language.

    Returns:
        The text.
    """
    snapshot = runtime.get()
    now = utcnow()
    plan = effective_plan(snapshot, user.plan_id, user.plan_expires_at, now)
    expires = user.plan_expires_at if plan is not None and plan.id == user.plan_id else None
    report = quotas.report(user.id, plan, expires, user.daily_request_limit, now)
    head = t("usage_plan", lang, plan=report.plan_name or t("usage_no_plan", lang))
    if report.expires_at is not None:
        head += t("usage_until", lang, date=_date(report.expires_at))
    lines = [head, "", t("usage_today", lang, at=_date(report.day_resets_at))]
    for name in quotas.LIMIT_NAMES:
        if name == "tokens_per_month":
            lines += ["", t("usage_month", lang, at=_date(report.month_resets_at))]
        used, limit = report.used[name], report.limits.value(name)
        what = t(f"usage_{name}", lang)
        if limit is None:
            lines.append(t("usage_line_unlimited", lang, what=what, used=_amount(used)))
            continue
        left = max(limit - used, 0)
        lines.append(
            t("usage_line", lang, what=what, used=_amount(used), limit=_amount(limit),
              left=_amount(left))
        )  # fmt: skip
    return "\n".join(lines)


def usage(message: Message, user: User, lang: str, out: Outbox) -> None:
    """``/usage``: the user's plan and what is left."""
    out.send(message.chat.id, usage_text(user, lang))


def _offer_list(chat_id: int, lang: str, out: Outbox) -> None:
    """Queue the list of plans on sale with a button per plan (or say there is none)."""
    offers = payments.offers(runtime.get())
    if not offers:
        out.send(chat_id, t("buy_nothing", lang))
        return
    lines = [
        t(
            "buy_plan_line",
            lang,
            name=plan.name,
            stars=plan.price_stars,
            days=plan.period_days,
            description=f"\n   {plan.description}" if plan.description else "",
        )
        for plan in offers
    ]
    out.send(
        chat_id,
        t("buy_list", lang, plans="\n".join(lines)),
        reply_markup=plans_keyboard(lang, offers),
    )


def _no_access(user: User, lang: str) -> str | None:
    """The refusal for a user who may not buy (blocked, or pending approval), else None."""
    if user.status == UserStatus.ACTIVE:
        return None
    return t("denied_blocked" if user.status == UserStatus.BLOCKED else "denied_pending", lang)


def buy(message: Message, user: User, lang: str, out: Outbox) -> None:
    """``/buy``: the plans on sale, each with a button that sends its invoice."""
    refusal = _no_access(user, lang)
    if refusal is not None:
        out.send(message.chat.id, refusal)
        return
    _offer_list(message.chat.id, lang, out)


def buy_button(query: CallbackQuery, user: User, lang: str, out: Outbox) -> None:
    """The «Купить тариф» button (under a limit refusal or a reminder): as ``/buy``."""
    refusal = _no_access(user, lang)
    out.toast(query.id, refusal or t("buy_button", lang))
    if query.message is not None and refusal is None:
        _offer_list(query.message.chat.id, lang, out)


def plan_button(query: CallbackQuery, user: User, lang: str, out: Outbox) -> None:
    """A plan's button: send its invoice (a plan no longer on sale, or a forged id, is refused)."""
    refusal = _no_access(user, lang)
    if refusal is not None:
        out.toast(query.id, refusal)
        return
    plan_id = row_id(PLAN.parse(query.data)["id"])
    plan = runtime.get().plans.get(plan_id) if plan_id is not None else None
    if plan is None or not plan.on_sale or query.message is None:
        out.toast(query.id, t("unavailable_choice", lang))
        return
    out.toast(query.id, t("buy_invoice_sent", lang))
    out.call(
        "sendInvoice",
        payments.invoice_params(query.message.chat.id, plan, user.telegram_id, lang),
    )


def pre_checkout(query: PreCheckoutQuery, user: User, lang: str, out: Outbox) -> None:
    """Telegram asks whether to take the Stars: yes only for a plan still on sale at that price.

    The plans come from memory (the runtime snapshot); the buyer must still have access.
    Answered on the fast queue, well within Telegram's 10 seconds.
    """
    refusal = _no_access(user, lang)
    reason = payments.pre_checkout_verdict(
        query.from_user.id, query.currency, query.total_amount, query.invoice_payload, runtime.get()
    )
    params: dict[str, object] = {"pre_checkout_query_id": query.id, "ok": not (refusal or reason)}
    if refusal or reason:
        params["error_message"] = refusal or t(f"pay_{reason}", lang)
    out.call("answerPreCheckoutQuery", params)


def paid(message: Message, user: User, lang: str, out: Outbox) -> None:
    """A ``successful_payment``: record it once, extend the plan, thank the user.

    A payment Telegram delivers twice extends nothing the second time, and says nothing; the
    same update handled again (a retry after a crash) thanks again — the outbox sends only
    what that update did not send before.
    """
    purchase = payments.record_payment(
        user,
        message.json.get("successful_payment") or {},
        update_id=getattr(message, "update_id", None),
    )
    if purchase is None:
        return
    if purchase.expires_at is None:
        out.send(message.chat.id, t("paid_thanks_forever", lang, plan=purchase.plan_name))
        return
    out.send(
        message.chat.id,
        t("paid_thanks", lang, plan=purchase.plan_name, date=_date(purchase.expires_at)),
    )
