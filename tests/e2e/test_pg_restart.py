"""A real PostgreSQL restart (``pg_ctl restart -m fast``) under the listener and a worker.

The suite's PostgreSQL is shared (with CI, and with the other tests), so this test starts a
private cluster of its own: ``initdb`` into a temporary folder (as the ``postgres`` user when
the test runs as root, since PostgreSQL refuses to run as root), on a free port. The product
runs on it as in production — migrated by ``flask init``, a gevent worker and the listener
(``python -m bot``) as separate processes — and the server is restarted while three LLM calls
are in flight. Issue #10 saw the listener exit on ``AdminShutdown`` and half the messages go
unanswered; here every message, before and after the restart, is answered once, and both
processes live on.

Without PostgreSQL's server binaries (``initdb``, ``pg_ctl``) there is nothing to restart and
the test is skipped; CI has them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from shared.config import PROJECT_ROOT, Config
from shared.db import db
from shared.embedded_redis import EmbeddedRedis
from shared.models import Request
from shared.services import bot_control
from tests.e2e.conftest import producer_for, use_slow_model, worker_process
from tests.fakes.slow_llm import SlowLLM
from tests.fakes.telegram import FakeTelegram
from tests.support import app_env, free_port, stop_process, wait_until

pytestmark = pytest.mark.e2e


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of the test's own.

    Attributes:
        bindir: Where ``pg_ctl`` is.
        datadir: The cluster's data folder.
        port: Its TCP port on 127.0.0.1.
        run_as: The command prefix that runs a command as the cluster's owner.
    """

    bindir: Path
    datadir: Path
    port: int
    run_as: list[str]

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of its ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        """Run ``pg_ctl`` on the cluster as its owner (waiting for the action to finish)."""
        subprocess.run(
            [*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w", *args],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )


def _server_bindir() -> Path | None:
    """The newest PostgreSQL server's bin folder (Debian's layout, or ``initdb`` on PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture()
def private_postgres() -> Iterator[PrivatePostgres]:
    """An initialized and started cluster on a free port; stopped and removed afterwards."""
    bindir = _server_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    root = Path(tempfile.mkdtemp(prefix="air-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as its own user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip("running as root and there is no postgres user to run PostgreSQL")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    cluster = PrivatePostgres(bindir, root / "data", free_port(), run_as)
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(cluster.datadir), "-A", "trust",
         "-U", "postgres", "--no-sync"],
        check=True, stdout=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    options = (
        f"-p {cluster.port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off "
        "-c full_page_writes=off"
    )
    cluster.pg_ctl("-o", options, "-l", str(root / "server.log"), "start")
    try:
        yield cluster
    finally:
        subprocess.run(  # no check: a failed start leaves nothing to stop
            [*run_as, str(bindir / "pg_ctl"), "-D", str(cluster.datadir), "-m", "immediate",
             "stop"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def _answers(telegram: FakeTelegram) -> list[str]:
    return sorted(c.params["text"] for c in telegram.calls("sendMessage") if c.ok)


def test_a_real_postgres_restart_costs_no_answer_and_no_process(
    app: Flask,
    config: Config,
    telegram: FakeTelegram,
    slow_llm: SlowLLM,
    private_postgres: PrivatePostgres,
    tmp_path: Path,
) -> None:
    """``pg_ctl restart -m fast`` with three calls in flight: six answers, once each."""
    redis = EmbeddedRedis(tmp_path / "r.sock", tmp_path, persist=False)
    redis.start()
    env = app_env(
        tmp_path, private_postgres.url, redis.url, TELEGRAM_API_URL=telegram.url,
        WORKER_POOL="gevent", LOG_LEVEL="WARNING",
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "init"],
        cwd=PROJECT_ROOT, env=env, check=True, stdout=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    producer = producer_for(app, env)
    use_slow_model(producer, telegram, slow_llm)
    with producer.app_context():
        bot_control.set_desired(bot_control.POLLING)
    processes = [
        worker_process(env, "pg-restart", 50),
        subprocess.Popen(
            [sys.executable, "-m", "bot"], cwd=PROJECT_ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        ),
    ]  # fmt: skip
    try:
        telegram.wait_for_polling(timeout=60)
        for user in range(940_001, 940_004):
            telegram.inject_message(user, f"before, from {user}")
        wait_until(lambda: slow_llm.in_flight == 3, timeout=60, what="three calls in flight")
        private_postgres.pg_ctl("-m", "fast", "restart")
        for user in range(940_001, 940_004):
            telegram.inject_message(user, f"after, from {user}")
        wait_until(lambda: len(_answers(telegram)) >= 6, timeout=120, what="six answers")
        time.sleep(3)  # an answer sent twice would arrive by now
        assert [p.poll() for p in processes] == [None, None], "a process exited"
    finally:
        for process in processes:
            stop_process(process)
        redis.stop()
    texts = _answers(telegram)
    assert len(texts) == 6 == len(set(texts)), texts
    assert sum(t.startswith("slow answer to before") for t in texts) == 3
    assert slow_llm.served == 6, "one LLM call per message"
    with producer.app_context():
        rows = db.session.scalars(select(Request)).all()
        assert sorted((r.status, r.delivered_parts) for r in rows) == [("ok", 1)] * 6
        db.session.remove()
        db.engine.dispose()
