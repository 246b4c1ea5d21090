"""Flower's settings: the port that turns it on or off, the link, the login and its hint."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shared.config import Config, ConfigError
from shared.flower import (
    DEFAULT_PORT,
    LOOPBACK,
    MAX_TASKS,
    basic_auth,
    flower_environment,
    login_hint,
    password_file,
)


def _config(tmp_path: Path, **env: str) -> Config:
    base = {"INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "s"}
    return Config.from_env({**base, **env}, load_env_file=False)


def test_flower_runs_on_5555_unless_the_port_says_otherwise(tmp_path: Path) -> None:
    """Unset: 5555 and a link to it; 0 or set empty: off, no link; FLOWER_URL: that link."""
    default = _config(tmp_path)
    assert default.flower_port == 5555 and default.flower_url == "http://127.0.0.1:5555/"
    assert _config(tmp_path, FLOWER_PORT="5601").flower_url == "http://127.0.0.1:5601/"
    for off in ("0", "", "  "):
        config = _config(tmp_path, FLOWER_PORT=off)
        assert config.flower_port == 0 and config.flower_url is None
    proxied = _config(tmp_path, FLOWER_PORT="0", FLOWER_URL="https://ops.example.com/flower/")
    assert proxied.flower_url == "https://ops.example.com/flower/"
    with pytest.raises(ConfigError, match="FLOWER_PORT"):
        _config(tmp_path, FLOWER_PORT="70000")
    assert not default.flower_enable_events
    assert _config(tmp_path, FLOWER_ENABLE_EVENTS="true").flower_enable_events


def test_flower_basic_auth_wins(tmp_path: Path) -> None:
    """FLOWER_BASIC_AUTH is used as it is; the hint names it, not its password."""
    config = _config(
        tmp_path, FLOWER_BASIC_AUTH="ops:s3cret-one,bob:two", ADMIN_PASSWORD="admin-pass"
    )
    assert basic_auth(config) == "ops:s3cret-one,bob:two"
    assert "FLOWER_BASIC_AUTH" in login_hint(config) and "s3cret" not in login_hint(config)
    assert not password_file(config).exists()


def test_the_first_admins_credentials_come_next(tmp_path: Path) -> None:
    """With ADMIN_PASSWORD set, Flower takes the admin's login; nothing is generated."""
    config = _config(tmp_path, ADMIN_USERNAME="root", ADMIN_PASSWORD="admin-pass")
    assert basic_auth(config) == "root:admin-pass"
    assert login_hint(config) == "log in as root with ADMIN_PASSWORD"
    assert not password_file(config).exists()


def test_otherwise_a_password_is_generated_once(tmp_path: Path, caplog) -> None:
    """No configured login: a password in <instance>/flower_password (0600), kept across starts.

    A comma in the admin's credentials would split Flower's list of logins: they are skipped.
    """
    config = _config(tmp_path, ADMIN_PASSWORD="has,comma")
    with caplog.at_level("INFO"):
        first = basic_auth(config)
    user, password = first.split(":", 1)
    assert user == "admin" and len(password) >= 20
    path = password_file(config)
    assert path == tmp_path / "instance" / "flower_password"
    assert path.read_text() == password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert basic_auth(_config(tmp_path)) == first  # a second start reads the same one
    assert login_hint(config) == f"log in as admin; the password is in {path}"
    assert password not in caplog.text and "has,comma" not in caplog.text


def test_flower_environment(tmp_path: Path) -> None:
    """Flower's own variables: login, events off, loopback, the port, bounded task memory."""
    config = _config(tmp_path, ADMIN_PASSWORD="admin-pass", FLOWER_PORT="5601")
    assert flower_environment(config) == {
        "FLOWER_BASIC_AUTH": "admin:admin-pass",
        "FLOWER_ENABLE_EVENTS": "false",
        "FLOWER_ADDRESS": LOOPBACK,
        "FLOWER_PORT": "5601",
        "FLOWER_MAX_TASKS": str(MAX_TASKS),
    }
    off = flower_environment(_config(tmp_path, FLOWER_PORT="0", FLOWER_ENABLE_EVENTS="1"))
    assert off["FLOWER_PORT"] == str(DEFAULT_PORT) and off["FLOWER_ENABLE_EVENTS"] == "true"
