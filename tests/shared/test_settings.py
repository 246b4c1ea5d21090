"""Runtime settings: secrets encrypted at rest, validation, the seeded catalog."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from shared.db import db
from shared.models import LLMModel, Mode, Setting
from shared.services.catalog import make_default, seed_catalog, set_api_key
from shared.services.crypto import SecretUnreadable, decrypt, encrypt, fernet_for
from shared.services.settings import SettingError, get_setting, is_set, set_setting


@pytest.fixture()
def ctx(app: Flask):
    """An app context; changes are rolled back."""
    with app.app_context():
        yield
        db.session.rollback()


def test_secret_settings_are_encrypted_at_rest(ctx) -> None:
    """The bot token is stored encrypted and read back decrypted."""
    set_setting("telegram_bot_token", "123:SECRET")
    raw = db.session.scalar(select(Setting.value).where(Setting.key == "telegram_bot_token"))
    assert "SECRET" not in raw
    assert get_setting("telegram_bot_token") == "123:SECRET"
    assert is_set("telegram_bot_token")
    set_setting("telegram_bot_token", "")
    assert not is_set("telegram_bot_token") and get_setting("telegram_bot_token") is None


def test_defaults_and_validation(ctx) -> None:
    """Registration defaults to open, accepts only its choices; unknown keys are refused."""
    assert get_setting("registration") == "open"
    set_setting("registration", "approval")
    assert get_setting("registration") == "approval"
    with pytest.raises(SettingError):
        set_setting("registration", "everyone")
    with pytest.raises(SettingError):
        get_setting("no_such_setting")


def test_the_voice_model_must_be_a_model_that_transcribes(ctx) -> None:
    """Stored as the plain id; text, unknown ids and models without speech-to-text refused."""
    ears = LLMModel(name="Ears", model="m", base_url="http://127.0.0.1:9/v1")
    deaf = LLMModel(name="Deaf", model="m", base_url="http://127.0.0.1:9/v1")
    ears.transcription_model = "whisper-1"
    db.session.add_all([ears, deaf])
    db.session.flush()
    assert get_setting("voice_model") is None
    set_setting("voice_model", f" 0{ears.id} ")
    assert get_setting("voice_model") == str(ears.id)
    for bad in ("ears", "-1", "0", "1.0", str(deaf.id), str(ears.id + deaf.id + 1000)):
        with pytest.raises(SettingError, match="^voice_model") as refused:
            set_setting("voice_model", bad)
        assert refused.value.key == "voice_model"
    assert get_setting("voice_model") == str(ears.id)
    set_setting("voice_model", "  ")
    assert get_setting("voice_model") is None


def test_a_changed_secret_key_makes_secrets_unreadable(ctx) -> None:
    """Decrypting with another SECRET_KEY fails loudly instead of returning garbage."""
    token = encrypt("value")
    assert decrypt(token) == "value"
    other = fernet_for("another-secret")
    with pytest.raises(SecretUnreadable):
        decrypt(other.encrypt(b"value").decode())


def test_seed_is_idempotent_and_has_the_two_modes(app: Flask, ctx) -> None:
    """First start seeds «Краткий ответ» (default) and «Развёрнутый ответ» once."""
    seed_catalog(app.config["AI_ROUTER"])
    seed_catalog(app.config["AI_ROUTER"])
    modes = db.session.scalars(select(Mode).order_by(Mode.position)).all()
    assert [m.name for m in modes] == ["Краткий ответ", "Развёрнутый ответ"]
    assert [m.is_default for m in modes] == [True, False]


def test_making_a_model_default_clears_the_others(ctx) -> None:
    """Only one model is the active default; its key is kept encrypted with the last four."""
    first = LLMModel(name="a", model="a", base_url="http://x/v1")
    second = LLMModel(name="b", model="b", base_url="http://x/v1")
    set_api_key(second, "sk-abcdef1234")
    db.session.add_all([first, second])
    make_default(first)
    make_default(second)
    assert (first.is_default, second.is_default) == (False, True)
    assert second.api_key_last4 == "1234"
    assert "abcdef" not in second.api_key_encrypted
    assert decrypt(second.api_key_encrypted) == "sk-abcdef1234"
