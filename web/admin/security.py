"""Access control shared by every admin view: only logged-in admins see anything."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import redirect, request, url_for
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla import filters as sqla_filters
from flask_admin.model import filters, typefmt
from flask_login import current_user
from werkzeug.wrappers import Response

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


class SecureModelView(ModelView):
    """Base of every model view: login required, CSRF on forms (Flask-WTF), no raw exceptions."""

    form_base_class = AdminModelForm
    filter_converter = UtcFilterConverter()
    column_type_formatters = {
        **typefmt.BASE_FORMATTERS,
        datetime: lambda view, value, name: value.strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    page_size = 50
    can_view_details = True

    def is_accessible(self) -> bool:
        """Only logged-in admins may use the view."""
        return admin_logged_in()

    def inaccessible_callback(self, name: str, **kwargs: object) -> Response:
        """Send anonymous visitors to the login page.

        Args:
            name: The view's endpoint name (unused).
            **kwargs: View arguments (unused).

        Returns:
            A redirect to ``/admin/login/``.
        """
        return redirect_to_login()
