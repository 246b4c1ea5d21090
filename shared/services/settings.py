"""Runtime settings kept in the ``settings`` table (the admin's "Settings" page and API).

Known keys and their meaning are listed in :data:`SETTINGS`; secret ones are encrypted and are
never shown back (only whether they are set). Unknown keys are refused, so a typo cannot create a
setting nobody reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from shared.db import db
from shared.models import Setting
from shared.services.crypto import decrypt, encrypt


class SettingError(ValueError):
    """A setting key is unknown or its value is invalid."""


@dataclass(frozen=True)
class SettingSpec:
    """What a setting is.

    Attributes:
        secret: Stored encrypted; shown only as "set"/"not set".
        choices: Allowed values, when the setting is an enumeration.
        default: Value when unset.
    """

    secret: bool = False
    choices: tuple[str, ...] | None = None
    default: str | None = None


#: Values of the boolean settings (stored as text).
ON, OFF = "true", "false"

REGISTRATION_OPEN = "open"
REGISTRATION_APPROVAL = "approval"

SETTINGS: dict[str, SettingSpec] = {
    "telegram_bot_token": SettingSpec(secret=True),
    "webhook_url": SettingSpec(),
    "webhook_secret": SettingSpec(secret=True),
    "registration": SettingSpec(
        choices=(REGISTRATION_OPEN, REGISTRATION_APPROVAL), default=REGISTRATION_OPEN
    ),
    "default_daily_limit": SettingSpec(),
    # private-chat users see the answer grow (sendMessageDraft) while the LLM writes
    "streaming": SettingSpec(choices=(ON, OFF), default=ON),
}


def _spec(key: str) -> SettingSpec:
    try:
        return SETTINGS[key]
    except KeyError:
        raise SettingError(f"unknown setting {key!r}") from None


def get_setting(key: str) -> str | None:
    """Read a setting (decrypted if secret).

    Args:
        key: A key of :data:`SETTINGS`.

    Returns:
        The value, or the spec's default when unset.

    Raises:
        SettingError: On an unknown key.
        shared.services.crypto.SecretUnreadable: If a secret cannot be decrypted.
    """
    spec = _spec(key)
    row = db.session.get(Setting, key)
    if row is None or row.value is None:
        return spec.default
    return decrypt(row.value) if row.is_secret else row.value


def set_setting(key: str, value: str | None) -> None:
    """Write a setting (encrypting secrets); None or an empty string clears it.

    Args:
        key: A key of :data:`SETTINGS`.
        value: The new value.

    Raises:
        SettingError: On an unknown key or a value outside the allowed choices.
    """
    spec = _spec(key)
    value = value.strip() if isinstance(value, str) else value
    if value and spec.choices and value not in spec.choices:
        raise SettingError(f"{key} must be one of {', '.join(spec.choices)}")
    row = db.session.get(Setting, key) or Setting(key=key)
    row.is_secret = spec.secret
    row.value = (encrypt(value) if spec.secret else value) if value else None
    db.session.add(row)
    db.session.flush()


def is_set(key: str) -> bool:
    """Whether a setting has a stored value (without decrypting it).

    Args:
        key: A key of :data:`SETTINGS`.

    Returns:
        True when a value is stored.
    """
    _spec(key)
    return bool(db.session.scalar(select(Setting.value).where(Setting.key == key)))


def get_int_setting(key: str) -> int | None:
    """Read a setting that holds an id or a number.

    Args:
        key: A key of :data:`SETTINGS`.

    Returns:
        The integer, or None when unset or not a number.
    """
    value = get_setting(key)
    return int(value) if value and value.strip().lstrip("-").isdigit() else None
