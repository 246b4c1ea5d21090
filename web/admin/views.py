"""Flask-Admin model views: users, LLM models, modes, the message log, API tokens.

Plans and payments are in ``web.admin.plans``; their pages are listed here, after Modes.
Groups are in ``web.admin.groups``, listed after Users.

Each view derives from :class:`SecureModelView` (login required, CSRF on forms) and calls
``shared.services`` for rules that also apply elsewhere (the single default, encrypted keys,
user status changes), so the UI and the JSON API behave the same.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, g, redirect, url_for
from flask_admin import expose
from flask_admin.actions import action
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import URL, DataRequired, NumberRange, Optional, ValidationError

from shared.db import db
from shared.models import ApiToken, Dialog, LLMModel, Mode, Request, User, UserStatus
from shared.services import catalog, cooldowns
from shared.services.api_tokens import issue_token, revoke_token
from shared.services.catalog import (
    CatalogError,
    check_fallback,
    make_default,
    set_api_key,
    set_default_flag,
)
from shared.services.model_check import check_model
from shared.services.usage import UserUsage, usage_by_user
from shared.services.users import set_status
from web.admin.groups import register_groups
from web.admin.plans import (
    PlanFilter,
    change_user_plan,
    plan_cell,
    plan_section,
    register_plans,
    remember_plans,
)
from web.admin.security import SecureModelView


def _post_button(url: str, label: str) -> Markup:
    """A small CSRF-protected POST form rendered as a button in a list row."""
    return Markup(
        f'<form method="post" action="{escape(url)}" class="d-inline">'
        f'<input type="hidden" name="csrf_token" value="{generate_csrf()}">'
        '<button class="btn btn-sm btn-outline-primary mr-1" type="submit">'
        f"{escape(label)}</button>"
        "</form>"
    )


def _timezone() -> str:
    return current_app.config["AI_ROUTER"].timezone


def _usage(user: User) -> UserUsage:
    """A listed user's counts, from the batch the list loaded (one query set per page)."""
    loaded = g.get("user_usage")
    if loaded is None or user.id not in loaded:
        loaded = {**(loaded or {}), **usage_by_user([user.id], _timezone())}
        g.user_usage = loaded
    return loaded[user.id]


def _health_cell(model: LLMModel) -> Markup:
    """«OK» or «Cooling down until …», with the last error (full text on hover)."""
    health = cooldowns.health_of(model.id)
    if health.cooldown_until is not None:
        state = Markup('<span class="badge badge-warning">Cooling down until {}</span>').format(
            health.cooldown_until.strftime("%H:%M:%S UTC")
        )
    else:
        state = Markup('<span class="badge badge-success">OK</span>')
    if health.last_error:
        when = health.last_error_at.strftime("%Y-%m-%d %H:%M UTC") if health.last_error_at else ""
        state += Markup('<br><small class="text-muted" title="{}">{}: {}</small>').format(
            health.last_error, when, health.last_error[:80]
        )
    return state


class UserView(SecureModelView):
    """Telegram users: search, filters, pre-authorization, block/unblock/approve (also in bulk)."""

    column_list = (
        "telegram_id", "username", "first_name", "status", "reachable", "plan",
        "daily_request_limit", "last_seen_at", "requests", "today", "tokens", "created_at",
    )  # fmt: skip
    column_labels = {
        "plan": "Plan",
        "daily_request_limit": "Daily limit",
        "requests": "Requests",
        "tokens": "Tokens",
    }
    column_searchable_list = ("username", "first_name", "note")
    column_filters = (
        "status", "reachable", "telegram_id", "last_seen_at", "created_at", "language_code",
        PlanFilter(),
    )  # fmt: skip
    column_default_sort = ("last_seen_at", True)
    column_formatters = {
        "telegram_id": lambda v, c, m, n: Markup(
            f'<a href="{url_for(".activity", user_id=m.id)}">{m.telegram_id}</a>'
        ),
        "requests": lambda v, c, m, n: _usage(m).requests_total,
        "today": lambda v, c, m, n: _usage(m).requests_today,
        "tokens": lambda v, c, m, n: _usage(m).tokens_total,
        "status": lambda v, c, m, n: str(m.status),
        "plan": lambda v, c, m, n: plan_cell(m),
    }
    form_columns = (
        "telegram_id",
        "username",
        "first_name",
        "status",
        "daily_request_limit",
        "note",
    )
    form_args = {
        "telegram_id": {"validators": [DataRequired(), NumberRange(min=1)]},
        "daily_request_limit": {
            "validators": [Optional(), NumberRange(min=0)],
            "description": "Requests per day; empty = the plan's requests per day.",
        },
    }
    column_details_list = (
        "telegram_id", "username", "first_name", "last_name", "language_code", "status",
        "daily_request_limit", "note", "created_at", "last_seen_at", "reachable", "mode", "model",
    )  # fmt: skip

    def load_page(self, rows: list[User]) -> None:
        """The page's users' counts and plans, loaded in one batch."""
        g.user_usage = usage_by_user([user.id for user in rows], _timezone())
        remember_plans(rows)

    @expose("/activity/<int:user_id>")
    def activity(self, user_id: int) -> str | Response:
        """A user's page: profile, plan (use, limits, history, change), dialogs, messages."""
        user = db.session.get(User, user_id)
        if user is None:
            return redirect(url_for(".index_view"))
        dialogs = db.session.execute(
            select(Dialog, func.count(Request.id))
            .outerjoin(Request, Request.dialog_id == Dialog.id)
            .where(Dialog.user_id == user.id)
            .group_by(Dialog.id)
            .order_by(Dialog.id.desc())
            .limit(50)
        ).all()
        recent = db.session.scalars(
            select(Request).where(Request.user_id == user.id).order_by(Request.id.desc()).limit(30)
        ).all()
        return self.render(
            "admin/user_activity.html",
            user=user,
            dialogs=dialogs,
            recent=recent,
            usage=usage_by_user([user.id], _timezone())[user.id],
            plan=plan_section(user),
        )

    @expose("/activity/<int:user_id>/plan", methods=("POST",))
    def change_plan(self, user_id: int) -> Response:
        """Change a user's plan and its end (the user page's «Plan» form), then show the page."""
        user = db.session.get(User, user_id)
        if user is None:
            return redirect(url_for(".index_view"))
        change_user_plan(user)
        return redirect(url_for(".activity", user_id=user.id, _anchor="plan"))

    def _bulk_status(self, ids: list[str], status: UserStatus, verb: str) -> None:
        users = db.session.scalars(select(User).where(User.id.in_([int(i) for i in ids]))).all()
        changed = set_status(list(users), status)
        db.session.commit()
        flash(f"{verb} {changed} user(s).", "success")

    @action("block", "Block", "Block the selected users? They lose access at once.")
    def action_block(self, ids: list[str]) -> None:
        """Take access away at once."""
        self._bulk_status(ids, UserStatus.BLOCKED, "Blocked")

    @action("unblock", "Unblock / approve", "Give the selected users access?")
    def action_unblock(self, ids: list[str]) -> None:
        """Give access (unblock, or approve pending users)."""
        self._bulk_status(ids, UserStatus.ACTIVE, "Activated")


class LLMModelView(SecureModelView):
    """OpenAI-compatible endpoints: keys are write-only, one click makes a model active.

    The list shows each model's state (cooling down after repeated failures, or OK) and its
    last error; «Test» asks it once and ends a cooldown when it answers.
    """

    column_list = (
        "name", "model", "base_url", "enabled", "is_default", "vision", "health", "key",
        "input_price_per_1m", "output_price_per_1m", "buttons",
    )  # fmt: skip
    column_labels = {
        "is_default": "Active",
        "vision": "Images",
        "transcription_model": "Speech-to-text model",
        "health": "State / last error",
        "key": "API key",
        "buttons": "",
        "input_price_per_1m": "$ / 1M in",
        "output_price_per_1m": "$ / 1M out",
    }
    column_formatters = {
        "key": lambda v, c, m, n: f"set ••••{m.api_key_last4}" if m.api_key_encrypted else "—",
        "health": lambda v, c, m, n: _health_cell(m),
        "buttons": lambda v, c, m, n: (
            _post_button(url_for(".activate", model_id=m.id), "Make active")
            + _post_button(url_for(".test", model_id=m.id), "Test")
        ),
    }
    form_columns = (
        "name", "model", "base_url", "api_key", "temperature", "max_tokens", "context_window",
        "vision", "transcription_model", "enabled", "is_default", "input_price_per_1m",
        "output_price_per_1m", "fallback",
    )  # fmt: skip
    form_extra_fields = {
        "api_key": PasswordField(
            "API key", description="Write-only. Leave empty to keep the stored key."
        )
    }
    form_args = {
        "base_url": {"validators": [DataRequired(), URL(require_tld=False)]},
        "temperature": {"validators": [Optional(), NumberRange(min=0, max=2)]},
        "max_tokens": {"validators": [Optional(), NumberRange(min=1)]},
        "vision": {"description": "The model accepts images: photos are sent to it."},
        "transcription_model": {
            "description": "The endpoint's speech-to-text model (its /audio/transcriptions), "
            "e.g. whisper-1. Empty = voice messages and audio are not accepted.",
        },
    }
    column_details_exclude_list = ("api_key_encrypted",)

    def on_model_delete(self, model: LLMModel) -> None:
        """Refuse to delete the only model a plan allows (flashed, nothing deleted)."""
        try:
            catalog.check_deletable(model)
        except catalog.ModelInUse as exc:
            raise ValidationError(str(exc)) from exc

    def on_model_change(self, form: Any, model: LLMModel, is_created: bool) -> None:
        """Encrypt a newly typed key; keep the catalog's rules (fallback, default, values).

        Raises:
            ValidationError: When a value breaks a rule (shown to the admin as an error).
        """
        if form.api_key.data:
            set_api_key(model, form.api_key.data)
        try:
            model.transcription_model = catalog.transcription_model(model.transcription_model)
            check_fallback(model, model.fallback.id if model.fallback else None)
        except CatalogError as exc:
            raise ValidationError(str(exc)) from exc
        db.session.add(model)
        set_default_flag(model, model.is_default)

    @expose("/activate/<int:model_id>", methods=("POST",))
    def activate(self, model_id: int) -> Response:
        """Make a model the active default (the «Make active» button)."""
        model = db.session.get(LLMModel, model_id)
        if model is not None:
            make_default(model)
            model.enabled = True
            db.session.commit()
            flash(f"{model.name} is now the active model.", "success")
        return redirect(url_for(".index_view"))

    @expose("/test/<int:model_id>", methods=("POST",))
    def test(self, model_id: int) -> Response:
        """Send one small request and show latency, answer and usage, or the error."""
        model = db.session.get(LLMModel, model_id)
        if model is None:
            return redirect(url_for(".index_view"))
        outcome = check_model(model)
        flash(outcome.message, "success" if outcome.ok else "error")
        return redirect(url_for(".index_view"))


class ModeView(SecureModelView):
    """Answer modes: name and system prompt; one is the default."""

    column_list = ("name", "is_default", "position", "system_prompt")
    column_labels = {"is_default": "Default"}
    form_columns = ("name", "system_prompt", "is_default", "position")
    column_formatters = {
        "system_prompt": lambda v, c, m, n: (m.system_prompt or "")[:120],
    }

    def on_model_change(self, form: Any, model: Mode, is_created: bool) -> None:
        """Keep the single-default rule."""
        db.session.add(model)
        set_default_flag(model, model.is_default)


def csv_safe(text: str | None) -> str:
    """Neutralize spreadsheet formulas in user text exported to CSV (``=``, ``+``, ``-``, ``@``).

    Args:
        text: A cell's text.

    Returns:
        The text, prefixed with ``'`` when a spreadsheet would run it as a formula.
    """
    text = text or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _size(size: object) -> str | None:
    """Bytes as ``850 B``, ``120 KB`` or ``1.2 MB``; None for anything but a count."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return None
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{round(size / 1024)} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _duration(seconds: object) -> str | None:
    """Seconds as ``0:12`` or ``1:02:03``; None for anything but a number."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return None
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def attachment_cell(attachment: object) -> str:
    """What came with a message, in a few words (``photo 120 KB``, ``voice 0:12``).

    Also ``document notes.txt 3 KB`` and ``audio song.mp3 3:05``. Plain text: the file name is
    the sender's (the list escapes it, the CSV export neutralizes it). Fields missing or of an
    unexpected type are left out.

    Args:
        attachment: The log row's ``attachment`` (a dict, or None).

    Returns:
        The description.
    """
    if not isinstance(attachment, dict):
        return ""
    kind = str(attachment.get("kind") or "file")
    name = attachment.get("file_name") if kind in ("document", "audio") else None
    parts = [kind, name if isinstance(name, str) and name else None]
    if kind in ("voice", "audio"):
        parts.append(_duration(attachment.get("duration")))
    else:
        parts.append(_size(attachment.get("size")))
    return " ".join(part for part in parts if part)


def _text_cell(text: str | None, limit: int = 160) -> str:
    text = text or ""
    return text if len(text) <= limit else text[:limit] + "…"


class MessageView(SecureModelView):
    """The message log: filters, text search, a dialog thread view, CSV export. Read-only."""

    can_create = can_edit = can_delete = False
    can_export = True
    export_types = ("csv",)
    column_display_pk = True
    column_list = (
        "request_at", "user.telegram_id", "dialog_id", "number", "thread_id", "status",
        "model_name", "mode_name", "attachment", "request_text", "response_text",
        "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms",
    )  # fmt: skip
    column_labels = {
        "user.telegram_id": "Telegram id", "dialog_id": "Dialog", "number": "#",
        "thread_id": "Topic", "model_name": "Model", "mode_name": "Mode",
        "attachment": "Attachment", "prompt_tokens": "In", "completion_tokens": "Out",
        "cost_usd": "Cost $", "latency_ms": "ms", "chat_id": "Chat id",
        "attachment_text": "Document text",
    }  # fmt: skip
    # Not the attachment: PostgreSQL cannot order by a JSON column.
    column_sortable_list = (
        "request_at", "dialog_id", "number", "thread_id", "status", "model_name", "mode_name",
        "request_text", "response_text", "prompt_tokens", "completion_tokens", "cost_usd",
        "latency_ms",
    )  # fmt: skip
    column_searchable_list = ("request_text", "response_text")
    # New filters go last: the list's filter URLs are positional (?flt0_5=…).
    column_filters = (
        "status", "user.telegram_id", "dialog_id", "request_at", "model_name", "chat_id",
    )  # fmt: skip
    column_default_sort = ("request_at", True)
    column_formatters = {
        "attachment": lambda v, c, m, n: attachment_cell(m.attachment),
        "request_text": lambda v, c, m, n: _text_cell(m.request_text),
        "response_text": lambda v, c, m, n: _text_cell(m.response_text or m.error),
        "status": lambda v, c, m, n: str(m.status),
        "dialog_id": lambda v, c, m, n: Markup(
            f'<a href="{url_for(".dialog", dialog_id=m.dialog_id)}">{m.dialog_id}</a>'
        ),
    }
    column_formatters_export = {
        "attachment": lambda v, c, m, n: csv_safe(attachment_cell(m.attachment)),
        "status": lambda v, c, m, n: str(m.status),
        "request_text": lambda v, c, m, n: csv_safe(m.request_text),
        "response_text": lambda v, c, m, n: csv_safe(m.response_text),
        "error": lambda v, c, m, n: csv_safe(m.error),
    }
    column_export_list = (
        "dialog_id", "number", "user.telegram_id", "request_text", "request_at", "response_text",
        "response_at", "status", "error", "model_name", "mode_name", "prompt_tokens",
        "completion_tokens", "cost_usd", "chat_id", "thread_id", "attachment",
    )  # fmt: skip
    # No COUNT(*) over the whole log on every page: a simple previous/next pager instead.
    simple_list_pager = True

    def get_query(self) -> Any:
        """Load each row's user with it (the CSV export streams after the session is gone)."""
        return super().get_query().options(joinedload(Request.user))

    @expose("/dialog/<int:dialog_id>")
    def dialog(self, dialog_id: int) -> str:
        """One dialog as a thread of requests and answers (a group's: each with its sender)."""
        rows = db.session.scalars(
            select(Request).where(Request.dialog_id == dialog_id).order_by(Request.number)
        ).all()
        return self.render(
            "admin/dialog.html", dialog_id=dialog_id, rows=rows, attachment_cell=attachment_cell
        )


class ApiTokenView(SecureModelView):
    """Bearer tokens of the admin API: issued here, shown once, stored hashed, revocable."""

    can_edit = False
    column_list = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    form_columns = ("name",)
    form_extra_fields = {"name": StringField("Name", validators=[DataRequired()])}

    def create_model(self, form: Any) -> ApiToken | bool:
        """Issue a token and show it once."""
        row, token = issue_token(form.name.data, getattr(current_user, "id", None))
        db.session.commit()
        flash(
            Markup(f"New token (copy it now, it is not shown again): <code>{escape(token)}</code>")
        )
        return row

    def delete_model(self, model: ApiToken) -> bool:
        """Revoke instead of deleting, so its use stays visible."""
        revoke_token(model.id)
        db.session.commit()
        return True


def register_views(admin: Any) -> None:
    """Add the model views to the admin.

    Args:
        admin: The ``flask_admin.Admin`` of the app.
    """
    admin.add_view(UserView(User, db, name="Users", endpoint="user"))
    register_groups(admin)
    admin.add_view(LLMModelView(LLMModel, db, name="Models", endpoint="llm_model"))
    admin.add_view(ModeView(Mode, db, name="Modes", endpoint="mode"))
    register_plans(admin)
    admin.add_view(MessageView(Request, db, name="Logs", endpoint="message"))
    admin.add_view(ApiTokenView(ApiToken, db, name="API tokens", endpoint="tokens"))
