"""Encryption of secrets at rest (API keys, the bot token) with a key derived from SECRET_KEY.

Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``. Changing ``SECRET_KEY`` makes stored
secrets unreadable: :func:`decrypt` then raises :class:`SecretUnreadable` and the admin must
enter them again.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, current_app

_HKDF_INFO = b"ai_router secrets at rest v1"


class SecretUnreadable(RuntimeError):
    """A stored secret cannot be decrypted (``SECRET_KEY`` changed, or the value is corrupt)."""


def fernet_for(secret_key: str) -> Fernet:
    """Derive the Fernet cipher for a ``SECRET_KEY``.

    Args:
        secret_key: The application secret.

    Returns:
        The cipher (HKDF-SHA256 of the secret, so the key is never the secret itself).
    """
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


class Cipher:
    """Flask extension: the app's Fernet cipher, derived once from ``SECRET_KEY`` in init_app."""

    def init_app(self, app: Flask) -> None:
        """Derive the cipher for this app (eagerly, so no request pays for the HKDF).

        Args:
            app: The Flask app; its ``SECRET_KEY`` must be set.
        """
        app.extensions["fernet"] = fernet_for(app.config["SECRET_KEY"])


def _fernet() -> Fernet:
    """The cipher of the current app (bound by :meth:`Cipher.init_app`)."""
    return current_app.extensions["fernet"]


def encrypt(plaintext: str) -> str:
    """Encrypt a secret for storage.

    Args:
        plaintext: The secret.

    Returns:
        A Fernet token (ASCII).
    """
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a stored secret.

    Args:
        token: A value made by :func:`encrypt`.

    Returns:
        The secret.

    Raises:
        SecretUnreadable: If the token was made with another key or is corrupt.
    """
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable(
            "stored secret cannot be decrypted (was SECRET_KEY changed?)"
        ) from exc
