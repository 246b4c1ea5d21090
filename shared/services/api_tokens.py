"""Bearer tokens of the admin JSON API: ``ADMIN_API_TOKEN`` and tokens issued in the admin.

Issued tokens are shown once and stored only as a SHA-256 hash with a short prefix for display.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import current_app
from sqlalchemy import select

from shared.db import db
from shared.models import ApiToken
from shared.models.types import utcnow

TOKEN_PREFIX = "air_"
#: Who a request authenticated with ``ADMIN_API_TOKEN`` is (issued tokens go by their name).
ENV_TOKEN_OWNER = "ADMIN_API_TOKEN"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(name: str, created_by_id: int | None = None) -> tuple[ApiToken, str]:
    """Create a token.

    Args:
        name: What the token is for (shown in the admin).
        created_by_id: The admin who issued it.

    Returns:
        The row and the plaintext token, which is never retrievable again.
    """
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name.strip() or "token",
        token_hash=_hash(plaintext),
        prefix=plaintext[:10],
        created_by_id=created_by_id,
    )
    db.session.add(row)
    db.session.flush()
    return row, plaintext


def token_owner(token: str) -> str | None:
    """Check a bearer token and name who uses it (the audit log's actor).

    Args:
        token: What came after ``Bearer``.

    Returns:
        ``"ADMIN_API_TOKEN"`` for the configured token, ``"token #<id> <name>"`` for an issued
        one (names are free text and may repeat or look like a login: the id makes the actor
        unambiguous), or None when the token is not valid (an issued token's
        ``last_used_at`` is updated, unflushed).
    """
    if not token:
        return None
    configured = current_app.config["AI_ROUTER"].admin_api_token
    if configured and hmac.compare_digest(token.encode(), configured.encode()):
        return ENV_TOKEN_OWNER
    row = db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash == _hash(token), ApiToken.revoked_at.is_(None))
    )
    if row is None:
        return None
    row.last_used_at = utcnow()
    return f"token #{row.id} {row.name}"


def revoke_token(token_id: int) -> bool:
    """Revoke an issued token.

    Args:
        token_id: The row id.

    Returns:
        False if there is no such token.
    """
    row = db.session.get(ApiToken, token_id)
    if row is None:
        return False
    row.revoked_at = row.revoked_at or utcnow()
    db.session.flush()
    return True
