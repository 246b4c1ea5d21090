"""Encryption of secrets at rest (API keys, the bot token) with keys derived from SECRET_KEY.

Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``, as a ``MultiFernet``: values are
encrypted with the key derived from ``SECRET_KEY`` and decrypted with it or, failing that, with
the key of each ``SECRET_KEY_FALLBACKS`` entry (the old secrets during a rotation, like Flask's
own session signing). ``flask rotate-secrets`` (:mod:`shared.services.secret_rotation`)
re-encrypts every stored value with the current key, after which the fallbacks can go. A value
no key can read makes :func:`decrypt` raise :class:`SecretUnreadable`; the admin must enter it
again.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, current_app

_HKDF_INFO = b"ai_router secrets at rest v1"


class SecretUnreadable(RuntimeError):
    """A stored secret cannot be decrypted (no configured key made it, or it is corrupt)."""


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


@dataclass(frozen=True)
class Keyring:
    """The ciphers of one app: the current key alone, and the current key with the fallbacks.

    Attributes:
        current: The cipher of ``SECRET_KEY``; every value is encrypted with it.
        any: ``MultiFernet`` of ``SECRET_KEY`` then each fallback, in order; decrypts what any
            of them made and re-encrypts with the current one (``rotate``).
    """

    current: Fernet
    any: MultiFernet


def keyring_for(secret_key: str, fallbacks: Iterable[str] = ()) -> Keyring:
    """Derive the ciphers for a ``SECRET_KEY`` and its fallbacks.

    Args:
        secret_key: The current application secret.
        fallbacks: Former secrets whose values must still be readable (``SECRET_KEY_FALLBACKS``).

    Returns:
        The keyring.
    """
    current = fernet_for(secret_key)
    older = [fernet_for(key) for key in fallbacks if key and key != secret_key]
    return Keyring(current=current, any=MultiFernet([current, *older]))


class Cipher:
    """Flask extension: the app's keyring, derived once from ``SECRET_KEY`` in init_app."""

    def init_app(self, app: Flask) -> None:
        """Derive the keyring for this app (eagerly, so no request pays for the HKDF).

        Args:
            app: The Flask app; its ``SECRET_KEY`` must be set, and ``SECRET_KEY_FALLBACKS``
                (a list, as Flask reads it for sessions) may name former secrets.
        """
        app.extensions["fernet"] = keyring_for(
            app.config["SECRET_KEY"], app.config.get("SECRET_KEY_FALLBACKS") or ()
        )


def _keyring() -> Keyring:
    """The keyring of the current app (bound by :meth:`Cipher.init_app`)."""
    return current_app.extensions["fernet"]


def _unreadable() -> SecretUnreadable:
    """The error for a token no configured key can read."""
    return SecretUnreadable(
        "stored secret cannot be decrypted (SECRET_KEY changed and the old one is not in "
        "SECRET_KEY_FALLBACKS?)"
    )


def encrypt(plaintext: str) -> str:
    """Encrypt a secret for storage, with the current key.

    Args:
        plaintext: The secret.

    Returns:
        A Fernet token (ASCII).
    """
    return _keyring().current.encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a stored secret with the current key or any fallback.

    Args:
        token: A value made by :func:`encrypt` (here or under a fallback key).

    Returns:
        The secret.

    Raises:
        SecretUnreadable: If no configured key made the token, or it is corrupt.
    """
    try:
        return _keyring().any.decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise _unreadable() from exc


def is_current(token: str) -> bool:
    """Whether a stored value was encrypted with the current key (so needs no rotation).

    Args:
        token: A stored value.

    Returns:
        True when the current key decrypts it.
    """
    try:
        _keyring().current.decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def rotate(token: str) -> str:
    """Re-encrypt a stored value with the current key, whichever configured key made it.

    Args:
        token: A stored value.

    Returns:
        A token of the same secret under the current key.

    Raises:
        SecretUnreadable: If no configured key made the token, or it is corrupt.
    """
    try:
        return _keyring().any.rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise _unreadable() from exc
