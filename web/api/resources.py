"""Resources of the admin API: settings, catalog, users, groups, plans, payments, log, bot….

The statistics, the bot's controls and the audit log too. One flask-smorest blueprint per
resource (its name is the OpenAPI tag), nested in ``web.api.bp`` through :data:`RESOURCES`.
Handlers stay thin: the schemas (``web.api.schemas``) validate the request and shape the
answer; ``shared.services`` hold the rules; a handler maps service errors to API errors and
commits. Collections answer ``{"items": [...], "total": N}``; ``POST`` answers 201 with the
object; ``PATCH`` 200 with the updated object; ``DELETE`` 204.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from flask import current_app
from flask.views import MethodView

from shared.db import db
from shared.models import (
    Group,
    GroupStatus,
    LLMModel,
    Mode,
    Payment,
    Plan,
    PlanChange,
    Request,
    RequestStatus,
    User,
    UserStatus,
)
from shared.services import audit, bot_control, catalog, groups, payments, plans, usage
from shared.services.audit import AuditFilter, query_audit
from shared.services.configuration import UnknownObject, current_settings, update_settings
from shared.services.message_log import LogFilter, query_log
from shared.services.settings import SettingError
from shared.services.stats import PeriodError, make_period, parse_bound, statistics
from shared.services.usage import PlanUsage
from shared.services.users import (
    UnknownPlan,
    UserExists,
    create_user,
    find_users,
    get_user,
    update_user,
)
from web.api.errors import ErrorSchema, bad_gateway, conflict, invalid, not_found
from web.api.openapi import ResourceBlueprint as Blueprint
from web.api.schemas import (
    MAX_ID,
    MAX_TELEGRAM_ID,
    AuditListSchema,
    AuditQuerySchema,
    BotStartSchema,
    BotStatusSchema,
    GroupListSchema,
    GroupPatchSchema,
    GroupSchema,
    GroupsQuerySchema,
    MessageDetailSchema,
    MessageListSchema,
    MessagesQuerySchema,
    ModeListSchema,
    ModelListSchema,
    ModelPatchSchema,
    ModelSchema,
    ModePatchSchema,
    ModeSchema,
    PaymentListSchema,
    PaymentSchema,
    PaymentsQuerySchema,
    PlanListSchema,
    PlanPatchSchema,
    PlanSchema,
    SettingsSchema,
    StatsQuerySchema,
    StatsSchema,
    UserDetailSchema,
    UserListSchema,
    UserPatchSchema,
    UserSchema,
    UsersQuerySchema,
)

# Responses documented on the operations that can give them (components of flask-smorest).
NOT_FOUND = {"response": "NOT_FOUND"}
CONFLICT = {"response": "CONFLICT"}
#: A 502 of the refund: Telegram said no (or could not be reached).
REFUND_REFUSED = {
    "schema": ErrorSchema,
    "description": "Telegram refused the refund or could not be reached; nothing changed",
}


def _actor() -> str:
    """Who makes the change (the API token's name), for histories the services keep."""
    return audit.current_actor() or audit.SYSTEM


def _get(kind: type, object_id: int, what: str) -> Any:
    if not 1 <= object_id <= MAX_ID:  # no such row, and the database would refuse the number
        raise not_found(what)
    obj = db.session.get(kind, object_id)
    if obj is None:
        raise not_found(what)
    return obj


T = TypeVar("T")


def _catalog_errors(exc: catalog.CatalogError) -> Exception:
    """The API error for a broken catalog rule."""
    if isinstance(exc, catalog.NameTaken):
        return conflict(str(exc))
    if isinstance(exc, catalog.UnknownFallback):
        return not_found("fallback model")
    return invalid(str(exc))


def _saved(save: Callable[[Any, dict[str, Any]], None], obj: T, values: dict[str, Any]) -> T:
    """Apply validated values through a catalog service and commit; map its errors to 4xx.

    Args:
        save: ``catalog.save_model`` or ``catalog.save_mode``.
        obj: The model or mode (new or stored).
        values: The validated body.

    Returns:
        The saved object.

    Raises:
        ApiError: 404 or 409 for the service's refusals.
    """
    try:
        save(obj, values)
    except catalog.CatalogError as exc:
        raise _catalog_errors(exc) from exc
    db.session.commit()
    return obj


# -- settings -------------------------------------------------------------------------------

settings = Blueprint("settings", __name__, description="Bot token, webhook, registration, defaults")


@settings.route("/settings")
class Settings(MethodView):
    """``/admin/api/settings``."""

    @settings.response(200, SettingsSchema)
    def get(self) -> dict[str, Any]:
        """Read the settings (the bot token only as set / not set)."""
        return current_settings()

    @settings.arguments(SettingsSchema)
    @settings.response(200, SettingsSchema)
    def patch(self, values: dict[str, Any]) -> dict[str, Any]:
        """Change settings; default_model_id / default_mode_id make that object the default.

        ``voice_model`` must name a model with a transcription model (else 400).
        """
        try:
            update_settings(values)
        except (UnknownObject, SettingError) as exc:
            raise invalid(str(exc)) from exc
        db.session.commit()
        return current_settings()


# -- models ---------------------------------------------------------------------------------

models = Blueprint("models", __name__, description="LLM models (OpenAI-compatible endpoints)")


@models.route("/models")
class Models(MethodView):
    """``/admin/api/models``."""

    @models.response(200, ModelListSchema)
    def get(self) -> dict[str, Any]:
        """List the LLM models by name."""
        items = catalog.list_models()
        return {"items": items, "total": len(items)}

    @models.arguments(ModelSchema)
    @models.response(201, ModelSchema)
    @models.alt_response(404, **NOT_FOUND)
    @models.alt_response(409, **CONFLICT)
    def post(self, values: dict[str, Any]) -> LLMModel:
        """Add a model; is_default: true makes it the active one."""
        model = LLMModel(enabled=True, is_default=False)
        return _saved(catalog.save_model, model, values)


@models.route("/models/<int:model_id>")
class ModelItem(MethodView):
    """``/admin/api/models/{model_id}``."""

    @models.response(200, ModelSchema)
    @models.alt_response(404, **NOT_FOUND)
    def get(self, model_id: int) -> LLMModel:
        """Read a model (never its key)."""
        return _get(LLMModel, model_id, "model")

    @models.arguments(ModelPatchSchema(partial=True))
    @models.response(200, ModelSchema)
    @models.alt_response(404, **NOT_FOUND)
    @models.alt_response(409, **CONFLICT)
    def patch(self, values: dict[str, Any], model_id: int) -> LLMModel:
        """Change a model; is_default: true makes it active and clears the flag on the others."""
        model = _get(LLMModel, model_id, "model")
        return _saved(catalog.save_model, model, values)

    @models.response(204)
    @models.alt_response(404, **NOT_FOUND)
    @models.alt_response(409, **CONFLICT)
    def delete(self, model_id: int) -> None:
        """Delete a model (the log keeps its name); not the only model a plan allows (409)."""
        model = _get(LLMModel, model_id, "model")
        try:
            catalog.check_deletable(model)
        except catalog.ModelInUse as exc:
            raise conflict(str(exc)) from exc
        db.session.delete(model)
        db.session.commit()


# -- modes ----------------------------------------------------------------------------------

modes = Blueprint("modes", __name__, description="Answer modes (system prompts)")


@modes.route("/modes")
class Modes(MethodView):
    """``/admin/api/modes``."""

    @modes.response(200, ModeListSchema)
    def get(self) -> dict[str, Any]:
        """List the modes in display order."""
        items = catalog.list_modes()
        return {"items": items, "total": len(items)}

    @modes.arguments(ModeSchema)
    @modes.response(201, ModeSchema)
    @modes.alt_response(409, **CONFLICT)
    def post(self, values: dict[str, Any]) -> Mode:
        """Add a mode; is_default: true makes it the default."""
        mode = Mode(system_prompt="", is_default=False, position=0)
        return _saved(catalog.save_mode, mode, values)


@modes.route("/modes/<int:mode_id>")
class ModeItem(MethodView):
    """``/admin/api/modes/{mode_id}``."""

    @modes.response(200, ModeSchema)
    @modes.alt_response(404, **NOT_FOUND)
    def get(self, mode_id: int) -> Mode:
        """Read a mode."""
        return _get(Mode, mode_id, "mode")

    @modes.arguments(ModePatchSchema(partial=True))
    @modes.response(200, ModeSchema)
    @modes.alt_response(404, **NOT_FOUND)
    @modes.alt_response(409, **CONFLICT)
    def patch(self, values: dict[str, Any], mode_id: int) -> Mode:
        """Change a mode."""
        mode = _get(Mode, mode_id, "mode")
        return _saved(catalog.save_mode, mode, values)

    @modes.response(204)
    @modes.alt_response(404, **NOT_FOUND)
    def delete(self, mode_id: int) -> None:
        """Delete a mode (users on it fall back to the default)."""
        db.session.delete(_get(Mode, mode_id, "mode"))
        db.session.commit()


# -- users ----------------------------------------------------------------------------------

users = Blueprint("users", __name__, description="Telegram users, addressed by Telegram id")


@dataclass(frozen=True)
class _Counted:
    """A user as :class:`UserSchema` dumps it: the row, its counts and its effective plan.

    ``plan_id`` and ``plan_expires_at`` shadow the row's columns: they are the plan governing
    the user now (``plans.plan_of``), so an expired plan reads as the default plan.
    """

    user: User
    requests_total: int
    plan_id: int | None = None
    plan_expires_at: datetime | None = None
    usage: PlanUsage = PlanUsage()
    plan_history: list[PlanChange] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.user, name)


def _counted(found: list[User], *, history: bool = False) -> list[_Counted]:
    """Users with their request counts and plan use (one batch each), and effective plans.

    Args:
        found: The users of the page.
        history: Add each user's plan history (single-user answers only).

    Returns:
        What :class:`UserSchema` (or :class:`UserDetailSchema`) dumps, in the same order.
    """
    ids = [user.id for user in found]
    totals = usage.count_requests(ids)
    used = usage.plan_usage(ids, current_app.config["AI_ROUTER"].timezone)
    governing = plans.plans_of(found)
    counted = []
    for user in found:
        plan, expires_at = governing[user.id]
        counted.append(
            _Counted(
                user,
                totals[user.id],
                plan.id if plan is not None else None,
                expires_at,
                used[user.id],
                plans.history_of(user.id) if history else None,
            )
        )
    return counted


def _user(telegram_id: int) -> User:
    if not 1 <= telegram_id <= MAX_TELEGRAM_ID:
        raise not_found("user")
    user = get_user(telegram_id)
    if user is None:
        raise not_found("user")
    return user


#: Fields of a user's body that assign a plan (``users.update_user`` records the change).
PLAN_FIELDS = ("plan_id", "plan_expires_at")


def _updated(user: User, values: dict[str, Any]) -> User:
    """Apply a user's changes through ``users.update_user``; an unknown plan is a 400."""
    try:
        return update_user(user, values)
    except UnknownPlan as exc:
        raise invalid(f"{exc} (no such object)") from exc


@users.route("/users")
class Users(MethodView):
    """``/admin/api/users``."""

    @users.arguments(UsersQuerySchema, location="query")
    @users.response(200, UserListSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List users, most recently active first; status, q (name/username) and plan filter."""
        found, total = find_users(
            status=UserStatus(query["status"]) if "status" in query else None,
            search=query.get("q"),
            plan_id=query.get("plan_id"),
            limit=query["limit"],
            offset=query["offset"],
        )
        return {"items": _counted(found), "total": total}

    @users.arguments(UserSchema)
    @users.response(201, UserSchema)
    @users.alt_response(409, **CONFLICT)
    def post(self, values: dict[str, Any]) -> _Counted:
        """Create (pre-authorize or pre-block) a Telegram id before the person writes.

        ``plan_id`` / ``plan_expires_at`` assign a plan at once (recorded in its history).
        """
        assignment = {key: values.pop(key) for key in PLAN_FIELDS if key in values}
        try:
            user = create_user(**values)
        except UserExists as exc:
            raise conflict(str(exc)) from exc
        if assignment:
            _updated(user, assignment)
        db.session.commit()
        return _counted([user])[0]


@users.route("/users/<int:telegram_id>")
class UserItem(MethodView):
    """``/admin/api/users/{telegram_id}``."""

    @users.response(200, UserDetailSchema)
    @users.alt_response(404, **NOT_FOUND)
    def get(self, telegram_id: int) -> _Counted:
        """Read a user, with their plan history (newest first)."""
        return _counted([_user(telegram_id)], history=True)[0]

    @users.arguments(UserPatchSchema(partial=True))
    @users.response(200, UserSchema)
    @users.alt_response(404, **NOT_FOUND)
    def patch(self, values: dict[str, Any], telegram_id: int) -> _Counted:
        """Change a user (status, limit, note, plan); status blocked takes access away at once.

        ``plan_id`` assigns a plan (keeping the expiry unless ``plan_expires_at`` is sent too;
        the default plan's id clears it); the change is recorded in the user's plan history
        under the API token's name.
        """
        user = _updated(_user(telegram_id), values)
        db.session.commit()
        return _counted([user])[0]


# -- groups ---------------------------------------------------------------------------------

groups_api = Blueprint(
    "groups", __name__, description="Group chats the bot was asked in; an admin may block one"
)


@dataclass(frozen=True)
class _Active:
    """A group as :class:`GroupSchema` dumps it: the row and its activity in the message log."""

    group: Group
    activity: groups.GroupActivity

    def __getattr__(self, name: str) -> Any:
        if name in ("members", "requests", "last_request_at"):
            return getattr(self.activity, name)
        return getattr(self.group, name)


def _with_activity(found: list[Group]) -> list[_Active]:
    """Groups with their activity (``groups.activity_of``: one query for the page)."""
    activity = groups.activity_of([group.chat_id for group in found])
    return [_Active(group, activity[group.chat_id]) for group in found]


@groups_api.route("/groups")
class Groups(MethodView):
    """``/admin/api/groups``."""

    @groups_api.arguments(GroupsQuerySchema, location="query")
    @groups_api.response(200, GroupListSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List the groups, most recently seen first; status filter."""
        found, total = groups.find_groups(
            status=GroupStatus(query["status"]) if "status" in query else None,
            limit=query["limit"],
            offset=query["offset"],
        )
        return {"items": _with_activity(found), "total": total}


@groups_api.route("/groups/<int:group_id>")
class GroupItem(MethodView):
    """``/admin/api/groups/{group_id}``."""

    @groups_api.response(200, GroupSchema)
    @groups_api.alt_response(404, **NOT_FOUND)
    def get(self, group_id: int) -> _Active:
        """Read a group, with its members, requests and last request."""
        return _with_activity([_get(Group, group_id, "group")])[0]

    @groups_api.arguments(GroupPatchSchema(partial=True))
    @groups_api.response(200, GroupSchema)
    @groups_api.alt_response(404, **NOT_FOUND)
    def patch(self, values: dict[str, Any], group_id: int) -> _Active:
        """Block a group (the bot refuses everyone in it at once) or unblock it."""
        group = _get(Group, group_id, "group")
        if "status" in values:
            groups.set_status(group, GroupStatus(values["status"]))
        db.session.commit()
        return _with_activity([group])[0]


# -- plans and payments ---------------------------------------------------------------------

plans_api = Blueprint(
    "plans", __name__, description="Plans: limits, allowed models, price in Telegram Stars"
)


def _saved_plan(plan: Plan, values: dict[str, Any]) -> Plan:
    """Apply validated values through ``plans.save_plan`` and commit; map its refusals.

    Args:
        plan: A new or stored plan.
        values: The validated body.

    Returns:
        The saved plan.

    Raises:
        ApiError: 409 for a taken name or unticking the default; 400 for unknown models.
    """
    try:
        plans.save_plan(plan, values)
    except plans.UnknownModels as exc:
        raise invalid(f"{exc} (no such object)") from exc
    except plans.InvalidPlanValue as exc:  # the schema refuses these first
        raise invalid(str(exc)) from exc
    except plans.PlanError as exc:  # PlanNameTaken, DefaultPlanRequired
        raise conflict(str(exc)) from exc
    db.session.commit()
    return plan


@plans_api.route("/plans")
class Plans(MethodView):
    """``/admin/api/plans``."""

    @plans_api.response(200, PlanListSchema)
    def get(self) -> dict[str, Any]:
        """List the plans: the default first, then by price and name."""
        items = plans.list_plans()
        return {"items": items, "total": len(items)}

    @plans_api.arguments(PlanSchema)
    @plans_api.response(201, PlanSchema)
    @plans_api.alt_response(409, **CONFLICT)
    def post(self, values: dict[str, Any]) -> Plan:
        """Add a plan; is_default: true makes it the default."""
        return _saved_plan(Plan(description="", is_default=False), values)


@plans_api.route("/plans/<int:plan_id>")
class PlanItem(MethodView):
    """``/admin/api/plans/{plan_id}``."""

    @plans_api.response(200, PlanSchema)
    @plans_api.alt_response(404, **NOT_FOUND)
    def get(self, plan_id: int) -> Plan:
        """Read a plan."""
        return _get(Plan, plan_id, "plan")

    @plans_api.arguments(PlanPatchSchema(partial=True))
    @plans_api.response(200, PlanSchema)
    @plans_api.alt_response(404, **NOT_FOUND)
    @plans_api.alt_response(409, **CONFLICT)
    def patch(self, values: dict[str, Any], plan_id: int) -> Plan:
        """Change a plan; is_default: true moves the default here (false on it is a 409)."""
        return _saved_plan(_get(Plan, plan_id, "plan"), values)

    @plans_api.response(204)
    @plans_api.alt_response(404, **NOT_FOUND)
    @plans_api.alt_response(409, **CONFLICT)
    def delete(self, plan_id: int) -> None:
        """Delete a plan; its users move to the default plan (recorded in their history).

        The default plan cannot be deleted (409): make another plan the default first.
        """
        try:
            plans.delete_plan(_get(Plan, plan_id, "plan"), actor=_actor())
        except plans.DefaultPlanRequired as exc:
            raise conflict(str(exc)) from exc
        db.session.commit()


payments_api = Blueprint(
    "payments", __name__, description="Plans bought with Telegram Stars, and refunds"
)


@payments_api.route("/payments")
class Payments(MethodView):
    """``/admin/api/payments``."""

    @payments_api.arguments(PaymentsQuerySchema, location="query")
    @payments_api.response(200, PaymentListSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Payments, newest first, filtered by buyer and status."""
        rows, total = payments.list_payments(
            telegram_id=query.get("telegram_id"),
            status=query.get("status"),
            limit=query["limit"],
            offset=query["offset"],
        )
        return {"items": rows, "total": total}


@payments_api.route("/payments/<int:payment_id>/refund")
class PaymentRefund(MethodView):
    """``/admin/api/payments/{payment_id}/refund``."""

    @payments_api.response(200, PaymentSchema)
    @payments_api.alt_response(404, **NOT_FOUND)
    @payments_api.alt_response(409, **CONFLICT)
    @payments_api.alt_response(502, **REFUND_REFUSED)
    def post(self, payment_id: int) -> Payment:
        """Refund through Telegram (refundStarPayment) and take the plan's period back.

        409 when the payment was refunded before; 502 when Telegram refused the refund or
        could not be reached (the payment stays paid, the plan unchanged).
        """
        if not 1 <= payment_id <= MAX_ID:
            raise not_found("payment")
        try:
            payment = payments.refund(payment_id, actor=_actor())
        except payments.PaymentNotFound as exc:
            raise not_found("payment") from exc
        except payments.AlreadyRefunded as exc:
            raise conflict(str(exc)) from exc
        except payments.RefundRefused as exc:
            raise bad_gateway(str(exc)) from exc
        db.session.commit()
        return payment


# -- messages and stats ---------------------------------------------------------------------

messages = Blueprint("messages", __name__, description="The message log")


def _bound(query: dict[str, Any], name: str) -> datetime | None:
    if name not in query:
        return None
    try:
        return parse_bound(
            query[name], current_app.config["AI_ROUTER"].timezone, end=name == "until"
        )
    except PeriodError as exc:
        raise invalid(f"{name}: {exc}") from exc


@messages.route("/messages")
class Messages(MethodView):
    """``/admin/api/messages``."""

    @messages.arguments(MessagesQuerySchema, location="query")
    @messages.response(200, MessageListSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The log, newest first, filtered by user, dialog, chat, period, status, model, text."""
        filters = LogFilter(
            telegram_id=query.get("telegram_id"),
            dialog_id=query.get("dialog_id"),
            chat_id=query.get("chat_id"),
            since=_bound(query, "since"),
            until=_bound(query, "until"),
            status=RequestStatus(query["status"]) if "status" in query else None,
            model=query.get("model"),
            search=query.get("q"),
        )
        rows, total = query_log(filters, query["limit"], query["offset"])
        return {"items": rows, "total": total}


@messages.route("/messages/<int:message_id>")
class MessageItem(MethodView):
    """``/admin/api/messages/{message_id}``."""

    @messages.response(200, MessageDetailSchema)
    @messages.alt_response(404, **NOT_FOUND)
    def get(self, message_id: int) -> Request:
        """Read one logged request, with the text read from its document (attachment_text)."""
        return _get(Request, message_id, "message")


stats = Blueprint("stats", __name__, description="Usage statistics")


@stats.route("/stats")
class Stats(MethodView):
    """``/admin/api/stats``."""

    @stats.arguments(StatsQuerySchema, location="query")
    @stats.response(200, StatsSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Statistics for a period: dates (inclusive) or ISO datetimes; default the last 7 days."""
        try:
            period = make_period(
                query.get("since"), query.get("until"), current_app.config["AI_ROUTER"].timezone
            )
        except PeriodError as exc:
            raise invalid(str(exc)) from exc
        return statistics(period)


# -- bot control ----------------------------------------------------------------------------

bot = Blueprint("bot", __name__, description="Bot start/stop (the admin's bot buttons)")


def _control(action: str) -> dict[str, Any]:
    """Apply a bot action; what the current settings forbid (no token, no URL) is a 409.

    The mode itself is validated by :class:`BotStartSchema` (a 400 before this runs).
    """
    try:
        bot_control.control(action)
    except bot_control.BotControlError as exc:
        raise conflict(str(exc)) from exc
    return bot_control.bot_status()


@bot.route("/bot")
class BotStatus(MethodView):
    """``/admin/api/bot``."""

    @bot.response(200, BotStatusSchema)
    def get(self) -> dict[str, Any]:
        """Desired and actual state of the bot listener."""
        return bot_control.bot_status()


@bot.route("/bot/start")
class BotStart(MethodView):
    """``/admin/api/bot/start``."""

    @bot.arguments(BotStartSchema)
    @bot.response(200, BotStatusSchema)
    @bot.alt_response(409, **CONFLICT)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """«Запустить бота» (polling) or «Запустить бота в webhook» (webhook); switches over."""
        return _control(body["mode"])


@bot.route("/bot/stop")
class BotStop(MethodView):
    """``/admin/api/bot/stop``."""

    @bot.response(200, BotStatusSchema)
    def post(self) -> dict[str, Any]:
        """«Остановить бота»."""
        return _control("stop")


# -- audit log ------------------------------------------------------------------------------

audit_log = Blueprint(
    "audit", __name__, description="Who changed which setting, model, mode, user or token, when"
)


@audit_log.route("/audit")
class Audit(MethodView):
    """``/admin/api/audit``."""

    @audit_log.arguments(AuditQuerySchema, location="query")
    @audit_log.response(200, AuditListSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """The audit log, newest first, filtered by kind, object, actor and period."""
        filters = AuditFilter(
            kind=query.get("kind"),
            object_id=query.get("object_id"),
            actor=query.get("actor"),
            since=_bound(query, "since"),
            until=_bound(query, "until"),
        )
        rows, total = query_audit(filters, query["limit"], query["offset"])
        return {"items": rows, "total": total}


#: Every resource blueprint, in the order of the OpenAPI document's tags.
RESOURCES = (
    settings,
    models,
    modes,
    users,
    groups_api,
    plans_api,
    payments_api,
    messages,
    stats,
    bot,
    audit_log,
)
