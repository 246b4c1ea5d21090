"""Access control shared by every admin view: only logged-in admins see anything."""

from __future__ import annotations

from flask import redirect, request, url_for
from flask_admin.contrib.sqla import ModelView
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response


def admin_logged_in() -> bool:
    """Whether the current request comes from a logged-in, active admin."""
    return bool(current_user.is_authenticated and current_user.is_active)


def redirect_to_login() -> Response:
    """Redirect an anonymous request to the login page, remembering where it was going."""
    return redirect(url_for("admin.login_view", next=request.full_path.rstrip("?")))


class SecureModelView(ModelView):
    """Base of every model view: login required, CSRF on forms (Flask-WTF), no raw exceptions."""

    form_base_class = FlaskForm
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
