"""Process-wide Flask extension objects, unbound until ``create_app`` calls ``init_app``.

Only extensions live here; ``Admin`` is built per app in ``web.admin.init_admin`` because it
keeps per-app state.
"""

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf import CSRFProtect

from shared.db import db

login_manager = LoginManager()
csrf = CSRFProtect()
migrate = Migrate()

__all__ = ["csrf", "db", "login_manager", "migrate"]
