"""Admin pages that are not tables: Settings, Statistics, Bot control (Flask-Admin BaseViews)."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, flash, redirect, request, url_for
from flask_admin import expose
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import BooleanField, IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import URL, NumberRange, Optional

from shared.db import db
from shared.extensions import telegram
from shared.flower import login_hint
from shared.logging import redact
from shared.services import bot_control
from shared.services.catalog import list_models, list_modes
from shared.services.configuration import current_settings, update_settings
from shared.services.settings import SettingError, is_set
from shared.services.stats import PeriodError, make_period, statistics
from web.admin.charts import bar_chart
from web.admin.security import SecureBaseView

logger = logging.getLogger(__name__)


class SettingsForm(FlaskForm):
    """The settings form; the bot token is write-only."""

    telegram_bot_token = PasswordField(
        "Bot token", validators=[Optional()], description="Write-only; leave empty to keep it."
    )
    webhook_url = StringField(
        "Webhook URL",
        validators=[Optional(), URL(require_tld=False)],
        description="Empty: {PUBLIC_URL}/telegram/webhook.",
    )
    registration = SelectField(
        "Registration",
        choices=[("open", "Open: anyone who writes gets access"), ("approval", "Approval")],
    )
    default_model_id = SelectField("Active model", coerce=int)
    default_mode_id = SelectField("Default mode", coerce=int)
    default_daily_limit = IntegerField(
        "Default daily request limit",
        validators=[Optional(), NumberRange(min=0)],
        description="The default plan's requests per day (see Plans for its other limits). "
        "Empty: unlimited.",
    )
    streaming = BooleanField(
        "Stream answers",
        description="Private-chat users see the answer grow while the model writes.",
    )
    voice_model = SelectField(
        "Voice messages: transcribe with",
        coerce=int,
        default=0,
        validate_choice=False,  # the service's rule (shared.services.settings.check_voice_model)
        description="For users whose model has no speech-to-text model of its own. Listed: the "
        "models with a speech-to-text model; a disabled one is not used.",
    )


def voice_model_choices() -> list[tuple[int, str]]:
    """The choices of the «Voice messages: transcribe with» select.

    Returns:
        ``(0, "—…")`` (only a model's own transcription model), then every model that has a
        transcription model, as ``Name (whisper-1)``, by name.
    """
    return [(0, "— (only a model's own transcription model)")] + [
        (m.id, f"{m.name} ({m.transcription_model}{'' if m.enabled else '; disabled'})")
        for m in list_models()
        if m.transcription_model
    ]


class SettingsView(SecureBaseView):
    """Bot token, webhook URL, registration, default model and mode, default limit, voice model."""

    @expose("/", methods=("GET", "POST"))
    def index(self) -> str | Response:
        """Show and save the settings."""
        current = current_settings()
        form = SettingsForm(data=current if request.method == "GET" else None)
        form.default_model_id.choices = [(0, "—")] + [(m.id, m.name) for m in list_models()]
        form.default_mode_id.choices = [(0, "—")] + [(m.id, m.name) for m in list_modes()]
        form.voice_model.choices = voice_model_choices()
        if form.validate_on_submit():
            values: dict[str, Any] = {
                "webhook_url": form.webhook_url.data or None,
                "registration": form.registration.data,
                "default_model_id": form.default_model_id.data or None,
                "default_mode_id": form.default_mode_id.data or None,
                "default_daily_limit": form.default_daily_limit.data,
                "streaming": bool(form.streaming.data),
                "voice_model": form.voice_model.data or None,
            }
            if form.telegram_bot_token.data:
                values["telegram_bot_token"] = form.telegram_bot_token.data.strip()
            try:
                update_settings(values)
            except SettingError as exc:  # voice_model: not (or no longer) a transcribing model
                db.session.rollback()
                field = form[exc.key] if exc.key and exc.key in form else None
                if field is None:
                    flash(str(exc), "error")
                else:
                    field.errors.append(str(exc))
            else:
                db.session.commit()
                flash("Settings saved.", "success")
                return redirect(url_for(".index"))
        return self.render(
            "admin/settings.html", form=form, token_set=current["telegram_bot_token_set"]
        )


PERIODS = {"today": 1, "7d": 7, "30d": 30}


class StatsView(SecureBaseView):
    """Statistics for a chosen period, with per-day charts and breakdowns."""

    @expose("/")
    def index(self) -> str:
        """The statistics page (``?period=today|7d|30d`` or ``?since=…&until=…``)."""
        tz_name = current_app.config["AI_ROUTER"].timezone
        today = datetime.now(ZoneInfo(tz_name)).date()
        period_key = request.args.get("period", "7d")
        since, until = request.args.get("since"), request.args.get("until")
        if not (since or until):
            days = PERIODS.get(period_key, 7)
            since, until = (today - timedelta(days=days - 1)).isoformat(), today.isoformat()
        error, stats = None, None
        try:
            stats = statistics(make_period(since, until, tz_name, today))
        except PeriodError as exc:
            error = str(exc)
        charts = []
        if stats:
            for key, title in (
                ("requests", "Requests per day"),
                ("active_users", "Active users per day"),
                ("total_tokens", "Tokens per day"),
                ("cost_usd", "Cost per day, USD"),
                ("stars_revenue", "Telegram Stars per day (refunds excluded)"),
            ):
                charts.append(bar_chart([(d["date"], d[key]) for d in stats["daily"]], title))
        return self.render(
            "admin/stats.html",
            stats=stats,
            charts=charts,
            error=error,
            since=since,
            until=until,
            period=period_key if not request.args.get("since") else "custom",
            timezone=tz_name,
            today=date.isoformat(today),
        )


class BotView(SecureBaseView):
    """«Запустить бота», «Запустить бота в webhook», «Остановить бота», and live status."""

    @expose("/")
    def index(self) -> str:
        """Status from Redis (refreshed by the page itself), and Telegram's webhook info."""
        live = bot_control.overview()
        webhook_info, info_error = None, None
        if is_set("telegram_bot_token"):
            try:
                webhook_info = telegram.get_webhook_info()
            except Exception as exc:  # Telegram unreachable or token rejected: show, don't crash
                info_error = redact(str(exc))[:300]
                logger.warning("getWebhookInfo failed: %s", info_error)
        config = current_app.config["AI_ROUTER"]
        return self.render(
            "admin/bot.html",
            status=live["bot"],
            live=live,
            token_set=is_set("telegram_bot_token"),
            webhook_info=webhook_info,
            info_error=info_error,
            flower_url=config.flower_url,
            flower_login=login_hint(config),
        )

    @expose("/<action>", methods=("POST",))
    def control(self, action: str) -> Response:
        """Apply a button: ``polling``, ``webhook`` or ``stop``."""
        try:
            desired = bot_control.control(action)
        except bot_control.BotControlError as exc:
            flash(str(exc), "error")
        else:
            flash(
                f"Desired state: {desired['mode']}. The listener follows within seconds.",
                "success",
            )
        return redirect(url_for(".index"))


def register_pages(admin: Any) -> None:
    """Add the pages to the admin.

    Args:
        admin: The ``flask_admin.Admin`` of the app.
    """
    admin.add_view(StatsView(name="Statistics", endpoint="stats"))
    admin.add_view(BotView(name="Bot", endpoint="bot"))
    admin.add_view(SettingsView(name="Settings", endpoint="settings"))
