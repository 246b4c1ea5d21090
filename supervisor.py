"""``make run``'s supervisor: start every process of ai_router and stop them all together.

Order: embedded Redis (only when ``REDIS_URL`` is unset) → migrations and the first admin →
web (``web.serve``), the Celery worker(s), the bot listener (which also runs Celery beat's
scheduler: ``shared.schedule``), Flower (on 127.0.0.1:``FLOWER_PORT`` behind a login, unless
``FLOWER_PORT`` is 0; see ``shared.flower``). A child that dies on its
own is started again, after a pause that doubles with each quick death (1 s, 2 s, 4 s … at
most :data:`MAX_BACKOFF`; back to 1 s once it has run a minute), and every death and restart
is logged — as a process manager would on a single host; the embedded Redis is restarted the
same way. Ctrl-C or SIGTERM stops the children in the reverse order of need (Flower, listener,
worker, web, then Redis) and waits for each, so nothing is left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from shared.config import PROJECT_ROOT, Config
from shared.embedded_redis import EmbeddedRedis
from shared.flower import LOOPBACK, login_hint
from shared.logging import configure_logging, stop_on_signals

logger = logging.getLogger(__name__)

#: Seconds a child gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 20.0
#: The longest pause before a dead child is started again (seconds).
MAX_BACKOFF = 30.0
#: A child that ran this long before dying is restarted after the shortest pause again.
HEALTHY_AFTER = 60.0


@dataclass
class Child:
    """One supervised process, started in a session of its own so its whole group can be stopped.

    Attributes:
        name: Label used in logs.
        args: The command line.
        process: The running process, once started.
        started_at: ``time.monotonic()`` of the last start.
        deaths: Quick deaths in a row (they set the pause before the next start).
        restart_at: When a dead child is due to start again (None while it runs).
    """

    name: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    deaths: int = 0
    restart_at: float | None = None

    def start(self, env: dict[str, str]) -> None:
        """Start the process in its own session (so a terminal Ctrl-C reaches only the launcher).

        Args:
            env: The environment of the child.
        """
        self.process = subprocess.Popen(
            self.args, env=env, cwd=PROJECT_ROOT, start_new_session=True
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        logger.info("started %s pid=%s", self.name, self.process.pid)

    def check(self, env: dict[str, str], now: float) -> None:
        """Notice a death (and schedule the restart), or start again when it is due.

        Args:
            env: The environment of the child.
            now: ``time.monotonic()``.
        """
        if self.restart_at is not None:
            if now >= self.restart_at:
                logger.warning("restarting %s", self.name)
                self.start(env)
            return
        if self.running() or self.process is None:
            return
        uptime = now - self.started_at
        self.deaths = 0 if uptime >= HEALTHY_AFTER else self.deaths + 1
        pause = min(MAX_BACKOFF, 2.0 ** max(self.deaths - 1, 0))
        # Grandchildren of a dead parent must not linger.
        _signal_group(self.process.pid, signal.SIGKILL)
        logger.error(
            "%s exited unexpectedly with code %s after %.0f s; restarting in %.0f s",
            self.name, self.process.returncode, uptime, pause,
        )  # fmt: skip
        self.restart_at = now + pause

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Send SIGTERM to the process group, wait, and SIGKILL the group if it lingers.

        Args:
            timeout: Seconds to wait after SIGTERM.
        """
        if self.process is None:
            return
        if self.running():
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %s s; killing it", self.name, timeout)
        # Grandchildren may outlive their parent: sweep the group.
        _signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait()
        logger.info("stopped %s (exit code %s)", self.name, self.process.returncode)


def _signal_group(pgid: int, signum: int) -> None:
    """Signal a process group, ignoring one that is already gone."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def child_commands(config: Config) -> list[Child]:
    """Return the processes ``make run`` supervises, all run with this interpreter's venv.

    Args:
        config: The configuration (port, host, worker concurrency).

    Returns:
        Web, worker, listener and Flower (unless ``FLOWER_PORT`` is 0), in start order.
        The web is one process with 8 threads (``web.serve``: waitress, since this supervisor
        already restarts what dies, a gunicorn master would only add ≈ 25 MiB; the admin and the
        webhook are light, each more process costs ~100 MiB); the worker is one gevent process
        (``WORKER_POOL``) running up to ``WORKER_CONCURRENCY`` tasks at once; Flower
        (``flower_app``) takes its login from the environment it sets itself, never from its
        command line.
    """
    python = sys.executable
    flower = (
        [Child("flower", [python, "-m", "celery", "-A", "flower_app", "flower",
                          f"--address={LOOPBACK}", f"--port={config.flower_port}"])]
        if config.flower_port
        else []
    )  # fmt: skip
    return [
        Child("web", [python, "-m", "web.serve"]),
        *(
            Child(
                f"worker{index}",
                [python, "-m", "celery", "-A", "celery_app", "worker",
                 "-Q", "updates,llm", "--pool", config.worker_pool,
                 "--concurrency", str(config.worker_concurrency),
                 "--hostname", f"worker{index}@%h", "--loglevel", config.log_level],
            )
            for index in range(1, config.worker_processes + 1)
        ),
        Child("bot", [python, "-m", "bot"]),
        *flower,
    ]  # fmt: skip


def initialize(env: dict[str, str]) -> bool:
    """Migrate the database and create the first admin, in a short-lived child process.

    ``flask --app wsgi init`` prints a generated admin password once, on the terminal. Running
    it as a child keeps the supervisor itself small: it never loads the web app.

    Args:
        env: The environment of the children.

    Returns:
        Whether it succeeded (its output says why not).
    """
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "init"]
    result = subprocess.run(command, env=env, cwd=PROJECT_ROOT, check=False)
    if result.returncode != 0:
        logger.error("database initialization failed (exit code %s)", result.returncode)
    return result.returncode == 0


def supervise(config: Config, stop: threading.Event) -> int:
    """Run everything until ``stop`` is set, restarting what dies; then stop it all.

    Args:
        config: The configuration.
        stop: Set by the signal handlers to ask for a clean shutdown.

    Returns:
        The exit code: 0 after a requested stop, 1 when the database could not be initialized.
    """
    embedded = None
    if config.redis_embedded:
        embedded = EmbeddedRedis(config.embedded_redis_socket, config.instance_path)
        embedded.start()
    children: list[Child] = []
    exit_code = 0
    try:
        env = dict(os.environ, REDIS_URL=config.redis_url, INSTANCE_PATH=str(config.instance_path))
        if not initialize(env):
            return 1
        children = child_commands(config)
        for child in children:
            child.start(env)
        logger.info(
            "admin at http://%s:%s/admin — Ctrl-C stops everything", config.host, config.port
        )
        if config.flower_port:
            logger.info(
                "Flower at http://%s:%s/ — %s", LOOPBACK, config.flower_port, login_hint(config)
            )
        while not stop.wait(0.5):
            if embedded is not None and not embedded.running():
                logger.error("the embedded Redis exited unexpectedly; restarting it")
                try:
                    embedded.start()
                except Exception:  # noqa: BLE001 - try again at the next check
                    logger.exception("the embedded Redis did not come back; retrying")
            now = time.monotonic()
            for child in children:
                child.check(env, now)
    finally:
        for child in reversed(children):
            child.stop()
        if embedded is not None:
            embedded.stop()
    return exit_code


def main() -> None:
    """Entry point of ``make run`` / ``python run.py``: exits with :func:`supervise`'s code."""
    config = Config.from_env()
    configure_logging("run", config.log_level, config.log_format)
    stop = stop_on_signals(logger)
    started = time.monotonic()
    code = supervise(config, stop)
    logger.info("ai_router stopped after %.0f s", time.monotonic() - started)
    sys.exit(code)


if __name__ == "__main__":
    main()
