"""Admin accounts: the first account on start, and password checks for the login form."""

from __future__ import annotations

import logging
import secrets

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from shared.db import db
from shared.models import AdminUser
from shared.models.types import utcnow

logger = logging.getLogger(__name__)

#: A hash to compare against when the username is unknown, so both cases take the same time.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def ensure_first_admin(username: str, password: str | None) -> str | None:
    """Create the first admin account when there is none yet.

    Args:
        username: Name of the account to create.
        password: Its password; when None a strong one is generated.

    Returns:
        The generated password (to be shown once), or None when nothing was generated (an
        account existed already, or ``password`` was given).
    """
    if db.session.scalar(select(func.count()).select_from(AdminUser)):
        return None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    db.session.add(AdminUser(username=username, password_hash=generate_password_hash(password)))
    db.session.flush()
    logger.info("created the first admin account username=%s", username)
    return generated


def authenticate(username: str, password: str) -> AdminUser | None:
    """Check a username and password.

    Args:
        username: As typed on the login form.
        password: As typed on the login form.

    Returns:
        The active account on success (its ``last_login_at`` updated), otherwise None.
    """
    admin = db.session.scalar(select(AdminUser).where(AdminUser.username == username.strip()))
    if admin is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not admin.is_active or not check_password_hash(admin.password_hash, password):
        return None
    admin.last_login_at = utcnow()
    return admin
