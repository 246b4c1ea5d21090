"""``make run``'s launcher: everything comes up on embedded parts, and everything goes down.

Runs ``python run.py`` as ``make run`` does, with no ``REDIS_URL`` and no ``DATABASE_URL``, so
the embedded Redis and SQLite under the instance folder are used; Flower on a free port.
"""

from __future__ import annotations

import json
import os
import re
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
    "FLOWER_PORT", "FLOWER_URL", "FLOWER_BASIC_AUTH", "FLOWER_ENABLE_EVENTS",
}  # fmt: skip


@pytest.fixture()
def instance() -> Iterator[Path]:
    """A short, empty instance folder (the embedded Redis socket lives in it)."""
    with tempfile.TemporaryDirectory(prefix="air-run-") as path:
        yield Path(path)


class Launcher:
    """One ``python run.py`` process with its output captured to a file."""

    def __init__(self, instance: Path, **extra: str) -> None:
        self.port = free_port()
        self.flower_port = free_port()
        self.log_path = instance / f"run-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if k not in _STRIPPED}
        env.update(INSTANCE_PATH=str(instance), PORT=str(self.port), WORKER_CONCURRENCY="2")
        env.update(FLOWER_PORT=str(self.flower_port), **extra)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "run.py"], cwd=PROJECT_ROOT, env=env,
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"
        self.flower = f"http://127.0.0.1:{self.flower_port}"

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
        for part in (
            "redis-server",
            "-m web.serve",
            "celery_app worker",
            "-m bot",
            "flower_app flower",
        ):
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
        for needle in ("-m bot", "celery_app worker"):
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


def _admin_session(base: str, password: str) -> requests.Session:
    """A browser-like session logged in to the admin through its form."""
    session = requests.Session()
    form = session.get(f"{base}/admin/login/", timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
    assert token, "the login form has a CSRF token"
    login = session.post(
        f"{base}/admin/login/",
        data={"username": "admin", "password": password, "csrf_token": token.group(1)},
        timeout=10,
    )
    assert login.ok and login.url.rstrip("/").endswith("/admin"), login.url
    return session


def test_flower_runs_on_loopback_behind_a_login(instance: Path) -> None:
    """Flower: 401 without the admin's login, 200 with it, on 127.0.0.1 only; it sees the worker.

    Its password is on no command line and in no log. The admin's live status lists the worker
    (its heartbeat, from the gevent worker ``make run`` starts) and the queues, and the
    dashboard links to Flower.
    """
    password = "launcher-admin-password"
    launcher = Launcher(instance, ADMIN_PASSWORD=password)
    try:
        launcher.wait_ready()
        # A 401 response is falsy: wait for a list holding it.
        [anonymous] = wait_until(
            lambda: [requests.get(f"{launcher.flower}/", timeout=5)], what="Flower to answer"
        )
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
        assert (
            requests.get(f"{launcher.flower}/", auth=("admin", "wrong"), timeout=5).status_code
            == 401
        )
        page = requests.get(f"{launcher.flower}/", auth=("admin", password), timeout=5)
        assert page.status_code == 200 and "Flower" in page.text

        def flower_workers() -> list[str]:
            answer = requests.get(
                f"{launcher.flower}/api/workers", params={"refresh": "1"},
                auth=("admin", password), timeout=10,
            )  # fmt: skip
            return [name for name in answer.json() if name.startswith("worker1@")]

        wait_until(flower_workers, timeout=30, what="Flower to see the worker")

        flower = next(p for p in launcher.tree() if "flower_app flower" in " ".join(p.cmdline()))
        listening = {
            c.laddr.ip for c in flower.net_connections("inet") if c.status == psutil.CONN_LISTEN
        }
        assert listening == {"127.0.0.1"}
        assert all(password not in " ".join(p.cmdline()) for p in launcher.tree())

        admin = _admin_session(launcher.base, password)
        worker_pid = next(
            p.pid for p in launcher.tree() if "celery_app worker" in " ".join(p.cmdline())
        )

        def listed() -> dict:
            status = admin.get(f"{launcher.base}/admin/status", timeout=10).json()
            return status if any(w["pid"] == worker_pid for w in status["workers"]) else {}

        status = wait_until(listed, timeout=30, what="the worker's heartbeat")
        assert status["queues"] == {"updates": 0, "llm": 0}
        assert [w["hostname"].split("@")[0] for w in status["workers"]] == ["worker1"]
        dashboard = admin.get(f"{launcher.base}/admin/", timeout=10).text
        assert f'href="{launcher.flower}/"' in dashboard
        assert "log in as admin with ADMIN_PASSWORD" in dashboard
        tree = launcher.tree()
    finally:
        code = launcher.stop(signal.SIGINT)
    assert code == 0, launcher.output()
    assert _alive(tree) == []
    output = launcher.output()
    assert f"Flower at {launcher.flower}/ — log in as admin with ADMIN_PASSWORD" in output
    assert password not in output
