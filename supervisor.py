"""``make run``'s supervisor: start every process of ai_router and stop them all together.

Order: embedded Redis (only when ``REDIS_URL`` is unset) → migrations and the first admin →
web (gunicorn), one Celery worker, the bot listener. Ctrl-C or SIGTERM stops the children in the
reverse order of need (listener, web, worker, then Redis) and waits for each; if any child dies
on its own, the rest are stopped too and the launcher exits non-zero, so nothing is left behind.
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
from shared.logging import configure_logging, stop_on_signals

logger = logging.getLogger(__name__)

#: Seconds a child gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 20.0


@dataclass
class Child:
    """One supervised process, started in a session of its own so its whole group can be stopped.

    Attributes:
        name: Label used in logs.
        args: The command line.
        process: The running process, once started.
    """

    name: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        """Start the process in its own session (so a terminal Ctrl-C reaches only the launcher).

        Args:
            env: The environment of the child.
        """
        self.process = subprocess.Popen(
            self.args, env=env, cwd=PROJECT_ROOT, start_new_session=True
        )
        logger.info("started %s pid=%s", self.name, self.process.pid)

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
        # Grandchildren (gunicorn workers) may outlive their parent: sweep the group.
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
        Web, worker and listener, in start order. The web is one gunicorn process with 8
        threads (the admin and the webhook are light; each more process costs ~100 MiB); the
        worker is one gevent process (``WORKER_POOL``) running up to ``WORKER_CONCURRENCY``
        tasks at once.
    """
    python = sys.executable
    return [
        Child(
            "web",
            [python, "-m", "gunicorn", "--bind", f"{config.host}:{config.port}",
             "--workers", "1", "--threads", "8", "--graceful-timeout", "10",
             "--no-control-socket", "--access-logfile", "-", "wsgi:app"],
        ),
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
    """Run everything until ``stop`` is set or a child dies, then stop it all.

    Args:
        config: The configuration.
        stop: Set by the signal handlers to ask for a clean shutdown.

    Returns:
        The exit code: 0 after a requested stop, 1 when a child died on its own.
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
        while not stop.wait(0.5):
            dead = [child for child in children if not child.running()]
            if dead:
                logger.error("%s exited unexpectedly; stopping everything", dead[0].name)
                exit_code = 1
                break
    finally:
        for child in reversed(children):
            child.stop()
        if embedded is not None:
            embedded.stop()
    return exit_code


def main() -> None:
    """Entry point of ``make run`` / ``python run.py``: exits with :func:`supervise`'s code."""
    config = Config.from_env()
    configure_logging("run", config.log_level)
    stop = stop_on_signals(logger)
    started = time.monotonic()
    code = supervise(config, stop)
    logger.info("ai_router stopped after %.0f s", time.monotonic() - started)
    sys.exit(code)


if __name__ == "__main__":
    main()
