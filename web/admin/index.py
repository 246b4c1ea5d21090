"""The admin home page, with the login and logout pages of ``/admin``."""

from __future__ import annotations

import logging
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import current_app, flash, jsonify, redirect, request, url_for
from flask_admin import AdminIndexView, expose
from flask_login import login_user, logout_user
from redis import RedisError
from werkzeug.wrappers import Response

from shared.db import db
from shared.flower import login_hint
from shared.services import bot_control, login_throttle
from shared.services.admins import authenticate
from shared.services.catalog import default_model
from shared.services.configuration import current_settings
from shared.services.stats import make_period, statistics
from web.admin.forms import LoginForm
from web.admin.security import AdminOnlyMixin, admin_logged_in

logger = logging.getLogger(__name__)


def _safe_next(target: str | None) -> str | None:
    """Accept only a local path as the post-login destination (no open redirect).

    Args:
        target: The ``next`` parameter.

    Returns:
        The path, or None if it is missing or points elsewhere.
    """
    if not target or "\\" in target or not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


class SecureIndexView(AdminOnlyMixin, AdminIndexView):
    """``/admin``: the dashboard for admins; ``/admin/login/`` and ``/admin/logout/`` for all."""

    public_views = ("login_view", "logout_view")

    @expose("/")
    def index(self) -> str:
        """Show the dashboard (anonymous visitors are sent to the login page first)."""
        config = current_app.config["AI_ROUTER"]
        tz_name = config.timezone
        today = datetime.now(ZoneInfo(tz_name)).date().isoformat()
        live = bot_control.overview()
        return self.render(
            "admin/index.html",
            bot=live["bot"],
            live=live,
            today=statistics(make_period(today, today, tz_name)),
            model=default_model(),
            settings=current_settings(),
            flower_url=config.flower_url,
            flower_login=login_hint(config),
        )

    @expose("/status")
    def status(self) -> tuple[Response, int]:
        """The live status the dashboard and the bot page poll: bot, workers, queues (JSON).

        Read from Redis only (``bot_control.overview``), so it answers at once; 503 when Redis
        cannot be reached.
        """
        try:
            response = jsonify(bot_control.overview())
        except RedisError as exc:
            logger.warning("live status unavailable: %s", exc)
            response, code = jsonify(error="Redis cannot be reached"), 503
        else:
            code = 200
        response.headers["Cache-Control"] = "no-store"
        return response, code

    @expose("/login/", methods=("GET", "POST"))
    def login_view(self) -> str | Response | tuple[str, int]:
        """Show the login form and log the admin in on valid credentials."""
        if admin_logged_in():
            return redirect(url_for(".index"))
        form = LoginForm()
        if form.validate_on_submit():
            username, address = form.username.data, request.remote_addr or "unknown"
            wait = login_throttle.retry_after(username, address)
            if wait:
                flash(f"Too many failed logins. Try again in {wait // 60 + 1} min.", "error")
                return self.render("admin/login.html", form=form), 429
            admin = authenticate(username, form.password.data)
            if admin is not None:
                db.session.commit()
                login_throttle.record_success(username, address)
                login_user(admin)
                logger.info("admin login username=%s", admin.username)
                return redirect(_safe_next(request.args.get("next")) or url_for(".index"))
            login_throttle.record_failure(username, address)
            logger.warning("failed admin login username=%s address=%s", username, address)
            flash("Invalid username or password.", "error")
        return self.render("admin/login.html", form=form)

    @expose("/logout/", methods=("POST",))
    def logout_view(self) -> Response:
        """Log out (POST only, CSRF-protected) and return to the login page."""
        logout_user()
        return redirect(url_for(".login_view"))
