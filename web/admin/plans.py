"""The «Plans» and «Payments» pages, and the plan parts of the users list and the user page.

Every rule lives in ``shared.services``: plans are saved and deleted through
``shared.services.plans`` (one default, unique names, known models), payments are refunded
through ``shared.services.payments.refund`` (Telegram first, then the period taken back), a
user's plan is changed through ``shared.services.users.update_user`` (recorded in the user's
plan history as the admin's change). These views only turn forms into values and errors into
flashed messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flask import current_app, flash, g, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import BaseSQLAFilter, FilterEqual, IntEqualFilter
from flask_admin.helpers import get_redirect_target
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from sqlalchemy import false
from werkzeug.wrappers import Response
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    DecimalField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from shared.db import db
from shared.models import Payment, PaymentStatus, Plan, PlanChange, User
from shared.services import audit, payments, plans
from shared.services.catalog import list_models
from shared.services.quotas import Limits
from shared.services.usage import PlanUsage, next_day_start, next_month_start, plan_usage
from shared.services.users import UnknownPlan, update_user
from web.admin.forms import AdminModelForm
from web.admin.security import SecureModelView

logger = logging.getLogger(__name__)

#: How the list shows a limit or a price that is not set.
UNLIMITED = "∞"


def _actor() -> str:
    """Who acts in this request: the logged-in admin (set by ``AdminOnlyMixin``)."""
    return audit.current_actor() or audit.SYSTEM


def _timezone() -> str:
    return current_app.config["AI_ROUTER"].timezone


def _none_or_id(value: Any) -> int | None:
    """A select's value as an id; empty (or 0) is None."""
    if value in (None, "", "0", 0):
        return None
    return int(value)


def _limit(value: int | Decimal | None) -> str:
    if value is None:
        return UNLIMITED
    shown = f"{value:,.2f}" if isinstance(value, Decimal) else f"{value:,}"
    return shown.replace(",", " ")


def _date(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- the Plans page ---------------------------------------------------------------------------


class PlanForm(AdminModelForm):
    """A plan's fields; empty limits mean unlimited, an empty price means not for sale."""

    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    description = TextAreaField(
        "Description",
        validators=[Optional(), Length(max=255)],
        description="Shown to users in /buy and on the invoice.",
    )
    requests_per_day = IntegerField(
        "Requests per day",
        validators=[Optional(), NumberRange(min=0)],
        description="Empty = unlimited. A user's own daily limit overrides it.",
    )
    tokens_per_day = IntegerField(
        "Tokens per day",
        validators=[Optional(), NumberRange(min=0)],
        description="Empty = unlimited.",
    )
    tokens_per_month = IntegerField(
        "Tokens per month",
        validators=[Optional(), NumberRange(min=0)],
        description="Empty = unlimited.",
    )
    cost_usd_per_month = DecimalField(
        "Cost per month, USD",
        places=4,
        validators=[Optional(), NumberRange(min=0)],
        description="Empty = unlimited. Reached, the fallback model answers (if one is set).",
    )
    model_ids = SelectMultipleField(
        "Models",
        coerce=int,
        validators=[Optional()],
        description="The models its users may choose. None selected = every enabled model.",
    )
    fallback_model_id = SelectField(
        "Fallback model",
        coerce=_none_or_id,
        validators=[Optional()],
        description="Answers instead of a refusal once the dollar limit is reached.",
    )
    price_stars = IntegerField(
        "Price, Telegram Stars",
        validators=[Optional(), NumberRange(min=plans.MIN_STARS, max=plans.MAX_STARS)],
        description="Empty = not for sale in /buy.",
    )
    period_days = IntegerField(
        "Period, days",
        default=30,
        validators=[DataRequired(), NumberRange(min=1, max=plans.MAX_PERIOD_DAYS)],
        description="What one purchase adds.",
    )
    is_default = BooleanField(
        "Default",
        description="The plan of every new user and of every user whose plan ended. Ticking it "
        "moves the flag here; to change the default, tick it on another plan.",
    )

    def set_choices(self) -> None:
        """Fill the model selects with the models that exist now."""
        models = list_models()
        self.model_ids.choices = [(m.id, m.name) for m in models]
        self.fallback_model_id.choices = [(0, "—")] + [(m.id, m.name) for m in models]

    def values(self) -> dict[str, Any]:
        """The form as ``plans.save_plan`` values (empty fields → None)."""
        return {
            "name": self.name.data.strip(),
            "description": (self.description.data or "").strip(),
            "requests_per_day": self.requests_per_day.data,
            "tokens_per_day": self.tokens_per_day.data,
            "tokens_per_month": self.tokens_per_month.data,
            "cost_usd_per_month": self.cost_usd_per_month.data,
            "model_ids": list(self.model_ids.data or []),
            "fallback_model_id": self.fallback_model_id.data,
            "price_stars": self.price_stars.data,
            "period_days": self.period_days.data,
            "is_default": bool(self.is_default.data),
        }


def _models_cell(plan: Plan) -> str:
    return ", ".join(model.name for model in plan.models) or "all enabled"


def _price_cell(plan: Plan) -> str:
    return f"{plan.price_stars} ⭐" if plan.price_stars is not None else "not for sale"


class PlanView(SecureModelView):
    """Plans: limits, allowed models, price in Stars; exactly one is the default.

    Saving and deleting go through ``shared.services.plans``; a refused change (a taken name,
    unticking or deleting the default, an unknown model) is flashed and nothing is saved.
    """

    form = PlanForm
    column_list = (
        "name", "is_default", "requests_per_day", "tokens_per_day", "tokens_per_month",
        "cost_usd_per_month", "models", "fallback_model", "price_stars", "period_days",
    )  # fmt: skip
    column_details_list = (
        "name", "description", "is_default", "requests_per_day", "tokens_per_day",
        "tokens_per_month", "cost_usd_per_month", "models", "fallback_model", "price_stars",
        "period_days", "created_at",
    )  # fmt: skip
    column_labels = {
        "is_default": "Default",
        "requests_per_day": "Requests / day",
        "tokens_per_day": "Tokens / day",
        "tokens_per_month": "Tokens / month",
        "cost_usd_per_month": "$ / month",
        "fallback_model": "Fallback",
        "price_stars": "Price ⭐",
        "period_days": "Period, days",
    }
    column_sortable_list = ("name", "is_default", "price_stars", "period_days")
    column_default_sort = [("is_default", True), ("name", False)]
    column_searchable_list = ("name",)
    column_formatters = {
        "requests_per_day": lambda v, c, m, n: _limit(m.requests_per_day),
        "tokens_per_day": lambda v, c, m, n: _limit(m.tokens_per_day),
        "tokens_per_month": lambda v, c, m, n: _limit(m.tokens_per_month),
        "cost_usd_per_month": lambda v, c, m, n: _limit(m.cost_usd_per_month),
        "models": lambda v, c, m, n: _models_cell(m),
        "fallback_model": lambda v, c, m, n: m.fallback_model.name if m.fallback_model else "—",
        "price_stars": lambda v, c, m, n: _price_cell(m),
    }
    column_formatters_detail = column_formatters

    def create_form(self, obj: Any = None) -> PlanForm:
        """The create form, its model choices read now."""
        form = super().create_form(obj)
        form.set_choices()
        return form

    def edit_form(self, obj: Any = None) -> PlanForm:
        """The edit form, its model choices read now."""
        form = super().edit_form(obj)
        form.set_choices()
        return form

    def _save(self, plan: Plan, form: PlanForm) -> bool:
        """Save through ``plans.save_plan`` and commit; flash a refusal and roll back."""
        try:
            plans.save_plan(plan, form.values())
            db.session.commit()
        except plans.PlanError as exc:
            db.session.rollback()
            if isinstance(exc, plans.PlanNameTaken):
                form.name.errors = [*form.name.errors, "Another plan has this name."]
            flash(f"Plan not saved: {exc}.", "error")
            return False
        logger.info("plan %s saved by %s", plan.id, _actor())
        return True

    def create_model(self, form: PlanForm) -> Plan | bool:
        """Create a plan through the plans service.

        Args:
            form: The validated form.

        Returns:
            The plan, or False when the service refused it (the reason is flashed).
        """
        plan = Plan()
        return plan if self._save(plan, form) else False

    def update_model(self, form: PlanForm, model: Plan) -> bool:
        """Change a plan through the plans service.

        Args:
            form: The validated form.
            model: The plan.

        Returns:
            Whether it was saved (the reason of a refusal is flashed).
        """
        return self._save(model, form)

    def delete_model(self, model: Plan) -> bool:
        """Delete a plan; its users move to the default plan (each move in their history).

        Args:
            model: The plan.

        Returns:
            Whether it was deleted (deleting the default plan is refused and flashed).
        """
        name = model.name
        try:
            moved = plans.delete_plan(model, actor=_actor())
            db.session.commit()
        except plans.PlanError as exc:
            db.session.rollback()
            flash(f"Plan «{name}» not deleted: {exc}.", "error")
            return False
        flash(f"Plan «{name}» deleted; {moved} user(s) moved to the default plan.", "success")
        return True


# -- the Payments page ------------------------------------------------------------------------


def _refund_button(payment: Payment) -> Markup:
    """«Refund» for a paid row: a CSRF-protected POST that returns to the same list page."""
    if payment.status != PaymentStatus.PAID:
        return Markup("")
    question = f"Refund {payment.stars} ⭐ to {payment.telegram_id} and take back the plan's days?"
    return Markup(
        '<form method="post" action="{action}" class="d-inline" data-question="{question}" '
        'onsubmit="return confirm(this.dataset.question)">'
        '<input type="hidden" name="csrf_token" value="{token}">'
        '<input type="hidden" name="url" value="{back}">'
        '<button class="btn btn-sm btn-outline-danger" type="submit">Refund</button>'
        "</form>"
    ).format(
        action=url_for(".refund_view", payment_id=payment.id),
        question=question,
        token=generate_csrf(),
        back=request.full_path.rstrip("?"),
    )


def _status_badge(payment: Payment) -> Markup:
    style = "success" if payment.status == PaymentStatus.PAID else "secondary"
    return Markup('<span class="badge badge-{}">{}</span>').format(style, str(payment.status))


class PaymentView(SecureModelView):
    """Payments in Telegram Stars, newest first; read-only, with «Refund» on paid rows."""

    can_create = can_edit = can_delete = False
    column_display_pk = True
    named_filter_urls = True
    column_list = (
        "id", "telegram_id", "plan_name", "stars", "telegram_payment_charge_id", "status",
        "created_at", "refunded_at", "refunded_by", "buttons",
    )  # fmt: skip
    column_details_list = (
        "id", "telegram_id", "plan_name", "stars", "period_days", "telegram_payment_charge_id",
        "provider_payment_charge_id", "invoice_payload", "status", "created_at", "refunded_at",
        "refunded_by",
    )  # fmt: skip
    column_labels = {
        "telegram_id": "Telegram id",
        "plan_name": "Plan",
        "stars": "Stars",
        "telegram_payment_charge_id": "Charge id",
        "provider_payment_charge_id": "Provider charge id",
        "created_at": "Paid at",
        "refunded_at": "Refunded at",
        "refunded_by": "Refunded by",
        "buttons": "",
    }
    column_sortable_list = ("id", "telegram_id", "stars", "status", "created_at", "refunded_at")
    column_default_sort = [("created_at", True), ("id", True)]
    column_filters = (
        FilterEqual(Payment.status, "Status", options=[(s.value, s.value) for s in PaymentStatus]),
        IntEqualFilter(Payment.telegram_id, "Telegram id"),
    )
    column_formatters = {
        "telegram_id": lambda v, c, m, n: (
            Markup('<a href="{}">{}</a>').format(
                url_for("user.activity", user_id=m.user_id), m.telegram_id
            )
            if m.user_id is not None
            else m.telegram_id
        ),
        "status": lambda v, c, m, n: _status_badge(m),
        "buttons": lambda v, c, m, n: _refund_button(m),
    }
    column_formatters_detail = {
        "telegram_id": column_formatters["telegram_id"],
        "status": column_formatters["status"],
    }

    @expose("/refund/<int:payment_id>", methods=("POST",))
    def refund_view(self, payment_id: int) -> Response:
        """Refund a payment through Telegram and take back its period (the «Refund» button)."""
        back = get_redirect_target() or url_for(".index_view")
        try:
            payment = payments.refund(payment_id, actor=_actor())
            db.session.commit()
        except payments.PaymentError as exc:
            db.session.rollback()
            flash(f"Payment {payment_id} not refunded: {exc}.", "error")
            return redirect(back)
        user = db.session.get(User, payment.user_id) if payment.user_id is not None else None
        plan, ends = plans.plan_of(user) if user is not None else (None, None)
        now_on = f"{plan.name}{f' until {_date(ends)}' if ends else ''}" if plan else "—"
        flash(
            f"Payment {payment.id} refunded: {payment.stars} ⭐ returned to "
            f"{payment.telegram_id}; their plan now: {now_on}.",
            "success",
        )
        return redirect(back)


# -- plans on the users list and the user page ------------------------------------------------


def remember_plans(users: list[User]) -> None:
    """Read the plans in force of a listed page of users at once, for :func:`plan_cell`.

    Args:
        users: The page's users (``plans.plans_of`` reads the default plan once for all).
    """
    g.user_plans = {**(g.get("user_plans") or {}), **plans.plans_of(users)}


def plan_cell(user: User) -> str:
    """The users list's «Plan»: the plan in force now (``plans.plan_of``), with its end.

    Args:
        user: A listed user (its page loaded by :func:`remember_plans`; read alone otherwise).

    Returns:
        ``"Paid until 2026-05-01"``, ``"Free"``, or ``"—"`` before any plan exists.
    """
    loaded = g.get("user_plans")
    if loaded is None or user.id not in loaded:
        remember_plans([user])
        loaded = g.user_plans
    plan, expires_at = loaded[user.id]
    if plan is None:
        return "—"
    if expires_at is not None:
        return f"{plan.name} until {expires_at.astimezone(UTC):%Y-%m-%d}"
    return plan.name


class _PlanOptions:
    """The plans as filter options, read each time the list renders (plans change at run time)."""

    def __bool__(self) -> bool:
        return True

    def __iter__(self) -> Any:
        return iter([(str(plan.id), plan.name) for plan in plans.list_plans()])


class PlanFilter(BaseSQLAFilter):
    """Users by the plan in force now (``plans.governed_by``), as the «Plan» column shows it.

    The default plan's option also lists users with no plan or one that has ended.
    """

    def __init__(self) -> None:
        super().__init__(User.plan_id, "Plan", options=_PlanOptions())

    def get_options(self, view: Any) -> Any:
        """The lazy plan options (never evaluated when the view is built)."""
        return self.options

    def validate(self, value: Any) -> bool:
        """Only a plan id."""
        return str(value).isdigit()

    def clean(self, value: Any) -> int:
        """The plan id."""
        return int(value)

    def apply(self, query: Any, value: int, alias: Any = None) -> Any:
        """Keep the users governed by plan ``value`` now."""
        plan = db.session.get(Plan, value)
        if plan is None:
            return query.filter(false())
        return query.filter(plans.governed_by(plan))

    def operation(self) -> str:
        """Shown beside the filter's name."""
        return "is"


class UserPlanForm(FlaskForm):
    """The user page's plan change: a plan and when it ends (UTC; empty = never)."""

    plan_id = SelectField("Plan", coerce=int)
    plan_expires_at = DateTimeLocalField(
        "Until (UTC)",
        format="%Y-%m-%dT%H:%M",
        validators=[Optional()],
        description="Empty = no end. The default plan never ends.",
    )

    def set_choices(self) -> None:
        """Fill the plan select with the plans that exist now."""
        self.plan_id.choices = [
            (plan.id, f"{plan.name} (default)" if plan.is_default else plan.name)
            for plan in plans.list_plans()
        ]

    def values(self) -> dict[str, Any]:
        """The form as ``users.update_user`` values."""
        expires = self.plan_expires_at.data
        return {
            "plan_id": self.plan_id.data,
            "plan_expires_at": expires.replace(tzinfo=UTC) if expires else None,
        }


@dataclass(frozen=True)
class LimitRow:
    """One line of the user page's usage table.

    Attributes:
        label: What is counted.
        used: How much of it is used.
        limit: The limit (None = unlimited).
        resets_at: When the counter starts again.
        note: Where the limit comes from, when it is not the plan.
    """

    label: str
    used: int | Decimal
    limit: int | Decimal | None
    resets_at: datetime
    note: str = ""

    @property
    def used_text(self) -> str:
        """The amount used, as shown (dollars with cents to four places)."""
        return f"{self.used:.4f}" if isinstance(self.used, Decimal) else _limit(self.used)

    @property
    def limit_text(self) -> str:
        """The limit, as shown (``∞`` when unlimited)."""
        if isinstance(self.limit, Decimal):
            return f"{self.limit:.2f}"
        return _limit(self.limit)

    @property
    def percent(self) -> int | None:
        """How much of the limit is used, 0–100 (None when unlimited)."""
        if self.limit is None:
            return None
        if not self.limit:
            return 100
        return min(100, int(self.used * 100 / self.limit))


@dataclass(frozen=True)
class PlanSection:
    """The user page's «Plan» section.

    Attributes:
        plan: The plan in force now (None before any plan exists).
        expires_at: When it ends (None = never).
        usage: Use today and this month.
        rows: Each limit with what is used of it.
        history: The plan changes, newest first.
        form: The plan change form.
    """

    plan: Plan | None
    expires_at: datetime | None
    usage: PlanUsage
    rows: list[LimitRow]
    history: list[PlanChange]
    form: UserPlanForm


def plan_section(user: User) -> PlanSection:
    """Everything the user page shows about a user's plan (services only).

    Args:
        user: The user.

    Returns:
        The section.
    """
    plan, expires_at = plans.plan_of(user)
    tz_name = _timezone()
    used = plan_usage([user.id], tz_name)[user.id]
    limits = Limits.of(plans.PlanSpec.from_plan(plan) if plan else None, user.daily_request_limit)
    day_ends, month_ends = next_day_start(tz_name), next_month_start(tz_name)
    own = "the user's own limit" if user.daily_request_limit is not None else ""
    rows = [
        LimitRow("Requests today", used.requests_today, limits.requests_per_day, day_ends, own),
        LimitRow("Tokens today", used.tokens_today, limits.tokens_per_day, day_ends),
        LimitRow("Tokens this month", used.tokens_month, limits.tokens_per_month, month_ends),
        LimitRow("Cost this month, $", used.cost_usd_month, limits.cost_usd_per_month, month_ends),
    ]
    form = UserPlanForm(
        formdata=None,
        data={
            "plan_id": plan.id if plan else None,
            "plan_expires_at": expires_at.astimezone(UTC).replace(tzinfo=None)
            if expires_at
            else None,
        },
    )
    form.set_choices()
    return PlanSection(plan, expires_at, used, rows, plans.history_of(user.id), form)


def change_user_plan(user: User) -> bool:
    """Apply the user page's plan form through ``users.update_user`` and commit.

    The change is recorded in the user's plan history as the logged-in admin's. The outcome,
    or why nothing changed, is flashed.

    Args:
        user: The user.

    Returns:
        Whether the form was valid and the service accepted it.
    """
    form = UserPlanForm()
    form.set_choices()
    if not form.validate_on_submit():
        errors = "; ".join(
            f"{form[name].label.text}: {' '.join(messages)}"
            for name, messages in form.errors.items()
        )
        flash(f"Plan not changed: {errors or 'the form was not sent'}.", "error")
        return False
    try:
        update_user(user, form.values())
        db.session.commit()
    except UnknownPlan as exc:
        db.session.rollback()
        flash(f"Plan not changed: {exc}.", "error")
        return False
    plan, expires_at = plans.plan_of(user)
    until = f" until {_date(expires_at)}" if expires_at else ""
    flash(f"Plan of {user.telegram_id}: {plan.name if plan else '—'}{until}.", "success")
    return True


def register_plans(admin: Any) -> None:
    """Add the «Plans» and «Payments» pages to the admin.

    Args:
        admin: The ``flask_admin.Admin`` of the app.
    """
    admin.add_view(PlanView(Plan, db, name="Plans", endpoint="plan"))
    admin.add_view(PaymentView(Payment, db, name="Payments", endpoint="payment"))


__all__ = [
    "PaymentView",
    "PlanFilter",
    "PlanForm",
    "PlanView",
    "change_user_plan",
    "plan_cell",
    "plan_section",
    "register_plans",
    "remember_plans",
]
