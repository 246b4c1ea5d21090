"""``make run``'s launcher: everything comes up on embedded parts, and everything goes down.

Runs ``python run.py`` as ``make run`` does, with no ``REDIS_URL`` and no ``DATABASE_URL``, so
the embedded Redis and SQLite under the instance folder are used.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
import requests

from shared.config import PROJECT_ROOT
from shared.services.bot_control import DESIRED_KEY
from tests.support import free_port, stop_process, wait_until

pytestmark = pytest.mark.e2e

#: Variables of the outer environment that would point the launcher at other services.
_STRIPPED = {
    "REDIS_URL", "DATABASE_URL", "TEST_DATABASE_URL", "SECRET_KEY", "ADMIN_PASSWORD",
    "ADMIN_USERNAME", "PORT", "INSTANCE_PATH", "TELEGRAM_BOT_TOKEN", "AI_ROUTER_ENV", "FLASK_ENV",
}  # fmt: skip


@pytest.fixture()
def instance() -> Iterator[Path]:
    """A short, empty instance folder (the embedded Redis socket lives in it)."""
    with tempfile.TemporaryDirectory(prefix="air-run-") as path:
        yield Path(path)


class Launcher:
    """One ``python run.py`` process with its output captured to a file."""

    def __init__(self, instance: Path) -> None:
        self.port = free_port()
        self.log_path = instance / f"run-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if k not in _STRIPPED}
        env.update(INSTANCE_PATH=str(instance), PORT=str(self.port), WORKER_CONCURRENCY="2")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "run.py"], cwd=PROJECT_ROOT, env=env,
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        """Everything the launcher and its children printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        """Wait until /healthz answers 200 and the worker and listener report they started."""

        def ready() -> bool:
            assert self.process.poll() is None, f"launcher exited early:\n{self.output()}"
            ok = requests.get(f"{self.base}/healthz", timeout=2).status_code == 200
            return ok and "ready." in self.output() and "bot listener started" in self.output()

        wait_until(ready, timeout=90, interval=0.3, what="make run to come up")

    def tree(self) -> list[psutil.Process]:
        """The launcher and all of its descendants."""
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def stop(self, signum: int) -> int:
        """Send a signal to the launcher only and wait for it to exit.

        Args:
            signum: SIGINT (as Ctrl-C) or SIGTERM.

        Returns:
            The launcher's exit code.
        """
        self.process.send_signal(signum)
        try:
            return self.process.wait(90)
        finally:
            stop_process(self.process)
            self._log.close()


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            continue
    return alive


def test_run_serves_and_stops_cleanly(instance: Path) -> None:
    """First start: admin password shown once, health 200, login page; Ctrl-C leaves nothing.

    A second start in the same folder (stopped with SIGTERM) reuses the database, does not
    create or show a second admin password, and finds the bot's desired mode where it was left.
    """
    first = Launcher(instance)
    try:
        first.wait_ready()
        assert requests.get(f"{first.base}/healthz", timeout=5).json() == {
            "status": "ok", "db": "ok", "redis": "ok",
        }  # fmt: skip
        login = requests.get(f"{first.base}/admin/", timeout=5)
        assert login.url.endswith("/admin/login/?next=/admin/")
        assert 'name="password"' in login.text
        tree = first.tree()
        names = " ".join(" ".join(p.cmdline()) for p in tree)
        for part in ("redis-server", "gunicorn", "celery", "-m bot"):
            assert part in names
        # The admin's «Запустить бота» writes this key; it must survive the restart.
        socket = redis.Redis(unix_socket_path=str(instance / "redis.sock"), decode_responses=True)
        socket.set(DESIRED_KEY, json.dumps({"mode": "polling", "since": "2026-01-01T00:00:00"}))
        socket.close()
    finally:
        code = first.stop(signal.SIGINT)
    assert code == 0, first.output()
    assert _alive(tree) == []
    assert first.output().count("First admin account created") == 1
    assert not (instance / "redis.sock").exists()

    second = Launcher(instance)
    try:
        second.wait_ready()
        tree = second.tree()
        socket = redis.Redis(unix_socket_path=str(instance / "redis.sock"), decode_responses=True)
        assert json.loads(socket.get(DESIRED_KEY))["mode"] == "polling"
        socket.close()
    finally:
        code = second.stop(signal.SIGTERM)
    assert code == 0, second.output()
    assert _alive(tree) == []
    assert "First admin account created" not in second.output()


def test_a_dying_child_is_restarted_and_the_rest_keeps_running(instance: Path) -> None:
    """A killed listener and a killed worker come back (logged); Ctrl-C then stops everything."""
    launcher = Launcher(instance)
    try:
        launcher.wait_ready()
        before = launcher.tree()
        for needle in ("-m bot", "celery"):
            victim = next(p for p in launcher.tree() if needle in " ".join(p.cmdline()))
            victim.kill()

            def replaced(needle: str = needle, old: int = victim.pid) -> bool:
                return any(
                    needle in " ".join(p.cmdline()) and p.pid != old
                    for p in _alive(launcher.tree())
                )

            wait_until(replaced, timeout=60, what=f"{needle} to be restarted")
        assert launcher.process.poll() is None, "the launcher kept running"
        assert requests.get(f"{launcher.base}/healthz", timeout=5).status_code == 200
        output = launcher.output()
        assert "bot exited unexpectedly" in output and "restarting bot" in output
        assert "worker1 exited unexpectedly" in output
        tree = launcher.tree()
    finally:
        code = launcher.stop(signal.SIGINT)
    assert code == 0, launcher.output()
    assert _alive(tree) == [] and _alive(before) == []
