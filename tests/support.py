"""Helpers shared by the tests: free ports, waiting for conditions, child processes."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import create_engine, make_url, text

T = TypeVar("T")

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "test-admin-password"
ADMIN_API_TOKEN = "test-api-token"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """Poll ``condition`` until it returns something truthy.

    Args:
        condition: Called repeatedly; exceptions count as "not yet".
        timeout: Seconds before giving up (a bound against hangs, not a performance claim).
        interval: Seconds between polls.
        what: Description for the failure message.

    Returns:
        The first truthy value.

    Raises:
        AssertionError: If the condition never held; includes the last exception, if any.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # "not ready yet" takes many forms
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what or condition!r}; last error: {last_error!r}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Terminate a child process and reap it, killing it if it does not stop.

    Args:
        process: The child.
        timeout: Seconds to wait after SIGTERM.
    """
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def app_env(tmp_root: Path, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment a test configuration is read from (hermetic: no ``.env``, no os.environ).

    Args:
        tmp_root: Session folder (holds the instance folder).
        database_url: Database URL.
        redis_url: Redis URL.
        **extra: More variables.

    Returns:
        The mapping for ``Config.from_env``.
    """
    env = {
        "AI_ROUTER_ENV": "testing",
        "INSTANCE_PATH": str(tmp_root / "instance"),
        "SECRET_KEY": "test-secret-key",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "ADMIN_USERNAME": ADMIN_USERNAME,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "ADMIN_API_TOKEN": ADMIN_API_TOKEN,
        "WORKER_CONCURRENCY": "4",
        # Quick retries: the retry logic is exercised, the suite does not sleep for minutes.
        "LLM_MAX_ATTEMPTS": "3",
        "LLM_RETRY_MAX_WAIT": "0.3",
        "LLM_RETRY_DEADLINE": "15",
        "LLM_TIMEOUT": "15",
        "LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


@contextmanager
def postgres_schema(base_url: str, prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL schema on ``base_url``'s database, dropped afterwards.

    Args:
        base_url: A PostgreSQL URL (``TEST_DATABASE_URL``).
        prefix: Names the schema (``<prefix>_<random>``).

    Yields:
        A URL whose connections use only that schema (``search_path``).
    """
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
