"""Bot control through Redis: the desired mode (set by the admin), the listener's heartbeat.

The admin buttons only *set* the desired mode; the listener process follows it and reports its
state in a heartbeat key with a TTL, so a dead listener shows as not running. The desired mode
lives in Redis, which the deployment persists (the embedded Redis snapshots to disk), so after
a restart the bot comes back in the mode it was left in. :func:`overview` adds the workers and
the queues: what the admin's bot page and dashboard refresh by themselves.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from flask import current_app

from shared.celery_setup import LLM_QUEUE, UPDATES_QUEUE
from shared.models.types import utcnow
from shared.redis import KEY_PREFIX, current_redis
from shared.services import workers
from shared.services.settings import get_setting, is_set

STOPPED = "stopped"
POLLING = "polling"
WEBHOOK = "webhook"
MODES = (STOPPED, POLLING, WEBHOOK)

DESIRED_KEY = f"{KEY_PREFIX}bot:desired"
STATUS_KEY = f"{KEY_PREFIX}bot:status"
POLLER_LOCK_KEY = f"{KEY_PREFIX}bot:poller"
#: Seconds a heartbeat stays valid; the listener refreshes it far more often.
HEARTBEAT_TTL = 20

WEBHOOK_PATH = "/telegram/webhook"


#: The admin's buttons and the API's actions, and the desired mode each one sets:
#: «Запустить бота», «Запустить бота в webhook», «Остановить бота».
ACTIONS = {"polling": POLLING, "webhook": WEBHOOK, "stop": STOPPED}


class BotControlError(ValueError):
    """A bot action cannot be carried out (unknown action, no bot token, no webhook URL)."""


def control(action: str) -> dict[str, Any]:
    """Carry out a bot button (admin UI) or ``POST /admin/api/bot/start|stop`` (JSON API).

    Starting (``polling`` or ``webhook``) needs a bot token; webhook mode also a webhook URL.
    Starting one mode while the other runs switches over; stopping always works.

    Args:
        action: A key of :data:`ACTIONS`: ``polling``, ``webhook`` or ``stop``.

    Returns:
        The stored desired state ``{"mode", "since"}``.

    Raises:
        BotControlError: On an unknown action, a start without a bot token, or webhook mode
            without a webhook URL.
    """
    mode = ACTIONS.get(action)
    if mode is None:
        raise BotControlError(f"action must be one of {', '.join(ACTIONS)}")
    if mode != STOPPED and not is_set("telegram_bot_token"):
        raise BotControlError("set the bot token first (Settings, or telegram_bot_token)")
    return set_desired(mode)


@dataclass
class ListenerStatus:
    """What the listener reports in its heartbeat.

    Attributes:
        state: ``starting``, ``running`` or ``error``.
        mode: The mode it is serving (``polling``, ``webhook``, ``stopped``).
        since: ISO time the current state began.
        last_update_at: ISO time of the last update taken from Telegram (polling).
        last_error: The last problem, for the admin.
        webhook_url: The URL registered with Telegram, in webhook mode.
    """

    state: str
    mode: str
    since: str
    last_update_at: str | None = None
    last_error: str | None = None
    webhook_url: str | None = None


def set_desired(mode: str) -> dict[str, Any]:
    """Ask the listener to run in a mode (``stopped``, ``polling``, ``webhook``).

    Args:
        mode: The desired mode.

    Returns:
        The stored desired state ``{"mode", "since"}``.

    Raises:
        BotControlError: For an unknown mode, or webhook mode without a webhook URL.
    """
    if mode not in MODES:
        raise BotControlError(f"mode must be one of {', '.join(MODES)}")
    if mode == WEBHOOK and not webhook_url():
        raise BotControlError("set the webhook URL in the settings (or PUBLIC_URL) first")
    desired = {"mode": mode, "since": utcnow().isoformat()}
    current_redis().set(DESIRED_KEY, json.dumps(desired))
    return desired


def get_desired() -> dict[str, Any]:
    """The desired state; ``stopped`` when never set."""
    raw = current_redis().get(DESIRED_KEY)
    return json.loads(raw) if raw else {"mode": STOPPED, "since": None}


def write_heartbeat(status: ListenerStatus) -> None:
    """Publish the listener's status for :data:`HEARTBEAT_TTL` seconds."""
    current_redis().set(STATUS_KEY, json.dumps(asdict(status)), ex=HEARTBEAT_TTL)


def read_heartbeat() -> ListenerStatus | None:
    """The listener's last status, or None when no listener reported recently."""
    raw = current_redis().get(STATUS_KEY)
    return ListenerStatus(**json.loads(raw)) if raw else None


def webhook_url() -> str | None:
    """Where Telegram should post updates: the setting, else ``{PUBLIC_URL}/telegram/webhook``."""
    url = get_setting("webhook_url")
    if url:
        return url
    public = current_app.config["AI_ROUTER"].public_url
    return f"{public}{WEBHOOK_PATH}" if public else None


def queue_depths() -> dict[str, int]:
    """Tasks waiting in each Celery queue, read in one round trip.

    Returns:
        ``{"updates": n, "llm": n}``.
    """
    names = (UPDATES_QUEUE, LLM_QUEUE)
    pipe = current_redis().pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
    return {name: int(depth) for name, depth in zip(names, pipe.execute(), strict=True)}


def queue_depth() -> int:
    """Tasks waiting in the ``updates`` and ``llm`` queues."""
    return sum(queue_depths().values())


def bot_status() -> dict[str, Any]:
    """Everything the admin shows about the bot (the ``GET /admin/api/bot`` object).

    Returns:
        ``desired``, ``state`` (``stopped`` when no listener reports), ``since``,
        ``last_update_at``, ``last_error``, ``webhook_url``, ``queue_depth``.
    """
    desired = get_desired()
    beat = read_heartbeat()
    if beat is None:
        state, since, last_update, last_error, url = STOPPED, None, None, None, None
    else:
        state = STOPPED if beat.mode == STOPPED and beat.state == "running" else beat.state
        since, last_update, last_error = beat.since, beat.last_update_at, beat.last_error
        url = beat.webhook_url
    return {
        "desired": desired["mode"],
        "state": state,
        "since": since,
        "last_update_at": last_update,
        "last_error": last_error,
        "webhook_url": url or webhook_url(),
        "queue_depth": queue_depth(),
    }


def overview() -> dict[str, Any]:
    """What the admin's bot page and dashboard show and refresh: the bot, workers and queues.

    Every part is read from Redis (the listener's and the workers' heartbeats, the queues),
    never by asking a process, so it answers at once even while a worker is busy or gone.

    Returns:
        ``bot`` (the :func:`bot_status` object), ``workers`` (the live workers, see
        :func:`shared.services.workers.live_workers`) and ``queues`` (:func:`queue_depths`).

    Raises:
        redis.RedisError: When Redis cannot be reached.
    """
    return {
        "bot": bot_status(),
        "workers": workers.live_workers(),
        "queues": queue_depths(),
    }
