"""Configuration: defaults, production rules, the dev secret, the embedded Redis URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import Config, ConfigError
from shared.redis import celery_url


def test_defaults_point_at_the_instance_folder(tmp_path: Path) -> None:
    """A fresh environment means SQLite and embedded Redis under the instance folder."""
    config = Config.from_env({"INSTANCE_PATH": str(tmp_path)})
    assert config.database_url == f"sqlite:///{tmp_path / 'ai_router.db'}"
    assert config.redis_embedded
    assert config.redis_url == f"unix://{tmp_path / 'redis.sock'}"
    assert config.telegram_api_url == "https://api.telegram.org"
    assert config.port == 5000
    assert config.admin_username == "admin"
    assert config.admin_password is None
    assert not config.is_production


def test_environment_values_win(tmp_path: Path) -> None:
    """Every contract variable is read, trailing slashes of URLs are dropped."""
    config = Config.from_env(
        {
            "INSTANCE_PATH": str(tmp_path),
            "SECRET_KEY": "s3cret",
            "DATABASE_URL": "postgresql://u@h/db",
            "REDIS_URL": "redis://127.0.0.1:6379/3",
            "TELEGRAM_API_URL": "http://127.0.0.1:8081/",
            "TELEGRAM_BOT_TOKEN": "1:abc",
            "PUBLIC_URL": "https://bot.example.com/",
            "ADMIN_USERNAME": "root",
            "ADMIN_PASSWORD": "pw",
            "ADMIN_API_TOKEN": "tok",
            "PORT": "8080",
        }
    )
    assert config.secret_key == "s3cret"
    assert config.database_url == "postgresql://u@h/db"
    assert config.redis_url == "redis://127.0.0.1:6379/3"
    assert not config.redis_embedded
    assert config.telegram_api_url == "http://127.0.0.1:8081"
    assert config.telegram_bot_token == "1:abc"
    assert config.public_url == "https://bot.example.com"
    assert (config.admin_username, config.admin_password) == ("root", "pw")
    assert config.admin_api_token == "tok"
    assert config.port == 8080


@pytest.mark.parametrize("variable", ["AI_ROUTER_ENV", "FLASK_ENV"])
def test_production_requires_a_secret_key(tmp_path: Path, variable: str) -> None:
    """Production refuses to start without SECRET_KEY instead of inventing one."""
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Config.from_env({"INSTANCE_PATH": str(tmp_path), variable: "production"})
    assert not (tmp_path / "secret_key").exists()


def test_development_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    """The dev secret survives restarts, so sessions and encrypted settings stay valid."""
    first = Config.from_env({"INSTANCE_PATH": str(tmp_path)}).secret_key
    second = Config.from_env({"INSTANCE_PATH": str(tmp_path)}).secret_key
    assert first == second
    assert len(first) >= 32
    assert (tmp_path / "secret_key").read_text().strip() == first


def test_malformed_integer_is_reported(tmp_path: Path) -> None:
    """A typo in PORT fails fast with the variable's name."""
    with pytest.raises(ConfigError, match="PORT"):
        Config.from_env({"INSTANCE_PATH": str(tmp_path), "PORT": "80a"})


def test_celery_urls() -> None:
    """Unix-socket URLs are translated to kombu's scheme; TCP URLs pass through."""
    assert celery_url("unix:///x/redis.sock") == "redis+socket:///x/redis.sock"
    assert celery_url("redis://h:1/2") == "redis://h:1/2"


def test_bot_tokens_are_redacted_from_logs(caplog) -> None:
    """A Telegram error carrying the token in its URL never shows the secret part."""
    import logging

    from shared.logging import _RedactingFormatter, redact

    url = "ConnectionError: url: /bot123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getMe"
    assert redact(url) == "ConnectionError: url: /bot123456:***/getMe"
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s", (url,), None)
    assert "AAHdq" not in _RedactingFormatter("%(message)s").format(record)


def test_cpu_slots_follow_the_database() -> None:
    """Four slots on SQLite (steps are CPU only), eight with a database server; 0 turns off."""
    base = {"SECRET_KEY": "x"}
    assert Config.from_env(base, load_env_file=False).worker_cpu_slots == 4
    server = {**base, "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test"}
    assert Config.from_env(server, load_env_file=False).worker_cpu_slots == 8
    assert (
        Config.from_env({**server, "WORKER_CPU_SLOTS": "0"}, load_env_file=False).worker_cpu_slots
        == 0
    )
    assert (
        Config.from_env({**base, "WORKER_CPU_SLOTS": "-3"}, load_env_file=False).worker_cpu_slots
        == 0
    )
