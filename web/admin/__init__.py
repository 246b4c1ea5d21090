"""The Flask-Admin UI at ``/admin``: built per app by :func:`init_admin`, one module per area.

Every view derives from ``web.admin.security.SecureModelView`` (or checks
``admin_logged_in``), so an anonymous request never sees data.
"""

from __future__ import annotations

from flask import Flask
from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme

from web.admin.audit import register_audit
from web.admin.index import SecureIndexView
from web.admin.pages import register_pages
from web.admin.views import register_views


def init_admin(app: Flask) -> Admin:
    """Build the admin for one app and register its views.

    Args:
        app: The Flask app.

    Returns:
        The ``Admin`` object (also in ``app.extensions["admin"]``).
    """
    admin = Admin(
        app,
        name="ai_router",
        url="/admin",
        index_view=SecureIndexView(url="/admin", name="Dashboard"),
        theme=Bootstrap4Theme(base_template="admin/my_master.html", swatch="default", fluid=True),
    )
    register_views(admin)
    register_pages(admin)
    register_audit(admin)
    return admin
