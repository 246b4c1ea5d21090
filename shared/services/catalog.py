"""Modes and LLM models: what exists, what is the default, what a user may choose.

The rules of the catalog live here, for the admin UI and the JSON API alike:

- the single default: setting a default clears the flag on the others, in the same flush (a
  partial unique index backs it up) — :func:`set_default_flag`, :func:`make_default`;
- a model cannot be its own fallback, and its fallback must exist — :func:`check_fallback`;
- names are unique — :func:`save_model` / :func:`save_mode` raise :class:`NameTaken`;
- a model's speech-to-text model is a trimmed name of at most
  :data:`MAX_TRANSCRIPTION_MODEL` characters, or None (no voice): blank means None —
  :func:`transcription_model`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from shared.config import Config
from shared.db import db
from shared.models import LLMModel, Mode, Plan
from shared.services.crypto import encrypt

#: Seeded on first start. The first one is the default.
DEFAULT_MODES: tuple[tuple[str, str], ...] = (
    (
        "Краткий ответ",
        "Отвечай кратко и по существу: одно-три предложения или короткий список. "
        "Отвечай на языке пользователя. Answer briefly, in the user's language.",
    ),
    (
        "Развёрнутый ответ",
        "Отвечай развёрнуто и подробно: объясняй ход рассуждений, приводи примеры и, где уместно, "
        "код. Используй Markdown для структуры. Отвечай на языке пользователя.",
    ),
)


def list_modes() -> list[Mode]:
    """All modes in display order."""
    return list(db.session.scalars(select(Mode).order_by(Mode.position, Mode.id)))


def default_mode() -> Mode | None:
    """The default mode, else the first one, else None."""
    mode = db.session.scalar(select(Mode).where(Mode.is_default))
    return mode or db.session.scalar(select(Mode).order_by(Mode.position, Mode.id).limit(1))


def list_models(*, enabled_only: bool = False) -> list[LLMModel]:
    """LLM models by name.

    Args:
        enabled_only: Only models users may be routed to.

    Returns:
        The models.
    """
    query = select(LLMModel).order_by(LLMModel.name)
    if enabled_only:
        query = query.where(LLMModel.enabled)
    return list(db.session.scalars(query))


def default_model() -> LLMModel | None:
    """The active (default) model if enabled, else the first enabled model, else None."""
    model = db.session.scalar(select(LLMModel).where(LLMModel.is_default, LLMModel.enabled))
    return model or db.session.scalar(
        select(LLMModel).where(LLMModel.enabled).order_by(LLMModel.id).limit(1)
    )


def make_default(obj: Mode | LLMModel | Plan) -> None:
    """Make a mode, model or plan the default, clearing the flag on all others of its kind.

    The others are cleared *before* the object is written, so the partial unique index never
    sees two defaults, whether the object is new, edited in a form, or already stored.

    Args:
        obj: The mode, model or plan (new or persistent).
    """
    kind = type(obj)
    with db.session.no_autoflush:
        clear = update(kind).where(kind.is_default).values(is_default=False)
        if obj.id is not None:
            clear = clear.where(kind.id != obj.id)
        db.session.execute(clear)
    obj.is_default = True
    db.session.add(obj)
    db.session.flush()


def set_default_flag(obj: Mode | LLMModel, is_default: bool) -> None:
    """Apply a ticked or unticked «default» box: the one rule of the ``is_default`` flags.

    Ticked, the object becomes THE default of its kind (:func:`make_default`); unticked, only
    its own flag is cleared (there may then be no explicit default: see :func:`default_mode`,
    :func:`default_model` for the fallback).

    Args:
        obj: The mode or model (new or persistent).
        is_default: The wanted flag.
    """
    if is_default:
        make_default(obj)
    else:
        obj.is_default = False


class CatalogError(ValueError):
    """A change to a model or mode breaks a rule of the catalog."""


class SelfFallback(CatalogError):
    """A model was given itself as its fallback."""


class UnknownFallback(CatalogError, LookupError):
    """The fallback model does not exist."""


class NameTaken(CatalogError):
    """Another model or mode has this name; the caller must roll the session back."""


class ModelInUse(CatalogError):
    """The model is the only model a plan allows: deleting it would open the plan to all."""


class InvalidModelValue(CatalogError):
    """A model's value breaks a rule the form or the schema should have caught first."""


#: Longest speech-to-text model name (the column's length).
MAX_TRANSCRIPTION_MODEL = 128


def transcription_model(value: str | None) -> str | None:
    """A model's speech-to-text model as stored: trimmed, and None when blank (no voice).

    Args:
        value: The typed or sent name (None: no voice).

    Returns:
        The name without surrounding whitespace, or None.

    Raises:
        InvalidModelValue: If it is not text, or longer than :data:`MAX_TRANSCRIPTION_MODEL`.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidModelValue("transcription_model must be text")
    value = value.strip()
    if len(value) > MAX_TRANSCRIPTION_MODEL:
        raise InvalidModelValue(
            f"transcription_model is longer than {MAX_TRANSCRIPTION_MODEL} characters"
        )
    return value or None


def check_deletable(model: LLMModel) -> None:
    """Refuse to delete the only model a plan lists (an empty list means every model).

    Args:
        model: The model about to be deleted.

    Raises:
        ModelInUse: Naming the plans that list only this model.
    """
    only = [
        plan.name
        for plan in db.session.scalars(select(Plan).where(Plan.models.any(LLMModel.id == model.id)))
        if len(plan.models) == 1
    ]
    if only:
        raise ModelInUse(
            f"{model.name} is the only model of plan(s) {', '.join(sorted(only))}: "
            "give them another model first (an empty list would allow every model)"
        )


def check_fallback(model: LLMModel, fallback_id: int | None) -> LLMModel | None:
    """Check a model's fallback: it must exist and must not be the model itself.

    Args:
        model: The model being saved (new or persistent).
        fallback_id: The chosen fallback's id, or None for no fallback.

    Returns:
        The fallback model, or None.

    Raises:
        SelfFallback: If the fallback is the model itself.
        UnknownFallback: If no model has this id.
    """
    if fallback_id is None:
        return None
    if model.id is not None and fallback_id == model.id:
        raise SelfFallback("a model cannot be its own fallback")
    fallback = db.session.get(LLMModel, fallback_id)
    if fallback is None:
        raise UnknownFallback("fallback model not found")
    return fallback


_Item = TypeVar("_Item", Mode, LLMModel)


def _save(obj: _Item, values: dict[str, Any]) -> _Item:
    """Write validated values to a mode or model, then apply its «default» box."""
    is_default = values.pop("is_default", None)
    for key, value in values.items():
        setattr(obj, key, value)
    db.session.add(obj)
    try:
        db.session.flush()
    except IntegrityError as exc:
        kind = "model" if isinstance(obj, LLMModel) else "mode"
        raise NameTaken(f"a {kind} with this name exists") from exc
    if is_default is not None:
        set_default_flag(obj, is_default)
    db.session.flush()
    return obj


def save_model(model: LLMModel, values: dict[str, Any]) -> LLMModel:
    """Create or change an LLM model from validated values, keeping every catalog rule.

    Args:
        model: A new or persistent model.
        values: Columns to set, plus ``api_key`` (stored encrypted; None/empty removes it)
            and ``is_default`` (True makes it the active model). ``transcription_model`` goes
            through :func:`transcription_model` (blank: None).

    Returns:
        The model, flushed.

    Raises:
        SelfFallback: If ``fallback_model_id`` is the model itself.
        UnknownFallback: If ``fallback_model_id`` names no model.
        NameTaken: If another model has the name.
        InvalidModelValue: If ``transcription_model`` is too long.
    """
    values = dict(values)
    if "transcription_model" in values:
        values["transcription_model"] = transcription_model(values["transcription_model"])
    if "api_key" in values:
        set_api_key(model, values.pop("api_key"))
    check_fallback(model, values.get("fallback_model_id"))
    return _save(model, values)


def save_mode(mode: Mode, values: dict[str, Any]) -> Mode:
    """Create or change a mode from validated values (``is_default`` True makes it the default).

    Args:
        mode: A new or persistent mode.
        values: Columns to set, plus ``is_default``.

    Returns:
        The mode, flushed.

    Raises:
        NameTaken: If another mode has the name.
    """
    return _save(mode, dict(values))


def set_api_key(model: LLMModel, api_key: str | None) -> None:
    """Store a model's API key encrypted, keeping only its last four characters in clear.

    Args:
        model: The model.
        api_key: The key; None or empty removes it.
    """
    api_key = (api_key or "").strip()
    model.api_key_encrypted = encrypt(api_key) if api_key else None
    model.api_key_last4 = api_key[-4:] if api_key else None


def seed_catalog(config: Config) -> None:
    """Create the default modes on first start, and a default model from ``OPENAI_*`` if set.

    Idempotent: modes are seeded only when there are none; the model only when no model exists.

    Args:
        config: The configuration (``openai_api_key``, ``openai_base_url``, ``openai_model``).
    """
    if db.session.scalar(select(Mode.id).limit(1)) is None:
        for position, (name, prompt) in enumerate(DEFAULT_MODES):
            db.session.add(
                Mode(name=name, system_prompt=prompt, position=position, is_default=position == 0)
            )
    if config.openai_api_key and db.session.scalar(select(LLMModel.id).limit(1)) is None:
        model = LLMModel(
            name=config.openai_model,
            model=config.openai_model,
            base_url=config.openai_base_url,
            enabled=True,
            is_default=True,
        )
        set_api_key(model, config.openai_api_key)
        db.session.add(model)
    db.session.flush()
