"""Runtime settings kept in the ``settings`` table (the admin's "Settings" page and API).

Known keys and their meaning are listed in :data:`SETTINGS`; secret ones are encrypted and are
never shown back (only whether they are set). Unknown keys are refused, so a typo cannot create a
setting nobody reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from shared.db import db
from shared.models import LLMModel, Setting
from shared.models.types import row_id
from shared.services.crypto import decrypt, encrypt


class SettingError(ValueError):
    """A setting key is unknown or its value is invalid.

    Args:
        message: For people; starts with the key it is about.
        key: The setting refused (None for an unknown key), so a form can put the message on
            its field.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class SettingSpec:
    """What a setting is.

    Attributes:
        secret: Stored encrypted; shown only as "set"/"not set".
        choices: Allowed values, when the setting is an enumeration.
        default: Value when unset.
        check: Validates a non-empty value and returns it as stored (raises
            :class:`SettingError`); for values that name a row.
    """

    secret: bool = False
    choices: tuple[str, ...] | None = None
    default: str | None = None
    check: Callable[[str], str] | None = None


#: Values of the boolean settings (stored as text).
ON, OFF = "true", "false"

REGISTRATION_OPEN = "open"
REGISTRATION_APPROVAL = "approval"


def check_voice_model(value: str) -> str:
    """Validate the ``voice_model`` setting: the id of a model that can transcribe.

    Only checked when written: a model deleted, or whose ``transcription_model`` is cleared,
    later simply stops transcribing for others (the pipeline checks at use).

    Args:
        value: The model's id as text (not empty).

    Returns:
        The id as stored (decimal text, no leading zeros).

    Raises:
        SettingError: If it is not an id, names no model, or a model without a
            ``transcription_model``.
    """
    model_id = row_id(value)
    if model_id is None:
        raise SettingError("voice_model must be a model id", key="voice_model")
    model = db.session.get(LLMModel, model_id)
    if model is None:
        raise SettingError(f"voice_model: no such object (model {model_id})", key="voice_model")
    if not (model.transcription_model or "").strip():
        raise SettingError(
            f"voice_model: model {model.name!r} has no transcription model", key="voice_model"
        )
    return str(model_id)


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
    # the model id (text) whose endpoint transcribes voice and audio for users whose own model
    # has no transcription_model; unset: only a model's own transcription model is used
    "voice_model": SettingSpec(check=check_voice_model),
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
        SettingError: On an unknown key, a value outside the allowed choices, or one its spec's
            ``check`` refuses (``voice_model``: not a model with a transcription model).
    """
    spec = _spec(key)
    value = value.strip() if isinstance(value, str) else value
    if value and spec.choices and value not in spec.choices:
        raise SettingError(f"{key} must be one of {', '.join(spec.choices)}", key=key)
    if value and spec.check is not None:
        value = spec.check(value)
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
