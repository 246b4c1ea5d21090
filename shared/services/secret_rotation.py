"""Re-encrypt every secret at rest with the current ``SECRET_KEY`` (``flask rotate-secrets``).

The secrets at rest are the secret settings (``settings.is_secret``: the bot token, the webhook
secret) and the models' API keys (``llm_models.api_key_encrypted``). During a rotation every
process runs with the new ``SECRET_KEY`` and the old one in ``SECRET_KEY_FALLBACKS``, so values
made under either key are readable; :func:`rotate_secrets` then re-encrypts those made under a
fallback, after which the fallback can be removed. Values already under the current key are
left alone, so running it again changes nothing. Values no configured key can read are reported
and left as they are (the admin must enter them again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from shared.db import db
from shared.models import LLMModel, Setting
from shared.services.crypto import SecretUnreadable, is_current, rotate

logger = logging.getLogger(__name__)


@dataclass
class RotationReport:
    """What :func:`rotate_secrets` did. Labels name rows, never values.

    Attributes:
        rotated: Values re-encrypted with the current key (``setting telegram_bot_token``,
            ``model 3 (GPT)``).
        current: How many values were already under the current key (left unchanged).
        unreadable: Values no configured key can read (left unchanged).
    """

    rotated: list[str] = field(default_factory=list)
    current: int = 0
    unreadable: list[str] = field(default_factory=list)


def rotate_secrets() -> RotationReport:
    """Re-encrypt, with the current key, every stored secret a fallback key made.

    The rows are read ``FOR UPDATE`` (on PostgreSQL), so a value written meanwhile — the
    listener registering a webhook writes a fresh secret — is never overwritten with an older
    one. Flushes; the caller commits (and thereby releases the row locks).

    Returns:
        The report.
    """
    report = RotationReport()

    def rotated(label: str, token: str) -> str | None:
        if is_current(token):
            report.current += 1
            return None
        try:
            new = rotate(token)
        except SecretUnreadable:
            report.unreadable.append(label)
            return None
        report.rotated.append(label)
        return new

    settings = select(Setting).where(Setting.is_secret, Setting.value.is_not(None))
    for row in db.session.scalars(settings.order_by(Setting.key).with_for_update()):
        new = rotated(f"setting {row.key}", row.value)
        if new is not None:
            row.value = new
    models = select(LLMModel).where(LLMModel.api_key_encrypted.is_not(None))
    for model in db.session.scalars(models.order_by(LLMModel.id).with_for_update()):
        new = rotated(f"model {model.id} ({model.name})", model.api_key_encrypted)
        if new is not None:
            model.api_key_encrypted = new
    db.session.flush()
    logger.info(
        "secret rotation: %d re-encrypted, %d already current, %d unreadable",
        len(report.rotated), report.current, len(report.unreadable),
    )  # fmt: skip
    return report
