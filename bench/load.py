"""End-to-end load benchmark: ``make run``'s processes under N closed-loop Telegram users.

What runs (all on 127.0.0.1):

- ai_router exactly as ``make run`` starts it (``python run.py``: embedded Redis unless
  ``--redis-url``, the web, the Celery worker, the listener in polling mode), on SQLite or on a
  fresh PostgreSQL schema;
- the fake Bot API of the tests (``tests.fakes.telegram.FakeTelegram``), flood limits off;
- ``llmock`` answering every Chat Completions call after ``--llm-latency`` seconds.

N users each send a message, wait for the answer (the ``sendMessage`` that carries the
«Начать новый диалог» button) and at once send the next one. After a warm-up, a window of
``--duration`` seconds is measured: replies/s, latency percentiles, overhead above the LLM
latency, Bot API calls per reply, CPU milliseconds per reply for each ai_router process and in
all, and RSS. Then the users stop and every outstanding message gets ``--drain`` seconds to be
answered; what is left is reported as unanswered.

A probe process asks llmock the same kind of question (streamed, kept-alive connection, one
at a time) throughout the window: its median is what the mock itself takes under this load,
so ``overhead p50 − (probe p50 − LLM latency)`` is the part of the overhead that is
ai_router's and the fake Bot API's.

Numbers are for comparing changes on the same machine; nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import requests
from sqlalchemy import create_engine, make_url, text

from bench.cgroups import CpuCaps
from shared.config import PROJECT_ROOT
from tests.fakes.telegram import FakeTelegram, FloodLimits
from tests.support import free_port, stop_process, wait_until

logger = logging.getLogger("bench.load")

API_TOKEN = "bench-api-token"
FIRST_USER = 500_000


@dataclass
class Result:
    """The figures of one run (one line of docs/benchmarks.md)."""

    users: int
    database: str
    duration_s: float
    replies: int
    replies_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    overhead_p50_ms: float
    first_text_p50_ms: float | None
    llm_probe_p50_ms: float | None
    bot_api_calls_per_reply: float
    cpu_ms_per_reply: float
    cpu_ms_per_reply_by_process: dict[str, float] = field(default_factory=dict)
    rss_mib_idle: float = 0.0
    rss_mib_load: float = 0.0
    rss_mib_by_process: dict[str, float] = field(default_factory=dict)
    fakes_cpu_ms_per_reply: dict[str, float] = field(default_factory=dict)
    sent: int = 0
    unanswered: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    worker_cpu_cap: float | None = None
    worker_throttled_share: float | None = None
    plan_limits: str = "on"


class Users:
    """N closed-loop users driven by one thread that watches the fake's calls.

    Args:
        fake: The fake Bot API.
        count: How many users.
    """

    def __init__(self, fake: FakeTelegram, count: int) -> None:
        self.fake = fake
        self.ids = range(FIRST_USER, FIRST_USER + count)
        self.sent_at: dict[int, float] = {}
        self.done: list[tuple[float, float]] = []  # (answered at, latency s)
        self.first_text: list[tuple[float, float]] = []  # (first draft at, delay s)
        self._drafted: set[int] = set()
        self.sent = 0
        self.running = True
        self._seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="users", daemon=True)

    def start(self) -> None:
        """Every user sends a first message."""
        for user in self.ids:
            self._send(user)
        self._thread.start()

    def _send(self, user: int) -> None:
        self._drafted.discard(user)
        self.sent_at[user] = time.time()
        self.sent += 1
        self.fake.inject_message(user, f"question {self.sent} from {user}", language_code="en")

    def _watch(self) -> None:
        # Woken by the fake's condition as each call is recorded (a user answers at once, as
        # people's clients do; polling every few milliseconds added half a poll to each reply).
        while not self._stop.is_set():
            with self.fake._cond:  # noqa: SLF001 - the bench reads new calls incrementally
                if len(self.fake._calls) == self._seen:  # noqa: SLF001
                    self.fake._cond.wait(0.1)  # noqa: SLF001
                new = self.fake._calls[self._seen :]  # noqa: SLF001
                self._seen += len(new)
            for call in new:
                if call.method == "sendMessageDraft" and call.status == 200:
                    chat = int(call.params.get("chat_id", 0))
                    if chat in self.sent_at and chat not in self._drafted:
                        self._drafted.add(chat)
                        self.first_text.append((call.at, call.at - self.sent_at[chat]))
                    continue
                if call.method != "sendMessage" or call.status != 200:
                    continue
                chat = int(call.params.get("chat_id", 0))
                if chat not in self.sent_at or not call.params.get("reply_markup"):
                    continue
                self.done.append((call.at, call.at - self.sent_at.pop(chat)))
                if self.running:
                    self._send(chat)

    def outstanding(self) -> int:
        """Messages sent and not answered yet."""
        return len(self.sent_at)

    def stop(self) -> None:
        """Stop the watcher thread."""
        self._stop.set()
        self._thread.join(5)


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _role(process: psutil.Process) -> str:
    try:
        cmd = " ".join(process.cmdline())
    except psutil.Error:
        return "gone"
    for needle, role in (
        ("redis-server", "redis"),
        ("web.serve", "web"),
        ("gunicorn", "web"),  # an older checkout (--root)
        ("flower_app", "flower"),  # before "celery": Flower runs as ``celery -A flower_app``
        ("celery", "worker"),
        ("-m bot", "listener"),
        ("run.py", "supervisor"),
    ):
        if needle in cmd:
            return role
    return "other"


def _cpu(pid: int) -> dict[str, float]:
    totals: dict[str, float] = {}
    for process in _tree(pid):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        role = _role(process)
        totals[role] = totals.get(role, 0.0) + times.user + times.system
    return totals


def _rss(pid: int) -> dict[str, float]:
    totals: dict[str, float] = {}
    for process in _tree(pid):
        try:
            rss = process.memory_info().rss / 2**20
        except psutil.Error:
            continue
        role = _role(process)
        totals[role] = totals.get(role, 0.0) + rss
    return totals


#: The probe of llmock's own latency (a child process, so the bench's threads do not slow it).
_LLM_PROBE = """
import json, sys, time, urllib3
url, seconds = sys.argv[1], float(sys.argv[2])
pool = urllib3.PoolManager(maxsize=1, retries=False)
body = json.dumps({
    "model": "bench-model", "stream": True, "stream_options": {"include_usage": True},
    "messages": [{"role": "user", "content": "question 1 from the probe"}],
}).encode()
took, end = [], time.monotonic() + seconds
while time.monotonic() < end:
    started = time.monotonic()
    response = pool.request("POST", url, body=body, headers={"Content-Type": "application/json"},
                            preload_content=False)
    for _ in response.stream(8192):
        pass
    response.release_conn()
    took.append((time.monotonic() - started) * 1000)
    time.sleep(0.05)
took.sort()
print(took[len(took) // 2] if took else "")
"""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


class Stack:
    """The fakes and ai_router's process tree for one run."""

    def __init__(self, args: argparse.Namespace, database: str) -> None:
        self.args = args
        self.database = database
        self.root = Path(tempfile.mkdtemp(prefix="air-load-"))
        self.fake = FakeTelegram()
        self.llm: subprocess.Popen[bytes] | None = None
        self.llm_url = ""
        self.probe: subprocess.Popen[str] | None = None
        self.app: subprocess.Popen[bytes] | None = None
        self.schema: str | None = None
        self.database_url = ""
        self.port = free_port()
        self.caps: CpuCaps | None = None

    def __enter__(self) -> Stack:
        """Start the fakes and ``make run``'s processes; put the bot in polling mode.

        If any step fails, what was started is stopped before the error propagates (a
        ``with`` block does not call ``__exit__`` when ``__enter__`` raises).
        """
        try:
            return self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _start(self) -> Stack:
        self.fake.start()
        flood = getattr(self.args, "flood", False)
        if flood:
            self.fake.set_flood_limits(FloodLimits())
        llm_port = free_port()
        self.llm = subprocess.Popen(
            [str(Path(sys.executable).with_name("llmock")), "serve", "--host", "127.0.0.1",
             "--port", str(llm_port), "--tool-mode", "off", "--log-level", "warning",
             "--latency-ms", str(int(self.args.llm_latency * 1000)),
             "--stream-chunk-delay-ms", str(getattr(self.args, "llm_chunk_ms", 0))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        llm_url = self.llm_url = f"http://127.0.0.1:{llm_port}"
        wait_until(lambda: requests.get(f"{llm_url}/health", timeout=1).ok, what="llmock")
        self.database_url = self._database()
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        env.update(
            INSTANCE_PATH=str(self.root / "instance"),
            PORT=str(self.port),
            FLOWER_PORT=str(free_port()),  # make run's Flower too (--env FLOWER_PORT=0: none)
            SECRET_KEY="bench-secret",
            ADMIN_PASSWORD="bench-password",
            ADMIN_API_TOKEN=API_TOKEN,
            TELEGRAM_API_URL=self.fake.url,
            TELEGRAM_BOT_TOKEN=self.fake.token,
            OPENAI_API_KEY="sk-bench",
            OPENAI_BASE_URL=f"{llm_url}/v1",
            OPENAI_MODEL="bench-model",
            DATABASE_URL=self.database_url,
            LOG_LEVEL="WARNING",
        )
        if not flood:  # Telegram's limits off at both ends: the bot paces chats, not the bot
            env["TELEGRAM_GLOBAL_RATE"] = "0"
        if self.args.redis_url:
            env["REDIS_URL"] = self.args.redis_url
        for item in self.args.env or []:
            name, _, value = item.partition("=")
            env[name] = value
        self.app = subprocess.Popen(
            [str(self.args.python or sys.executable), "run.py"],
            cwd=self.args.root, env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=open(self.root / "run.log", "wb"),  # noqa: SIM115
        )  # fmt: skip
        base = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: requests.get(f"{base}/healthz", timeout=1).ok, 60, what="make run")
        response = requests.post(
            f"{base}/admin/api/bot/start",
            json={"mode": "polling"},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
        )
        response.raise_for_status()
        self._set_plan_limits(base)
        if getattr(self.args, "streaming", "on") == "off":  # on is the default (and older
            requests.patch(  # checkouts know no such setting)
                f"{base}/admin/api/settings",
                json={"streaming": False},
                headers={"Authorization": f"Bearer {API_TOKEN}"},
                timeout=10,
            ).raise_for_status()
        self.fake.wait_for_polling(timeout=60)
        if getattr(self.args, "worker_cpu", None):
            self.caps = CpuCaps(self.args.worker_cpu)
            for process in _tree(self.app.pid):
                if _role(process) == "worker":
                    self.caps.cap(process.pid)
        return self

    def _set_plan_limits(self, base: str) -> None:
        """Set the default plan's limits for the run (older checkouts have no plans).

        ``on``: limits no user reaches, so each question is checked and reserved in Redis (the
        real path); ``off``: none at all (no check).
        """
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        plans = requests.get(f"{base}/admin/api/plans", headers=headers, timeout=10)
        if plans.status_code == 404:
            return
        plans.raise_for_status()
        default = next(plan for plan in plans.json()["items"] if plan["is_default"])
        high = getattr(self.args, "plan_limits", "on") == "on"
        limits = {
            "requests_per_day": 10**8 if high else None,
            "tokens_per_day": 10**12 if high else None,
            "tokens_per_month": 10**12 if high else None,
            "cost_usd_per_month": 999_999 if high else None,
        }
        requests.patch(
            f"{base}/admin/api/plans/{default['id']}", json=limits, headers=headers, timeout=10
        ).raise_for_status()

    def _database(self) -> str:
        if self.database == "sqlite":
            return f"sqlite:///{self.root / 'bench.db'}"
        base = self.args.postgres_url
        self.schema = f"bench_{uuid.uuid4().hex[:10]}"
        engine = create_engine(base, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        engine.dispose()
        url = make_url(base).update_query_dict({"options": f"-csearch_path={self.schema}"})
        return url.render_as_string(hide_password=False)

    def fakes_cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the load side: this process (fake Bot API, users), llmock."""
        result = {}
        for name, pid in (("bench+bot_api", os.getpid()), ("llmock", self.llm and self.llm.pid)):
            times = psutil.Process(pid).cpu_times()
            result[name] = times.user + times.system
        return result

    def statuses(self, settle: float = 10.0) -> dict[str, int]:
        """Log rows by status, once none is ``pending`` (or after ``settle`` seconds).

        A reply is recorded just after it is sent, so right after the last answer arrived a busy
        worker may still be recording the last few.
        """
        deadline = time.time() + settle
        result = self._statuses()
        while result.get("pending") and time.time() < deadline:
            time.sleep(0.5)
            result = self._statuses()
        return result

    def _statuses(self) -> dict[str, int]:
        engine = create_engine(self.database_url)
        result: dict[str, int] = {}
        for table in ("requests", "messages"):  # "messages" before the rename
            try:
                with engine.connect() as conn:
                    rows = conn.execute(text(f"SELECT status, COUNT(*) FROM {table} GROUP BY 1"))
                    result = {status: count for status, count in rows}
                break
            except Exception:  # noqa: BLE001 - that table does not exist in this version
                continue
        engine.dispose()
        return result

    def __exit__(self, *_exc: object) -> None:
        """Stop ai_router (SIGINT, as Ctrl-C), the fakes, and drop the PostgreSQL schema."""
        if self.app is not None and self.app.poll() is None:
            os.killpg(self.app.pid, signal.SIGINT)
            try:
                self.app.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.app.pid, signal.SIGKILL)
        if self.caps is not None:
            self.caps.close()
        if self.probe is not None and self.probe.poll() is None:
            self.probe.kill()
        if self.llm is not None:
            stop_process(self.llm)
        self.fake.stop()
        if self.schema:
            engine = create_engine(self.args.postgres_url, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
            engine.dispose()


def run_once(args: argparse.Namespace, users_count: int, database: str) -> Result:
    """Start everything, drive ``users_count`` users, measure, stop.

    Args:
        args: The command line.
        users_count: Concurrent users.
        database: ``sqlite`` or ``postgres``.

    Returns:
        The figures.
    """
    with Stack(args, database) as stack:
        assert stack.app is not None
        time.sleep(2)
        rss_idle = sum(_rss(stack.app.pid).values())
        users = Users(stack.fake, users_count)
        users.start()
        time.sleep(args.warmup)
        calls_before = len(stack.fake._calls)  # noqa: SLF001
        probe = stack.probe = subprocess.Popen(
            [sys.executable, "-c", _LLM_PROBE, f"{stack.llm_url}/v1/chat/completions",
             str(args.duration)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        cpu_before = _cpu(stack.app.pid)
        fakes_before = stack.fakes_cpu()
        throttled_before = stack.caps.throttled() if stack.caps else {}
        started = time.time()
        time.sleep(args.duration)
        ended = time.time()
        cpu_after = _cpu(stack.app.pid)
        throttled_after = stack.caps.throttled() if stack.caps else {}
        fakes_after = stack.fakes_cpu()
        calls_in_window = len(stack.fake._calls) - calls_before  # noqa: SLF001
        rss_load = _rss(stack.app.pid)
        users.running = False
        try:
            probed = (probe.communicate(timeout=60)[0] or "").strip()
        except subprocess.TimeoutExpired:
            probe.kill()
            probed = ""
        window = [lat for at, lat in list(users.done) if started <= at < ended]
        first_text = [lat * 1000 for at, lat in list(users.first_text) if started <= at < ended]
        deadline = time.time() + args.drain
        while users.outstanding() and time.time() < deadline:
            time.sleep(0.2)
        users.stop()
        replies = len(window)
        cpu = {
            role: (cpu_after.get(role, 0.0) - cpu_before.get(role, 0.0)) * 1000 / max(replies, 1)
            for role in cpu_after
        }
        latencies_ms = [lat * 1000 for lat in window]
        return Result(
            users=users_count,
            database=database,
            duration_s=round(ended - started, 1),
            replies=replies,
            replies_per_s=round(replies / (ended - started), 1),
            p50_ms=round(_percentile(latencies_ms, 0.5)),
            p95_ms=round(_percentile(latencies_ms, 0.95)),
            p99_ms=round(_percentile(latencies_ms, 0.99)),
            overhead_p50_ms=round(_percentile(latencies_ms, 0.5) - args.llm_latency * 1000),
            first_text_p50_ms=round(_percentile(first_text, 0.5)) if first_text else None,
            llm_probe_p50_ms=round(float(probed), 1) if probed else None,
            bot_api_calls_per_reply=round(calls_in_window / max(replies, 1), 2),
            cpu_ms_per_reply=round(sum(cpu.values()), 2),
            cpu_ms_per_reply_by_process={k: round(v, 2) for k, v in sorted(cpu.items())},
            rss_mib_idle=round(rss_idle),
            rss_mib_load=round(sum(rss_load.values())),
            rss_mib_by_process={k: round(v) for k, v in sorted(rss_load.items())},
            fakes_cpu_ms_per_reply={
                k: round((fakes_after[k] - fakes_before[k]) * 1000 / max(replies, 1), 2)
                for k in fakes_after
            },
            sent=users.sent,
            unanswered=users.outstanding(),
            statuses=stack.statuses(),
            worker_cpu_cap=args.worker_cpu,
            plan_limits=args.plan_limits,
            worker_throttled_share=(
                round(
                    sum(throttled_after[g] - throttled_before[g] for g in throttled_after)
                    / (len(throttled_after) * (ended - started)),
                    2,
                )
                if throttled_after
                else None
            ),
        )


@dataclass
class BurstResult:
    """The figures of one burst run."""

    users: int
    answered: int
    answered_within_120_s: int
    error_rows: int
    first_answer_s: float
    last_answer_s: float
    sustained_replies_per_s: float
    bot_api_calls: int
    refused_429: int
    refused_share: float
    statuses: dict[str, int] = field(default_factory=dict)


def run_burst(args: argparse.Namespace) -> BurstResult:
    """N users write at the same moment with Telegram's flood limits on; count what arrives.

    Args:
        args: The command line (``--users`` is a single count here).

    Returns:
        The figures.
    """
    users_count = args.users[0]
    args.flood = True
    with Stack(args, args.databases[0]) as stack:
        fake = stack.fake
        started = time.time()
        for user in range(FIRST_USER, FIRST_USER + users_count):
            fake.inject_message(user, f"burst question from {user}", language_code="en")
        deadline = started + args.window

        def answers() -> dict[int, float]:
            done: dict[int, float] = {}
            for call in fake.calls("sendMessage"):
                if call.ok and call.params.get("reply_markup"):
                    done.setdefault(int(call.params["chat_id"]), call.at)
            return done

        while time.time() < deadline and len(answers()) < users_count:
            time.sleep(0.5)
        done = answers()
        times = sorted(at - started for at in done.values())
        calls = len(fake.calls())
        refused = fake.flood_refusals()
        statuses = stack.statuses()
        span = (times[-1] - times[0]) if len(times) > 1 else 0.0
        return BurstResult(
            users=users_count,
            answered=len(done),
            answered_within_120_s=sum(1 for t in times if t <= 120),
            error_rows=sum(n for status, n in statuses.items() if status != "ok"),
            first_answer_s=round(times[0], 2) if times else 0.0,
            last_answer_s=round(times[-1], 2) if times else 0.0,
            sustained_replies_per_s=round((len(times) - 1) / span, 1) if span else 0.0,
            bot_api_calls=calls,
            refused_429=refused,
            refused_share=round(refused / max(calls, 1), 4),
            statuses=statuses,
        )


def burst_main(argv: list[str] | None = None) -> None:
    """``python -m bench burst``: one burst of users with the flood limits on.

    Args:
        argv: The command line (``sys.argv[2:]`` when None).
    """
    parser = argparse.ArgumentParser(prog="python -m bench burst", description=run_burst.__doc__)
    parser.add_argument("--users", type=int, nargs=1, default=[1000])
    parser.add_argument("--databases", nargs=1, default=["sqlite"])
    parser.add_argument("--window", type=float, default=180.0, help="seconds to wait for answers")
    parser.add_argument("--llm-latency", type=float, default=1.0)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT)
    parser.add_argument("--python", type=Path, default=None)
    parser.add_argument("--env", action="append")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run_burst(args)
    logger.info("burst: %s", json.dumps(asdict(result)))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))


def main(argv: list[str] | None = None) -> None:
    """Run the load benchmark for each user count and database; log a table, write JSON.

    Args:
        argv: The command line (``sys.argv[1:]`` when None).
    """
    parser = argparse.ArgumentParser(prog="python -m bench load", description=__doc__)
    parser.add_argument("--users", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--drain", type=float, default=60.0)
    parser.add_argument("--llm-latency", type=float, default=1.0, help="seconds to first token")
    parser.add_argument(
        "--llm-chunk-ms", type=int, default=0, help="ms between streamed chunks (llmock)"
    )
    parser.add_argument(
        "--streaming", choices=("on", "off"), default="on", help="the streaming setting"
    )
    parser.add_argument("--redis-url", default=None)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument(
        "--root", type=Path, default=PROJECT_ROOT, help="the checkout to run (default: this one)"
    )
    parser.add_argument(
        "--python", type=Path, default=None,
        help="the interpreter that runs --root's run.py (default: this one)",
    )  # fmt: skip
    parser.add_argument("--env", action="append", help="NAME=VALUE for ai_router's processes")
    parser.add_argument(
        "--plan-limits", choices=("on", "off"), default="on",
        help="the default plan's limits: on = checked for every question but never reached "
        "(the real path), off = none (no check)",
    )  # fmt: skip
    parser.add_argument(
        "--worker-cpu", type=float, default=None, metavar="CORES",
        help="cap each worker process at this share of a core (cgroups; see bench/cgroups.py)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    results = []
    for database in args.databases:
        for users in args.users:
            logger.info("running %s users on %s …", users, database)
            result = run_once(args, users, database)
            logger.info("%s", json.dumps(asdict(result)))
            results.append(result)
    header = (
        "| users | db | replies/s | p50 ms | p95 ms | p99 ms | overhead p50 ms | "
        "llmock alone p50 ms | first text p50 ms | Bot API calls/reply | "
        "CPU ms/reply (total; by process) | RSS MiB idle / load | unanswered |"
    )
    lines = [header, "|" + "---|" * 13]
    for r in results:
        by_process = ", ".join(f"{k} {v}" for k, v in r.cpu_ms_per_reply_by_process.items())
        lines.append(
            f"| {r.users} | {r.database} | {r.replies_per_s} | {r.p50_ms} | {r.p95_ms} | "
            f"{r.p99_ms} | {r.overhead_p50_ms} | {r.llm_probe_p50_ms} | {r.first_text_p50_ms} | "
            f"{r.bot_api_calls_per_reply} | "
            f"{r.cpu_ms_per_reply} ({by_process}) | {r.rss_mib_idle} / {r.rss_mib_load} | "
            f"{r.unanswered} of {r.sent} |"
        )
    logger.info("results:\n%s", "\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
