"""Process-wide Flask extension objects, unbound until ``create_app`` calls ``init_app``.

Only extensions live here; ``Admin`` is built per app in ``web.admin.init_admin`` because it
keeps per-app state, and Flask-Migrate is bound only when migrations run (``shared.migrations``).
"""

from flask_login import LoginManager
from flask_wtf import CSRFProtect

from shared.db import db

login_manager = LoginManager()
csrf = CSRFProtect()

__all__ = ["csrf", "db", "login_manager"]
