"""Waits that cost a turn of gevent's hub, counted in a real gevent process.

Under load every turn of the worker's hub costs the CPU work of all the greenlets that became
ready meanwhile, so the hot path must not park a greenlet where nothing is awaited: urllib3's
zero-timeout readiness checks (``shared.green``) and the stop subscriber's liveness check
(``shared.services.generations``). The counts come from ``greenlet.settrace`` in a child process
that gevent has patched (this test process is not), against a real HTTP server and a real Redis.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask

from shared.extensions import generations
from shared.services.generations import Generations, _Registry
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]

#: The child: one warm-up call, then the hub waits of each call, for each step of ``steps``.
_CHILD = """
from gevent import monkey; monkey.patch_all()
import json, sys
import gevent, greenlet, urllib3
sys.path.insert(0, sys.argv[1])
url, redis_url, steps = sys.argv[2], sys.argv[3], sys.argv[4].split(",")

def in_readiness_check(frame):
    while frame is not None:
        if frame.f_code.co_filename.endswith("urllib3/util/wait.py"):
            return True
        frame = frame.f_back
    return False

checks = [0]

def hub_waits(fn):
    gevent.spawn(fn).join()  # warm: the connection is open and kept alive
    gevent.sleep(0.05)  # a server's close of that connection has reached us by now
    measured = gevent.Greenlet(fn)
    count = [0]
    checks[0] = 0
    def trace(event, args):
        origin, target = args
        if origin is measured and type(target).__name__ == "Hub":
            count[0] += 1
            checks[0] += in_readiness_check(origin.gr_frame)
    greenlet.settrace(trace)
    try:
        measured.start()
        measured.join()
    finally:
        greenlet.settrace(None)
    assert measured.successful(), measured.exception
    return count[0] - 1  # the greenlet's own end

pool = urllib3.PoolManager(maxsize=2, block=True, retries=False)
def post():
    response = pool.request("POST", url, body=b"{}")
    assert response.status == 200, response.status

results = {}
for step in steps:
    if step == "install":
        from shared import green
        results["installed"] = green.install()
    elif step == "post":
        results.setdefault("post", []).append(hub_waits(post))
        results.setdefault("checks", []).append(checks[0])
    elif step == "generation":
        from flask import Flask
        from shared.config import Config
        from shared.extensions import generations, redis_store
        app = Flask("hub-turns")
        env = {"REDIS_URL": redis_url, "SECRET_KEY": "x"}
        app.config["AI_ROUTER"] = Config.from_env(env, load_env_file=False)
        redis_store.init_app(app)
        generations.init_app(app)
        def register():
            with app.app_context(), generations.running(7, check_mark=False):
                pass
        results["generation"] = hub_waits(register)
print(json.dumps(results))
"""


class _Handler(BaseHTTPRequestHandler):
    """Answers every POST at once, keeping the connection alive (as the Bot API does)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        """Read the body, answer a small JSON object."""
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.server.close_each:  # type: ignore[attr-defined]
            # no "Connection: close": the client keeps the connection and must notice the close
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """Quiet."""


@pytest.fixture()
def server() -> Iterator[ThreadingHTTPServer]:
    """A real HTTP server on 127.0.0.1 in this (unpatched) process."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.close_each = False  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _child(server: ThreadingHTTPServer, redis_url: str, steps: list[str]) -> dict:
    url = f"http://127.0.0.1:{server.server_address[1]}/bot/sendMessage"
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(ROOT), url, redis_url, ",".join(steps)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_kept_alive_request_waits_once_for_its_answer(
    server: ThreadingHTTPServer, redis_url: str
) -> None:
    """Without the tuning urllib3 parks the greenlet twice before sending; with it, never."""
    results = _child(server, redis_url, ["post", "install", "post"])
    assert results["installed"] is True
    # urllib3's two zero-timeout checks each cost a turn, then none (the answer's own wait
    # depends on how fast the server is, so the totals are not compared)
    assert results["checks"] == [2, 0]
    assert len(results["post"]) == 2


def test_a_connection_the_server_closed_is_still_noticed(
    server: ThreadingHTTPServer, redis_url: str
) -> None:
    """The kernel's check still sees a kept-alive connection the server closed: it reconnects.

    Without noticing, urllib3 (no retries here) would send on the closed socket and fail.
    """
    server.close_each = True  # type: ignore[attr-defined]
    results = _child(server, redis_url, ["install", "post", "post"])
    assert len(results["post"]) == 2  # both calls answered 200


def test_registering_a_generation_costs_no_hub_turn(
    server: ThreadingHTTPServer, redis_url: str
) -> None:
    """The stop subscriber's liveness check does not yield (``Thread.is_alive`` would)."""
    results = _child(server, redis_url, ["generation"])
    assert results["generation"] == 0


def test_the_stop_subscriber_is_started_again_after_it_ended(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subscriber that ended (a killed greenlet) is replaced by the next generation."""
    registry = _Registry()  # this test's own: the app's subscriber keeps listening
    monkeypatch.setitem(app.extensions, "generations", registry)
    ended: list[threading.Thread] = []

    def end_at_once(self: Generations, *args: object) -> None:
        ended.append(threading.current_thread())

    monkeypatch.setattr(Generations, "_listen_forever", end_at_once)
    with app.app_context():
        with generations.running(51):
            pass
        wait_until(lambda: registry.listening is None, what="the first subscriber to end")
        with generations.running(52):
            pass
        wait_until(lambda: len(ended) == 2, what="a second subscriber")
    assert ended[0] is not ended[1]
