"""Flower, the Celery monitor: its login and its settings, wherever it runs.

``make run`` starts Flower beside the worker (``supervisor.child_commands``) unless
``FLOWER_PORT`` is 0: ``celery -A flower_app flower`` on 127.0.0.1. Flower reads its options
from ``FLOWER_<OPTION>`` environment variables as well as from its command line (the command
line wins); ``flower_app`` puts :func:`flower_environment` there before Flower reads it, so
``make run``, the compose file and a Flower started by hand behave alike:

- **Login** (HTTP basic auth, always on): ``FLOWER_BASIC_AUTH`` when set; else the first
  admin's ``ADMIN_USERNAME``/``ADMIN_PASSWORD`` when that password is configured; else
  ``ADMIN_USERNAME`` with a password generated once and kept in ``<instance>/flower_password``
  (mode 0600). No password is ever logged, passed on a command line or shown in the admin:
  :func:`login_hint` says where it comes from.
- **Task events** stay off unless ``FLOWER_ENABLE_EVENTS`` (Flower's default would switch them
  on in every worker): Flower shows the workers — their heartbeats, pool, queues, and the tasks
  each runs right now on its page — but no task history.
- **Address** 127.0.0.1 (the command line may say otherwise: the compose file binds the
  container's interface and publishes the port on the host's loopback), at most
  :data:`MAX_TASKS` tasks in memory when events are on.

This module imports nothing heavy: the supervisor and the web app use it too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from shared.config import Config, random_token

logger = logging.getLogger(__name__)

#: The generated password's file in the instance folder.
PASSWORD_FILE = "flower_password"
#: Flower's own default port, for a Flower started by hand while ``FLOWER_PORT`` is 0.
DEFAULT_PORT = 5555
#: Tasks Flower keeps in memory at most (its default, 100,000, could take hundreds of MiB).
MAX_TASKS = 10_000
#: Flower binds the loopback interface only: it is reached on the host or through a tunnel.
LOOPBACK = "127.0.0.1"


def password_file(config: Config) -> Path:
    """Where the generated password is kept.

    Args:
        config: The configuration (its instance folder).

    Returns:
        ``<instance>/flower_password``.
    """
    return config.instance_path / PASSWORD_FILE


def _admin_login(config: Config) -> str | None:
    """``user:password`` of the first admin, when its password is configured and usable.

    Flower splits its list of logins on commas, so credentials holding one cannot be used.
    """
    login = f"{config.admin_username}:{config.admin_password}" if config.admin_password else None
    return None if login is None or "," in login else login


def _generated_password(config: Config) -> str:
    """Return the generated password, creating it (once, readable by the owner only).

    Args:
        config: The configuration (its instance folder).

    Returns:
        The password.
    """
    path = password_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = _read_password(path)
    if existing:
        return existing
    # Written whole to a private temporary file, then linked into place: a reader never sees
    # an empty file, and of two processes starting at once the first link wins for both.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{random_token(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(random_token(18))
    try:
        if path.exists():  # an empty or truncated file from an older crash: replace it
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
            logger.info("generated Flower's password in %s (user %s)", path, config.admin_username)
    except FileExistsError:
        pass  # another process linked its password first: use that one
    finally:
        temporary.unlink(missing_ok=True)
    password = _read_password(path)
    if not password:
        raise RuntimeError(f"could not create Flower's password in {path}")
    return password


def _read_password(path: Path) -> str | None:
    """The stored password, or None when the file is missing or too short to be one."""
    try:
        password = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return password if len(password) >= 16 else None


def basic_auth(config: Config) -> str:
    """Flower's ``basic_auth`` option: the logins it accepts, ``user:password[,…]``.

    Args:
        config: The configuration.

    Returns:
        ``FLOWER_BASIC_AUTH``, else the first admin's credentials, else ``ADMIN_USERNAME`` with
        the generated password (created on first use).
    """
    if config.flower_basic_auth:
        return config.flower_basic_auth
    admin = _admin_login(config)
    if admin:
        return admin
    if config.admin_password:
        logger.warning("ADMIN_USERNAME/ADMIN_PASSWORD hold a comma: Flower gets its own password")
    return f"{config.admin_username}:{_generated_password(config)}"


def login_hint(config: Config) -> str:
    """How to log in to Flower, for the admin and the launcher's log: never the password.

    Args:
        config: The configuration.

    Returns:
        A short sentence naming the user and where the password is.
    """
    if config.flower_basic_auth:
        return "log in with a user:password of FLOWER_BASIC_AUTH"
    if _admin_login(config):
        return f"log in as {config.admin_username} with ADMIN_PASSWORD"
    return f"log in as {config.admin_username}; the password is in {password_file(config)}"


def flower_environment(config: Config) -> dict[str, str]:
    """Flower's own ``FLOWER_*`` variables for ai_router's configuration.

    Args:
        config: The configuration.

    Returns:
        ``FLOWER_BASIC_AUTH``, ``FLOWER_ENABLE_EVENTS``, ``FLOWER_ADDRESS``, ``FLOWER_PORT``
        (:data:`DEFAULT_PORT` when ``FLOWER_PORT`` is 0: ``make run`` starts none, one started
        by hand still needs a port) and ``FLOWER_MAX_TASKS``. The login is secret: pass it in
        the environment, never on a command line (which every user of the host can read).
    """
    return {
        "FLOWER_BASIC_AUTH": basic_auth(config),
        "FLOWER_ENABLE_EVENTS": "true" if config.flower_enable_events else "false",
        "FLOWER_ADDRESS": LOOPBACK,
        "FLOWER_PORT": str(config.flower_port or DEFAULT_PORT),
        "FLOWER_MAX_TASKS": str(MAX_TASKS),
    }
