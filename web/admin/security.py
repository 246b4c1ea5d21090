"""Access control shared by every admin view: only logged-in admins see anything."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import redirect, request, url_for
from flask_admin import BaseView
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla import filters as sqla_filters
from flask_admin.model import filters, typefmt
from flask_login import current_user
from werkzeug.wrappers import Response

from shared.services import audit
from web.admin.forms import AdminModelForm


def admin_logged_in() -> bool:
    """Whether the current request comes from a logged-in, active admin."""
    return bool(current_user.is_authenticated and current_user.is_active)


def redirect_to_login() -> Response:
    """Redirect an anonymous request to the login page, remembering where it was going."""
    return redirect(url_for("admin.login_view", next=request.full_path.rstrip("?")))


def _utc(value: Any) -> Any:
    """Read filter datetimes (typed in the admin as UTC wall time) as aware UTC values."""
    if isinstance(value, list):
        return [_utc(item) for item in value]
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _aware(filter_class: type) -> type:
    """A datetime filter whose cleaned values are aware UTC (``UtcDateTime`` refuses naive)."""
    if not issubclass(filter_class, filters.BaseFilter) or filter_class is sqla_filters.FilterEmpty:
        return filter_class

    def clean(self: Any, value: str) -> Any:
        return _utc(filter_class.clean(self, value))

    return type(f"Utc{filter_class.__name__}", (filter_class,), {"clean": clean})


class UtcFilterConverter(sqla_filters.FilterConverter):
    """Flask-Admin filters for ``shared.models.types.UtcDateTime`` columns."""

    utc_filters = tuple(_aware(f) for f in sqla_filters.FilterConverter.datetime_filters)

    @filters.convert("utcdatetime")
    def conv_utc_datetime(self, column: Any, name: str, **kwargs: Any) -> list:
        """Datetime filters producing aware UTC values."""
        return [f(column, name, **kwargs) for f in self.utc_filters]


class AdminOnlyMixin:
    """Login required: the one access rule of every admin view (model views, pages, dashboard).

    Mixed in before the Flask-Admin base class. Flask-Admin asks ``is_accessible`` before every
    exposed method of a view and calls ``inaccessible_callback`` when it is false; anonymous
    visitors are sent to the login form. Methods named in :attr:`public_views` skip the check
    (only the login form itself).
    """

    #: Exposed methods of the view that anonymous visitors may call.
    public_views: tuple[str, ...] = ()

    def is_accessible(self) -> bool:
        """Only logged-in, active admins."""
        return admin_logged_in()

    def inaccessible_callback(self, name: str, **kwargs: object) -> Response:
        """Send anonymous visitors to the login page.

        Args:
            name: The view method's name (unused).
            **kwargs: View arguments (unused).

        Returns:
            A redirect to ``/admin/login/``.
        """
        return redirect_to_login()

    def _handle_view(self, name: str, **kwargs: Any) -> Any:
        """Flask-Admin's hook before every view method: public ones pass, others need login.

        A logged-in admin becomes the request's actor in the audit log (their login name); the
        web app forgets it when the request ends.
        """
        if name in self.public_views:
            return None
        refused = super()._handle_view(name, **kwargs)  # type: ignore[misc]
        if refused is None and admin_logged_in():
            audit.set_actor(current_user.username)
        return refused


class SecureBaseView(AdminOnlyMixin, BaseView):
    """Base of the admin pages that are not tables (Settings, Statistics, Bot)."""


class SecureModelView(AdminOnlyMixin, ModelView):
    """Base of every model view: login required, CSRF on forms (Flask-WTF), no raw exceptions."""

    form_base_class = AdminModelForm
    filter_converter = UtcFilterConverter()
    column_type_formatters = {
        **typefmt.BASE_FORMATTERS,
        datetime: lambda view, value, name: value.strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    page_size = 50
    can_view_details = True

    def get_list(
        self,
        page: int | None,
        sort_column: Any,
        sort_desc: bool,
        search: str | None,
        filters: Any,
        execute: bool = True,
        page_size: int | None = None,
    ) -> Any:
        """Flask-Admin's page of rows, then :meth:`load_page` for what the columns need."""
        result = super().get_list(
            page, sort_column, sort_desc, search, filters, execute=execute, page_size=page_size
        )
        if execute:
            _, rows = result
            self.load_page(list(rows))
        return result

    def load_page(self, rows: list[Any]) -> None:
        """Load what a page's columns show for all its rows at once (none by default).

        Args:
            rows: The page's rows.
        """
