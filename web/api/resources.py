"""Resources of the admin API: settings, models, modes, users, messages, stats, bot control.

Collections answer ``{"items": [...], "total": N}``; ``POST`` answers 201 with the object;
``PATCH`` 200 with the updated object. Handlers validate, call ``shared.services`` and commit.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from shared.db import db
from shared.models import LLMModel, Mode, Request, RequestStatus, User, UserStatus
from shared.services import bot_control
from shared.services.catalog import make_default, set_api_key
from shared.services.configuration import UnknownObject, current_settings, update_settings
from shared.services.message_log import LogFilter, message_dict, query_log
from shared.services.settings import is_set
from shared.services.stats import PeriodError, make_period, parse_bound, statistics
from shared.services.users import UserExists, create_user
from web.api import bp
from web.api.validation import (
    Field,
    clean_body,
    conflict,
    int_arg,
    invalid,
    json_body,
    not_found,
)

# -- settings -------------------------------------------------------------------------------

SETTINGS_FIELDS = {
    "telegram_bot_token": Field("str", nullable=True, max_length=200),
    "webhook_url": Field("url", nullable=True, max_length=500),
    "registration": Field("choice", choices=("open", "approval")),
    "default_model_id": Field("int", nullable=True, minimum=1),
    "default_mode_id": Field("int", nullable=True, minimum=1),
    "default_daily_limit": Field("int", nullable=True, minimum=0),
}


@bp.get("/settings")
def get_settings():
    """Read the settings."""
    return jsonify(current_settings())


@bp.patch("/settings")
def patch_settings():
    """Change settings; ``default_model_id``/``default_mode_id`` make that object the default."""
    try:
        update_settings(clean_body(json_body(), SETTINGS_FIELDS, partial=True))
    except UnknownObject as exc:
        raise invalid(str(exc)) from exc
    db.session.commit()
    return jsonify(current_settings())


# -- models ---------------------------------------------------------------------------------

MODEL_FIELDS = {
    "name": Field("str", required=True, max_length=64),
    "model": Field("str", required=True, max_length=128),
    "base_url": Field("url", required=True, max_length=512),
    "api_key": Field("str", nullable=True, max_length=500),
    "temperature": Field("float", nullable=True, minimum=0, maximum=2),
    "max_tokens": Field("int", nullable=True, minimum=1),
    "context_window": Field("int", nullable=True, minimum=256),
    "enabled": Field("bool"),
    "is_default": Field("bool"),
    "input_price_per_1m": Field("decimal", minimum=0),
    "output_price_per_1m": Field("decimal", minimum=0),
    "fallback_model_id": Field("int", nullable=True, minimum=1),
}


def model_dict(model: LLMModel) -> dict[str, Any]:
    """An LLM model as the API shows it (never the key)."""
    return {
        "id": model.id,
        "name": model.name,
        "model": model.model,
        "base_url": model.base_url,
        "api_key_set": bool(model.api_key_encrypted),
        "api_key_last4": model.api_key_last4,
        "temperature": model.temperature,
        "max_tokens": model.max_tokens,
        "context_window": model.context_window,
        "enabled": model.enabled,
        "is_default": model.is_default,
        "input_price_per_1m": float(model.input_price_per_1m or 0),
        "output_price_per_1m": float(model.output_price_per_1m or 0),
        "fallback_model_id": model.fallback_model_id,
        "created_at": model.created_at.isoformat() if model.created_at else None,
    }


def _get(kind: type, object_id: int, what: str) -> Any:
    obj = db.session.get(kind, object_id)
    if obj is None:
        raise not_found(what)
    return obj


def _save(obj: LLMModel | Mode, values: dict[str, Any], what: str) -> None:
    """Apply validated values to a model or mode, keep the single-default rule, commit.

    Raises:
        ApiError: 409 when the name is taken.
    """
    is_default = values.pop("is_default", None)
    for key, value in values.items():
        setattr(obj, key, value)
    db.session.add(obj)
    try:
        db.session.flush()
    except IntegrityError as exc:
        raise conflict(f"a {what} with this name exists") from exc
    if is_default:
        make_default(obj)
    elif is_default is False:
        obj.is_default = False
    db.session.commit()


def _apply_model(model: LLMModel, values: dict[str, Any]) -> None:
    if "api_key" in values:
        set_api_key(model, values.pop("api_key"))
    fallback_id = values.get("fallback_model_id")
    if fallback_id is not None:
        if fallback_id == model.id:
            raise invalid("a model cannot be its own fallback")
        _get(LLMModel, fallback_id, "fallback model")
    _save(model, values, "model")


@bp.get("/models")
def list_models():
    """All models."""
    models = db.session.scalars(select(LLMModel).order_by(LLMModel.name)).all()
    return jsonify({"items": [model_dict(m) for m in models], "total": len(models)})


@bp.post("/models")
def create_model():
    """Add a model; ``is_default: true`` makes it the active one."""
    values = clean_body(json_body(), MODEL_FIELDS, partial=False)
    model = LLMModel(enabled=True, is_default=False)
    _apply_model(model, values)
    return jsonify(model_dict(model)), 201


@bp.get("/models/<int:model_id>")
def get_model(model_id: int):
    """One model."""
    return jsonify(model_dict(_get(LLMModel, model_id, "model")))


@bp.patch("/models/<int:model_id>")
def patch_model(model_id: int):
    """Change a model; ``is_default: true`` makes it active and clears the flag on the others."""
    model = _get(LLMModel, model_id, "model")
    _apply_model(model, clean_body(json_body(), MODEL_FIELDS, partial=True))
    return jsonify(model_dict(model))


@bp.delete("/models/<int:model_id>")
def delete_model(model_id: int):
    """Delete a model (the log keeps its name)."""
    db.session.delete(_get(LLMModel, model_id, "model"))
    db.session.commit()
    return "", 204


# -- modes ----------------------------------------------------------------------------------

MODE_FIELDS = {
    "name": Field("str", required=True, max_length=64),
    "system_prompt": Field("str", max_length=20000),
    "is_default": Field("bool"),
    "position": Field("int", minimum=0),
}


def mode_dict(mode: Mode) -> dict[str, Any]:
    """A mode as the API shows it."""
    return {
        "id": mode.id,
        "name": mode.name,
        "system_prompt": mode.system_prompt,
        "is_default": mode.is_default,
        "position": mode.position,
    }


@bp.get("/modes")
def list_modes():
    """All modes in display order."""
    modes = db.session.scalars(select(Mode).order_by(Mode.position, Mode.id)).all()
    return jsonify({"items": [mode_dict(m) for m in modes], "total": len(modes)})


@bp.post("/modes")
def create_mode():
    """Add a mode."""
    mode = Mode(system_prompt="", is_default=False, position=0)
    _save(mode, clean_body(json_body(), MODE_FIELDS, partial=False), "mode")
    return jsonify(mode_dict(mode)), 201


@bp.get("/modes/<int:mode_id>")
def get_mode(mode_id: int):
    """One mode."""
    return jsonify(mode_dict(_get(Mode, mode_id, "mode")))


@bp.patch("/modes/<int:mode_id>")
def patch_mode(mode_id: int):
    """Change a mode."""
    mode = _get(Mode, mode_id, "mode")
    _save(mode, clean_body(json_body(), MODE_FIELDS, partial=True), "mode")
    return jsonify(mode_dict(mode))


@bp.delete("/modes/<int:mode_id>")
def delete_mode(mode_id: int):
    """Delete a mode (users on it fall back to the default)."""
    db.session.delete(_get(Mode, mode_id, "mode"))
    db.session.commit()
    return "", 204


# -- users ----------------------------------------------------------------------------------

USER_FIELDS = {
    "telegram_id": Field("int", required=True, minimum=1),
    "username": Field("str", nullable=True, max_length=64),
    "first_name": Field("str", nullable=True, max_length=128),
    "status": Field("choice", choices=tuple(s.value for s in UserStatus)),
    "daily_request_limit": Field("int", nullable=True, minimum=0),
    "note": Field("str", nullable=True, max_length=500),
}
USER_PATCH_FIELDS = {k: v for k, v in USER_FIELDS.items() if k != "telegram_id"}


def user_dict(user: User, requests_total: int | None = None) -> dict[str, Any]:
    """A user as the API shows it."""
    if requests_total is None:
        requests_total = db.session.scalar(
            select(func.count(Request.id)).where(Request.user_id == user.id)
        )
    return {
        "telegram_id": user.telegram_id,
        "username": user.username,
        "first_name": user.first_name,
        "language_code": user.language_code,
        "status": str(user.status),
        "daily_request_limit": user.daily_request_limit,
        "note": user.note,
        "created_at": user.created_at.isoformat(),
        "last_seen_at": user.last_seen_at.isoformat() if user.last_seen_at else None,
        "requests_total": int(requests_total or 0),
    }


def _user(telegram_id: int) -> User:
    user = db.session.scalar(select(User).where(User.telegram_id == telegram_id))
    if user is None:
        raise not_found("user")
    return user


@bp.get("/users")
def list_users():
    """Users, most recently active first; ``status`` and ``q`` (name/username) filter."""
    limit = int_arg("limit", 100, minimum=1)
    offset = int_arg("offset", 0, minimum=0)
    counts = (
        select(Request.user_id, func.count(Request.id).label("n"))
        .group_by(Request.user_id)
        .subquery()
    )
    query = select(User, func.coalesce(counts.c.n, 0)).outerjoin(
        counts, counts.c.user_id == User.id
    )
    status = request.args.get("status")
    if status:
        if status not in {s.value for s in UserStatus}:
            raise invalid("status must be active, pending or blocked")
        query = query.where(User.status == status)
    if request.args.get("q"):
        pattern = f"%{request.args['q']}%"
        query = query.where(User.username.ilike(pattern) | User.first_name.ilike(pattern))
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.execute(
        query.order_by(User.last_seen_at.desc().nulls_last(), User.id.desc())
        .limit(min(limit, 500))
        .offset(offset)
    ).all()
    return jsonify({"items": [user_dict(u, n) for u, n in rows], "total": int(total)})


@bp.post("/users")
def create_user_route():
    """Pre-authorize a Telegram id."""
    values = clean_body(json_body(), USER_FIELDS, partial=False)
    try:
        user = create_user(**values)
    except UserExists as exc:
        raise conflict(str(exc)) from exc
    db.session.commit()
    return jsonify(user_dict(user, 0)), 201


@bp.get("/users/<int:telegram_id>")
def get_user_route(telegram_id: int):
    """One user."""
    return jsonify(user_dict(_user(telegram_id)))


@bp.patch("/users/<int:telegram_id>")
def patch_user(telegram_id: int):
    """Change a user; ``{"status": "blocked"}`` takes access away at once."""
    user = _user(telegram_id)
    for key, value in clean_body(json_body(), USER_PATCH_FIELDS, partial=True).items():
        setattr(user, key, UserStatus(value) if key == "status" else value)
    db.session.commit()
    return jsonify(user_dict(user))


# -- messages and stats ---------------------------------------------------------------------


def _period_bound(name: str):
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return parse_bound(raw, current_app.config["AI_ROUTER"].timezone, end=name == "until")
    except PeriodError as exc:
        raise invalid(str(exc)) from exc


@bp.get("/messages")
def list_messages():
    """The message log, newest first, filtered by user, dialog, period, status, model, text."""
    status = request.args.get("status")
    if status and status not in {s.value for s in RequestStatus}:
        raise invalid("status must be ok, error, denied or pending")
    filters = LogFilter(
        telegram_id=int_arg("telegram_id"),
        dialog_id=int_arg("dialog_id"),
        since=_period_bound("since"),
        until=_period_bound("until"),
        status=RequestStatus(status) if status else None,
        model=request.args.get("model") or None,
        search=request.args.get("q") or None,
    )
    rows, total = query_log(filters, int_arg("limit", 50, 1), int_arg("offset", 0, 0))
    return jsonify({"items": [message_dict(m) for m in rows], "total": total})


@bp.get("/stats")
def get_stats():
    """Statistics for a period (default: the last 7 days)."""
    try:
        period = make_period(
            request.args.get("since"),
            request.args.get("until"),
            current_app.config["AI_ROUTER"].timezone,
        )
    except PeriodError as exc:
        raise invalid(str(exc)) from exc
    return jsonify(statistics(period))


# -- bot control ----------------------------------------------------------------------------


@bp.get("/bot")
def get_bot_status():
    """Desired and actual state of the bot listener."""
    return jsonify(bot_control.bot_status())


@bp.post("/bot/start")
def start_bot():
    """«Запустить бота» (``polling``) or «Запустить бота в webhook» (``webhook``)."""
    body = clean_body(
        json_body(),
        {"mode": Field("choice", required=True, choices=("polling", "webhook"))},
        partial=False,
    )
    _control(body["mode"])
    return jsonify(bot_control.bot_status())


@bp.post("/bot/stop")
def stop_bot():
    """«Остановить бота»."""
    _control(bot_control.STOPPED)
    return jsonify(bot_control.bot_status())


def _control(mode: str) -> None:
    if mode != bot_control.STOPPED and not is_set("telegram_bot_token"):
        raise invalid("set the bot token first (settings: telegram_bot_token)")
    try:
        bot_control.set_desired(mode)
    except bot_control.BotControlError as exc:
        raise invalid(str(exc)) from exc
