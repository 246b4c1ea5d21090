"""Modes and LLM models: what exists, what is the default, what a user may choose.

One place for the "is_default" rule: setting a default clears the flag on the others, in the
same flush (a partial unique index backs it up).
"""

from __future__ import annotations

from sqlalchemy import select, update

from shared.config import Config
from shared.db import db
from shared.models import LLMModel, Mode
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


def make_default(obj: Mode | LLMModel) -> None:
    """Make a mode or model the default, clearing the flag on all others of its kind.

    The others are cleared *before* the object is written, so the partial unique index never
    sees two defaults, whether the object is new, edited in a form, or already stored.

    Args:
        obj: The mode or model (new or persistent).
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
