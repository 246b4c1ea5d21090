"""Catalog rules (``shared.services.catalog``): single default, fallback, unique names."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from shared.db import db
from shared.models import LLMModel, Mode
from shared.services.catalog import (
    InvalidModelValue,
    NameTaken,
    SelfFallback,
    UnknownFallback,
    save_mode,
    save_model,
    set_default_flag,
    transcription_model,
)
from shared.services.crypto import decrypt

ENDPOINT = {"model": "m", "base_url": "http://127.0.0.1:9/v1"}


@pytest.fixture()
def ctx(app: Flask):
    """An app context on the real database; changes are rolled back."""
    with app.app_context():
        yield
        db.session.rollback()


def _defaults(kind: type) -> list[str]:
    return list(db.session.scalars(select(kind.name).where(kind.is_default).order_by(kind.name)))


@pytest.mark.parametrize("kind", [LLMModel, Mode])
def test_ticking_default_moves_the_flag_unticking_clears_only_its_own(ctx, kind: type) -> None:
    """One default per kind: ticking one clears the others; unticking leaves no explicit one."""
    extra = ENDPOINT if kind is LLMModel else {}
    first, second = kind(name="first", **extra), kind(name="second", **extra)
    db.session.add_all([first, second])
    set_default_flag(first, True)
    assert _defaults(kind) == ["first"]
    set_default_flag(second, True)
    assert _defaults(kind) == ["second"]
    set_default_flag(first, False)
    assert _defaults(kind) == ["second"], "unticking another row changes nothing"
    set_default_flag(second, False)
    db.session.flush()
    assert _defaults(kind) == []


def test_save_model_keeps_the_key_encrypted_and_the_default_single(ctx) -> None:
    """Saving with ``is_default`` makes it the active model; the key is stored encrypted."""
    old = save_model(LLMModel(), {"name": "old", **ENDPOINT, "is_default": True})
    new = save_model(
        LLMModel(), {"name": "new", **ENDPOINT, "api_key": "sk-new-1234", "is_default": True}
    )
    assert (old.is_default, new.is_default) == (False, True)
    assert new.api_key_last4 == "1234" and decrypt(new.api_key_encrypted) == "sk-new-1234"
    save_model(new, {"api_key": None})
    assert new.api_key_encrypted is None and new.api_key_last4 is None


def test_a_model_cannot_be_its_own_fallback(ctx) -> None:
    """Self-fallback and unknown fallbacks are refused; another model is accepted."""
    main = save_model(LLMModel(), {"name": "main", **ENDPOINT})
    spare = save_model(LLMModel(), {"name": "spare", **ENDPOINT})
    with pytest.raises(SelfFallback):
        save_model(main, {"fallback_model_id": main.id})
    with pytest.raises(UnknownFallback):
        save_model(main, {"fallback_model_id": spare.id + 1000})
    save_model(main, {"fallback_model_id": spare.id})
    assert main.fallback is spare


@pytest.mark.parametrize("kind", [LLMModel, Mode])
def test_names_are_unique(app: Flask, kind: type) -> None:
    """A second model or mode with a taken name raises ``NameTaken`` (the caller rolls back)."""
    save = save_model if kind is LLMModel else save_mode
    extra = ENDPOINT if kind is LLMModel else {}
    with app.app_context():
        save(kind(), {"name": "same", **extra})
        db.session.commit()
        with pytest.raises(NameTaken):
            save(kind(), {"name": "same", **extra})
        db.session.rollback()
        assert db.session.scalars(select(kind.name)).all() == ["same"]


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        (" whisper-1\n", "whisper-1"),
        ("w" * 128, "w" * 128),
    ],
)
def test_the_transcription_model_is_trimmed_and_blank_means_none(
    ctx, sent: str | None, stored: str | None
) -> None:
    """Saved through ``save_model`` (the API) and ``transcription_model`` (the form) alike."""
    assert transcription_model(sent) == stored
    model = save_model(LLMModel(), {"name": "voice", **ENDPOINT, "transcription_model": sent})
    assert model.transcription_model == stored and model.vision is False


@pytest.mark.parametrize("sent", ["w" * 129, 5, b"whisper"])
def test_a_long_or_non_text_transcription_model_is_refused(ctx, sent: object) -> None:
    """Longer than the column, or not text: ``InvalidModelValue``, nothing saved."""
    model = save_model(LLMModel(), {"name": "voice", **ENDPOINT, "transcription_model": "a"})
    with pytest.raises(InvalidModelValue):
        save_model(model, {"transcription_model": sent})
    assert model.transcription_model == "a"
