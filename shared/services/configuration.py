"""The settings as the admin sees and changes them (one rule set for the UI and the JSON API)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from shared.db import db
from shared.models import LLMModel, Mode
from shared.services.catalog import make_default
from shared.services.plans import default_plan
from shared.services.settings import OFF, ON, get_int_setting, get_setting, is_set, set_setting


class UnknownObject(ValueError):
    """A default model or mode id that does not exist."""


def current_settings() -> dict[str, Any]:
    """The settings, with the bot token only as set / not set.

    Returns:
        ``telegram_bot_token_set``, ``webhook_url``, ``registration``, ``default_model_id``,
        ``default_mode_id``, ``default_daily_limit`` (the default plan's requests per day:
        the setting of before plans), ``streaming``, ``voice_model`` (the id of the model that
        transcribes for models without a transcription model, as stored: it may since have
        been deleted or lost its transcription model, and then does not apply; None: unset).
    """
    model = db.session.scalar(select(LLMModel).where(LLMModel.is_default))
    mode = db.session.scalar(select(Mode).where(Mode.is_default))
    plan = default_plan()
    return {
        "telegram_bot_token_set": is_set("telegram_bot_token"),
        "webhook_url": get_setting("webhook_url"),
        "registration": get_setting("registration"),
        "default_model_id": model.id if model else None,
        "default_mode_id": mode.id if mode else None,
        # kept for API clients of before plans: the default plan's requests per day
        "default_daily_limit": plan.requests_per_day if plan else None,
        "streaming": get_setting("streaming") == ON,
        "voice_model": get_int_setting("voice_model"),
    }


def update_settings(values: dict[str, Any]) -> None:
    """Apply validated changes; the default model/mode ids move the ``is_default`` flag.

    Args:
        values: Keys of :func:`current_settings` (``telegram_bot_token`` instead of ``…_set``);
            None clears a value.

    Raises:
        UnknownObject: If a default model or mode id does not exist.
        shared.services.settings.SettingError: On an invalid setting value (``voice_model``:
            not the id of a model with a transcription model).
    """
    values = dict(values)
    for key, kind in (("default_model_id", LLMModel), ("default_mode_id", Mode)):
        if key not in values:
            continue
        object_id = values.pop(key)
        if object_id is None:
            db.session.execute(update(kind).where(kind.is_default).values(is_default=False))
            continue
        obj = db.session.get(kind, object_id)
        if obj is None:
            raise UnknownObject(f"{key}: no such object")
        make_default(obj)
    if "default_daily_limit" in values:  # an alias of the default plan's requests per day
        limit, plan = values.pop("default_daily_limit"), default_plan()
        if plan is not None:
            plan.requests_per_day = limit
    for key, value in values.items():
        if isinstance(value, bool):
            value = ON if value else OFF
        set_setting(key, None if value is None else str(value))
    db.session.flush()
