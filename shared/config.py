"""Typed configuration, read once from the environment (and a ``.env`` file).

Every variable of the contract (CONTRACT §2) lives here with its default, so no other module
reads ``os.environ`` for settings. The defaults make a fresh clone run with nothing installed but
Python: SQLite and an embedded Redis, both under the instance folder.
"""

from __future__ import annotations

import base64
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import load_dotenv

logger = logging.getLogger(__name__)

#: The project root: the folder holding ``wsgi.py``.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

PRODUCTION = "production"
_SECRET_KEY_FILE = "secret_key"
_EMBEDDED_REDIS_SOCKET = "redis.sock"


#: Celery pools ai_router supports.
WORKER_POOLS = ("gevent", "threads")
#: ``WORKER_CPU_SLOTS`` by default on SQLite (in-process: a step is CPU only) and with a
#: database server (a step waits on it): measured 1/2/4/8 on SQLite, 0/4/8/16 on PostgreSQL.
SQLITE_CPU_SLOTS = 4
SERVER_CPU_SLOTS = 8
#: The concurrency each pool gets when ``WORKER_CONCURRENCY`` is not set.
POOL_CONCURRENCY = {"gevent": 1000, "threads": 16}
#: The Bot API lets a bot download files up to 20 MB (``getFile``).
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024


class ConfigError(RuntimeError):
    """Raised when the configuration cannot be used (for example production without a secret)."""


def random_token(nbytes: int) -> str:
    """A URL-safe random string from ``nbytes`` of ``os.urandom`` (``secrets.token_urlsafe``).

    Without importing ``secrets``, which loads ``hmac`` and OpenSSL: ≈ 3.5 MiB in ``make run``'s
    supervisor, which needs nothing else of them.

    Args:
        nbytes: Random bytes.

    Returns:
        Their base64 (URL alphabet, no padding).
    """
    return base64.urlsafe_b64encode(os.urandom(nbytes)).rstrip(b"=").decode()


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    """Read an integer variable.

    Args:
        env: The environment mapping.
        name: The variable name.
        default: Used when the variable is unset or empty.

    Returns:
        The parsed integer.

    Raises:
        ConfigError: If the value is set but is not an integer.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _env_float(env: dict[str, str], name: str, default: float) -> float:
    """Read a number of seconds.

    Args:
        env: The environment mapping.
        name: The variable name.
        default: Used when the variable is unset or empty.

    Returns:
        The parsed number.

    Raises:
        ConfigError: If the value is set but is not a number.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _split_keys(raw: str | None, current: str) -> tuple[str, ...]:
    """Parse ``SECRET_KEY_FALLBACKS``: comma-separated keys; blanks, repeats, the current dropped.

    Args:
        raw: The variable's value (None when unset).
        current: The current ``SECRET_KEY``.

    Returns:
        The former keys, in the order given (the first is tried first after the current one).
    """
    keys = (key.strip() for key in (raw or "").split(","))
    return tuple(dict.fromkeys(key for key in keys if key and key != current))


def _env_flag(env: dict[str, str], name: str) -> bool:
    """Read a yes/no variable: ``1``, ``true``, ``yes`` or ``on`` (any case) is yes.

    Args:
        env: The environment mapping.
        name: The variable name.

    Returns:
        Whether it is set to a yes; unset, empty or anything else is no.
    """
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def embedded_redis_socket(instance_path: Path) -> Path:
    """Return the unix socket path of the embedded Redis for an instance folder.

    The launcher starts the embedded server there, and every process that finds ``REDIS_URL``
    unset connects there, so web, worker and listener meet on the same server.

    Args:
        instance_path: The instance folder.

    Returns:
        The socket path.
    """
    return instance_path / _EMBEDDED_REDIS_SOCKET


def _load_or_create_secret(instance_path: Path) -> str:
    """Return the development secret key kept in the instance folder, creating it once.

    Args:
        instance_path: The instance folder (created if missing).

    Returns:
        The secret key. It is stable across restarts, so sessions and encrypted secrets survive.
    """
    instance_path.mkdir(parents=True, exist_ok=True)
    path = instance_path / _SECRET_KEY_FILE
    try:
        # O_EXCL makes concurrent first starts agree on a single key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(random_token(48))
    logger.info("generated a development SECRET_KEY in %s", path)
    return path.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class Config:
    """Everything the processes of ai_router need to know about their environment.

    Build it with :meth:`from_env`; it is immutable afterwards. Field names are the lower-case
    names of the environment variables they come from.

    Attributes:
        env: ``development`` (default), ``production`` or ``testing``.
        instance_path: Folder for local state: SQLite database, dev secret, embedded Redis.
        secret_key: Flask sessions, CSRF and the key from which stored secrets are encrypted.
        secret_key_fallbacks: Former secret keys (``SECRET_KEY_FALLBACKS``, comma-separated)
            still accepted while rotating: sessions signed and secrets encrypted with them stay
            valid; new ones use ``secret_key`` (``flask rotate-secrets`` re-encrypts the rest).
        database_url: SQLAlchemy URL.
        redis_url: Redis URL used by every process (broker, status, locks, rate limits).
        redis_embedded: True when ``REDIS_URL`` was unset and the embedded server is meant.
        telegram_api_url: Base URL of the Bot API; calls go to ``{base}/bot{token}/{method}``.
        telegram_bot_token: Seeds the bot token setting on first start.
        public_url: Public base URL of the web app (webhook default).
        admin_username: First admin account's name.
        admin_password: First admin account's password; generated when None.
        admin_api_token: A bearer token always valid for ``/admin/api`` when set.
        metrics_token: When set, ``GET /metrics`` requires it as a bearer token.
        openai_api_key: Seeds a default model on first start when set.
        openai_base_url: Base URL of that seeded model.
        openai_model: Provider model id of that seeded model.
        timezone: IANA timezone of "today" and "this month": statistics are bucketed into its
            days, and the plan limits reset at its midnights.
        port: Port of the web server started by ``make run``.
        host: Interface the web server started by ``make run`` binds to.
        flower_port: Port of the Flower ``make run`` starts on 127.0.0.1 (``FLOWER_PORT``; 0, or
            set but empty: no Flower).
        flower_url: Where the admin links to Flower: ``FLOWER_URL``, else
            ``http://127.0.0.1:<flower_port>/``; None (no link) when neither is there.
        flower_basic_auth: Flower's login, ``user:password`` (comma-separated for more); None:
            the first admin's credentials or a generated password (``shared.flower``).
        flower_enable_events: Whether Flower switches the workers' task events on while it
            runs (``FLOWER_ENABLE_EVENTS``): its task pages fill, and every task costs the
            worker three events more. Off: Flower shows the workers, not the task history.
        worker_pool: The Celery worker's pool: ``gevent`` (default: one process runs many
            tasks while they wait on the network) or ``threads``.
        worker_concurrency: Tasks the worker runs at once (greenlets or threads).
        worker_processes: Worker processes ``make run`` starts (one per core scales a CPU-bound
            worker; on several hosts, start ``celery -A celery_app worker`` on each).
        worker_cpu_slots: Greenlets of a gevent worker that run the CPU-heavy steps of
            answering at once, the others waiting in arrival order (``shared.green.CpuSlots``);
            0 lets every greenlet through. Default: :data:`SQLITE_CPU_SLOTS` on SQLite,
            :data:`SERVER_CPU_SLOTS` with a database server.
        task_time_limit: Seconds a task may run before it is killed.
        lease_seconds: How long work a dead process held (a chat's lock, a row's LLM claim, a
            command's claim, a task taken from the broker) stays taken before another worker
            gets it; living processes renew theirs every third of it
            (``shared.services.leases``).
        db_pool_size: Database connections kept per process (PostgreSQL and others; SQLite
            under gevent uses one, see ``shared.db.engine_options``).
        log_level: Root log level name.
        log_format: ``text`` or ``json`` (one JSON object per line, with the ids of the
            update, request and task it concerns).
        llm_timeout: Seconds one LLM HTTP request may take.
        llm_max_attempts: Attempts per model (1 = no retry) on 429, 5xx, timeouts, connection
            errors; the SDK's own retries are off, so this is the only retry loop.
        llm_retry_max_wait: Upper bound in seconds of one backoff wait (Retry-After included).
        llm_retry_deadline: Seconds after which a model's retries stop, whatever is left.
        model_cooldown_failures: A model that gave up (after its retries) this many times
            within ``model_cooldown_seconds`` is cooled down: every worker skips it and asks
            its fallback directly for ``model_cooldown_seconds`` (0 disables cooldowns).
        model_cooldown_seconds: The failure window and the length of a cooldown.
        telegram_global_rate: Messages per second the bot sends in all (Telegram: about 30;
            0 turns the global lane off, e.g. for a bot allowed paid broadcasts).
        telegram_chat_rate: Messages per second into one private chat (Telegram: about 1).
        telegram_group_rate: Messages per minute into one group (Telegram: 20).
        plan_check_seconds: How often Celery beat runs the plan check (expiry and reminders).
        plan_remind_days: A plan ending within this many days gets one reminder.
        voice_max_seconds: Longer voice messages and audio are refused before download.
        document_max_bytes: Larger documents are refused before download.
        image_max_bytes: The largest photo size sent to a vision model (the biggest size of
            a photo under it is chosen).
        image_urls: Send photos to the model as short-lived signed URLs of this web app
            (``{public_url}/media/…``, which the model fetches) instead of data URLs; only
            with ``public_url`` set.
    """

    env: str = "development"
    instance_path: Path = field(default_factory=lambda: PROJECT_ROOT / "instance")
    secret_key: str = ""
    secret_key_fallbacks: tuple[str, ...] = ()
    database_url: str = ""
    redis_url: str = ""
    redis_embedded: bool = True
    telegram_api_url: str = "https://api.telegram.org"
    telegram_bot_token: str | None = None
    public_url: str | None = None
    admin_username: str = "admin"
    admin_password: str | None = None
    admin_api_token: str | None = None
    metrics_token: str | None = None
    openai_api_key: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini"
    timezone: str = "UTC"
    port: int = 5000
    host: str = "127.0.0.1"
    flower_port: int = 5555
    flower_url: str | None = None
    flower_basic_auth: str | None = None
    flower_enable_events: bool = False
    worker_pool: str = "gevent"
    worker_concurrency: int = 1000
    worker_processes: int = 1
    worker_cpu_slots: int = 4  # from_env: by database (SQLITE_CPU_SLOTS, SERVER_CPU_SLOTS)
    db_pool_size: int = 10
    task_time_limit: int = 300
    lease_seconds: int = 30
    log_level: str = "INFO"
    log_format: str = "text"
    llm_timeout: float = 60.0
    llm_max_attempts: int = 4
    llm_retry_max_wait: float = 20.0
    llm_retry_deadline: float = 90.0
    model_cooldown_failures: int = 3
    model_cooldown_seconds: int = 60
    telegram_global_rate: float = 30.0
    telegram_chat_rate: float = 1.0
    telegram_group_rate: int = 20
    plan_check_seconds: int = 300
    plan_remind_days: int = 3
    voice_max_seconds: int = 300
    document_max_bytes: int = 1_000_000
    image_max_bytes: int = 5_000_000
    image_urls: bool = False

    @property
    def is_production(self) -> bool:
        """Whether the strict production rules apply."""
        return self.env == PRODUCTION

    @property
    def embedded_redis_socket(self) -> Path:
        """Unix socket of the embedded Redis for this instance folder."""
        return embedded_redis_socket(self.instance_path)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, *, load_env_file: bool = True) -> Config:
        """Build the configuration from environment variables.

        Args:
            env: The mapping to read; ``os.environ`` when None.
            load_env_file: Load ``.env`` from the project root first (never overriding variables
                that are already set). Tests pass False to stay hermetic.

        Returns:
            A complete, validated configuration.

        Raises:
            ConfigError: In production without ``SECRET_KEY``, or on a malformed value.
        """
        if env is None:
            if load_env_file:
                load_dotenv(PROJECT_ROOT / ".env", override=False)
            env = dict(os.environ)

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value and value.strip() else None

        run_env = (get("AI_ROUTER_ENV") or get("FLASK_ENV") or "development").lower()
        instance_path = Path(get("INSTANCE_PATH") or PROJECT_ROOT / "instance").resolve()

        secret_key = get("SECRET_KEY")
        if not secret_key:
            if run_env == PRODUCTION:
                raise ConfigError("SECRET_KEY must be set when running in production")
            secret_key = _load_or_create_secret(instance_path)

        redis_url = get("REDIS_URL")
        redis_embedded = redis_url is None
        if redis_embedded:
            redis_url = f"unix://{embedded_redis_socket(instance_path)}"

        defaults = cls()
        worker_pool = (get("WORKER_POOL") or defaults.worker_pool).lower()
        if worker_pool not in WORKER_POOLS:
            raise ConfigError(f"WORKER_POOL must be one of {', '.join(WORKER_POOLS)}")
        # FLOWER_PORT set but empty turns Flower off, like 0; unset, it runs on the default port.
        flower_port = _env_int(env, "FLOWER_PORT", defaults.flower_port)
        if "FLOWER_PORT" in env and not env["FLOWER_PORT"].strip():
            flower_port = 0
        if not 0 <= flower_port <= 65535:
            raise ConfigError(f"FLOWER_PORT must be a port number or 0, got {flower_port}")
        flower_url = f"http://127.0.0.1:{flower_port}/" if flower_port else None
        database_url = get("DATABASE_URL") or f"sqlite:///{instance_path / 'ai_router.db'}"
        # SQLite's steps are all CPU (no waits): 4 slots keep it busy. A database server makes
        # each step wait on the network several times: more slots (measured, docs/benchmarks.md)
        cpu_slots = SQLITE_CPU_SLOTS if database_url.startswith("sqlite") else SERVER_CPU_SLOTS
        return cls(
            env=run_env,
            instance_path=instance_path,
            secret_key=secret_key,
            secret_key_fallbacks=_split_keys(get("SECRET_KEY_FALLBACKS"), secret_key),
            database_url=database_url,
            redis_url=redis_url,
            redis_embedded=redis_embedded,
            telegram_api_url=(get("TELEGRAM_API_URL") or defaults.telegram_api_url).rstrip("/"),
            telegram_bot_token=get("TELEGRAM_BOT_TOKEN"),
            public_url=(get("PUBLIC_URL") or "").rstrip("/") or None,
            admin_username=get("ADMIN_USERNAME") or defaults.admin_username,
            admin_password=get("ADMIN_PASSWORD"),
            admin_api_token=get("ADMIN_API_TOKEN"),
            metrics_token=get("METRICS_TOKEN"),
            openai_api_key=get("OPENAI_API_KEY"),
            openai_base_url=(get("OPENAI_BASE_URL") or defaults.openai_base_url).rstrip("/"),
            openai_model=get("OPENAI_MODEL") or defaults.openai_model,
            timezone=get("STATS_TIMEZONE") or defaults.timezone,
            port=_env_int(env, "PORT", defaults.port),
            host=get("HOST") or defaults.host,
            flower_port=flower_port,
            flower_url=get("FLOWER_URL") or flower_url,
            flower_basic_auth=get("FLOWER_BASIC_AUTH"),
            flower_enable_events=_env_flag(env, "FLOWER_ENABLE_EVENTS"),
            worker_pool=worker_pool,
            worker_concurrency=_env_int(
                env,
                "WORKER_CONCURRENCY",
                POOL_CONCURRENCY[worker_pool],
            ),
            worker_processes=max(1, _env_int(env, "WORKER_PROCESSES", defaults.worker_processes)),
            worker_cpu_slots=max(0, _env_int(env, "WORKER_CPU_SLOTS", cpu_slots)),
            db_pool_size=max(1, _env_int(env, "DB_POOL_SIZE", defaults.db_pool_size)),
            task_time_limit=max(5, _env_int(env, "TASK_TIME_LIMIT", defaults.task_time_limit)),
            lease_seconds=max(3, _env_int(env, "LEASE_SECONDS", defaults.lease_seconds)),
            log_level=(get("LOG_LEVEL") or defaults.log_level).upper(),
            log_format="json" if (get("LOG_FORMAT") or "").lower() == "json" else "text",
            llm_timeout=_env_float(env, "LLM_TIMEOUT", defaults.llm_timeout),
            llm_max_attempts=max(1, _env_int(env, "LLM_MAX_ATTEMPTS", defaults.llm_max_attempts)),
            llm_retry_max_wait=_env_float(env, "LLM_RETRY_MAX_WAIT", defaults.llm_retry_max_wait),
            llm_retry_deadline=_env_float(env, "LLM_RETRY_DEADLINE", defaults.llm_retry_deadline),
            model_cooldown_failures=max(
                0, _env_int(env, "MODEL_COOLDOWN_FAILURES", defaults.model_cooldown_failures)
            ),
            model_cooldown_seconds=max(
                1, _env_int(env, "MODEL_COOLDOWN_SECONDS", defaults.model_cooldown_seconds)
            ),
            telegram_global_rate=max(
                0.0, _env_float(env, "TELEGRAM_GLOBAL_RATE", defaults.telegram_global_rate)
            ),
            telegram_chat_rate=max(
                0.01, _env_float(env, "TELEGRAM_CHAT_RATE", defaults.telegram_chat_rate)
            ),
            telegram_group_rate=max(
                1, _env_int(env, "TELEGRAM_GROUP_RATE", defaults.telegram_group_rate)
            ),
            plan_check_seconds=max(
                5, _env_int(env, "PLAN_CHECK_SECONDS", defaults.plan_check_seconds)
            ),
            plan_remind_days=max(0, _env_int(env, "PLAN_REMIND_DAYS", defaults.plan_remind_days)),
            voice_max_seconds=max(
                1, _env_int(env, "VOICE_MAX_SECONDS", defaults.voice_max_seconds)
            ),
            document_max_bytes=min(
                MAX_DOWNLOAD_BYTES,
                max(1, _env_int(env, "DOCUMENT_MAX_BYTES", defaults.document_max_bytes)),
            ),
            image_urls=(get("IMAGE_URLS") or "").lower() in ("1", "true", "yes", "on"),
            image_max_bytes=min(
                MAX_DOWNLOAD_BYTES,
                max(1, _env_int(env, "IMAGE_MAX_BYTES", defaults.image_max_bytes)),
            ),
        )
