"""Celery wired the Flask way: one Celery app per Flask app, tasks run in its app context.

:class:`CeleryExt` (``shared.extensions.celery_ext``) is bound by ``shared.app.create_core_app``,
so the web app and the listener (which only enqueue, by task name with ``send_task``) and the
worker (``celery -A celery_app worker``) share one configuration. Task modules live in
``tasks/`` and are listed in :data:`TASK_MODULES`; only the worker imports them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.signals import heartbeat_sent, worker_ready
from celery.worker import state as worker_state
from flask import Flask
from kombu import Exchange, Queue

from shared import green, metrics
from shared.broker import broker_settings
from shared.config import POOL_CONCURRENCY, Config
from shared.db import cooperative
from shared.heap import freeze_startup_heap
from shared.redis import celery_url
from shared.schedule import UPDATES_QUEUE
from shared.services import groups, inbox, workers
from shared.telegram import updates

logger = logging.getLogger(__name__)

#: Fast work: Telegram updates, commands, button presses, periodic jobs (``UPDATES_QUEUE``,
#: defined in ``shared.schedule``, which the schedule needs without importing this module).
#: Slow work: LLM calls and the replies they produce.
LLM_QUEUE = "llm"

#: The bot's commands (``/start`` …): handled on the fast queue, listed in Telegram's menu.
BOT_COMMANDS = ("start", "help", "settings", "new", "usage", "buy", "stop")

#: Seconds between two sweeps for tasks of dead workers (at most a third of the visibility
#: timeout, i.e. of ``LEASE_SECONDS``), and how many tasks one sweep restores at most.
SWEEP_INTERVAL = 60.0
SWEEP_BATCH = 100

#: Modules the worker imports to register tasks (explicit, no autodiscovery).
TASK_MODULES = ("tasks.health", "tasks.updates", "tasks.replies", "tasks.plans")


def celery_settings(config: Config) -> dict[str, Any]:
    """Return the Celery configuration for an app configuration.

    Invariants: JSON only; tasks are acknowledged after they finish and re-queued when a worker
    dies, so every task must be idempotent; results are ignored unless a task asks otherwise;
    the broker's visibility timeout is one lease (``LEASE_SECONDS``): the worker renews the
    messages it holds (``shared.broker``), so a running task is not handed to a second worker,
    and a dead worker's tasks go to another within a lease plus a sweep.

    Args:
        config: The application configuration.

    Returns:
        A mapping for ``Celery.conf.update``.
    """
    url = celery_url(config.redis_url)
    hard = config.task_time_limit
    pool, concurrency = worker_pool(config)
    return {
        **broker_settings(config),
        "result_backend": url,
        "result_backend_transport_options": {"visibility_timeout": hard * 4},
        "redis_max_connections": config.worker_concurrency + 100,
        "broker_pool_limit": 100,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_expires": 3600,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A lost broker connection lets running tasks finish (an LLM call is not wasted); their
        # acks are lost with the connection, so they come back after a lease and are skipped
        # as done (every task is idempotent).
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_soft_time_limit": int(hard * 0.8),
        "task_time_limit": hard,
        "task_default_queue": UPDATES_QUEUE,
        "task_default_exchange": UPDATES_QUEUE,
        "task_default_routing_key": UPDATES_QUEUE,
        "task_queues": tuple(
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in (UPDATES_QUEUE, LLM_QUEUE)
        ),
        "task_routes": {
            "tasks.updates.*": {"queue": UPDATES_QUEUE},
            "tasks.health.*": {"queue": UPDATES_QUEUE},
            "tasks.plans.*": {"queue": UPDATES_QUEUE},
            "tasks.replies.*": {"queue": LLM_QUEUE},
        },
        "worker_pool": pool,
        "worker_concurrency": concurrency,
        # Task events cost CPU and Redis traffic on every task; Flower switches them on by
        # itself while it runs (its enable_events option), so only a watched worker pays.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        "enable_utc": True,
    }


def worker_pool(config: Config) -> tuple[str, int]:
    """The pool and concurrency a worker of this process really runs.

    Celery patches the standard library for gevent only when the pool is named on the command
    line (``celery -A celery_app worker --pool gevent``, as ``make run`` and the compose file
    start it). A plain ``celery -A celery_app worker`` is not patched, and a gevent pool there
    would run nothing; it gets the thread pool instead (and the thread default concurrency
    unless ``WORKER_CONCURRENCY`` says otherwise).

    Args:
        config: The configuration (``WORKER_POOL``, ``WORKER_CONCURRENCY``).

    Returns:
        ``(pool, concurrency)``.
    """
    if config.worker_pool == "gevent" and not cooperative():
        concurrency = config.worker_concurrency
        if concurrency == POOL_CONCURRENCY["gevent"]:
            concurrency = POOL_CONCURRENCY["threads"]
        return "threads", concurrency
    return config.worker_pool, config.worker_concurrency


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app bound to a Flask app and store it in ``app.extensions["celery"]``.

    Every task runs inside ``app.app_context()``, so it can use ``db.session`` and the app's
    configuration; the session is removed when the context ends.

    Args:
        app: The Flask app; ``app.config["AI_ROUTER"]`` holds its :class:`Config`.

    Returns:
        The Celery app.
    """
    config: Config = app.config["AI_ROUTER"]
    green.install()  # a gevent worker: urllib3's readiness checks without a hub turn

    class FlaskTask(Task):
        """A task that runs inside the Flask app context."""

        def __call__(self, *args: object, **kwargs: object) -> object:
            """Run the task body within ``app.app_context()``."""
            with app.app_context():
                return self.run(*args, **kwargs)

        @property
        def backend(self) -> Any:
            """The result backend, built once per task and shared by all its runs.

            Celery caches the app's backend per thread; under gevent every task runs in a new
            greenlet, which would build a new backend (and Redis pool) for every task.
            """
            if self._backend is None:
                self._backend = self.app.backend
            return self._backend

        @backend.setter
        def backend(self, value: Any) -> None:
            self._backend = value

    celery = Celery("ai_router", task_cls=FlaskTask, include=list(TASK_MODULES))
    celery.conf.update(celery_settings(config))
    celery.set_default()
    worker_ready.connect(_start_sweeper, weak=False, dispatch_uid=f"sweeper-{id(celery)}")
    worker_ready.connect(_freeze_heap, weak=False, dispatch_uid="freeze-heap")
    heartbeat_sent.connect(
        _heartbeat_reporter(app, celery), weak=False, dispatch_uid=f"heartbeat-{id(celery)}"
    )
    app.extensions["celery"] = celery
    return celery


def restore_abandoned(celery: Celery) -> None:
    """Put tasks a dead worker had taken (unacknowledged past the visibility timeout) back.

    kombu's Redis transport restores them only when a poll comes back empty, which never
    happens to a consumer waiting in BRPOP (every poll ends with BRPOP's own reply): without
    this sweep, a task of a killed worker would wait for a worker restart.

    Args:
        celery: The Celery app.
    """
    with celery.connection_for_read() as connection:
        qos = connection.default_channel.qos
        qos.restore_visible(num=SWEEP_BATCH, interval=1)


def _heartbeat_reporter(app: Flask, celery: Celery) -> Callable[..., None]:
    """A ``heartbeat_sent`` receiver publishing each beat of this app's worker.

    Celery sends the signal from the worker's heartbeat timer (every 2 s, on the worker's own
    event loop), so the published beat (``shared.services.workers``) stops when the worker
    is killed or hangs; a clean shutdown (Celery's worker-offline) takes it off the list. One
    Redis round trip per beat; a failure waits for the next beat.

    Args:
        app: The Flask app (its Redis client).
        celery: Its Celery app: beats of another Celery app in the process are not its own.

    Returns:
        The receiver.
    """
    started: set[int] = set()  # the Hearts that sent worker-online already

    def report(sender: Any = None, **_kwargs: Any) -> None:
        eventer = getattr(sender, "eventer", None)
        if eventer is None or eventer.app is not celery:
            return
        try:
            with app.app_context():
                # Celery's Heart sends worker-online (before its timer exists), the beats, then
                # worker-offline (after cancelling its timer) through the same path.
                if sender.tref is None and id(sender) in started:
                    workers.forget_worker(eventer.hostname)
                    return
                started.add(id(sender))
                workers.record_heartbeat(
                    eventer.hostname,
                    pid=os.getpid(),
                    active=len(worker_state.active_requests),
                    processed=worker_state.all_total_count[0],
                    interval=sender.interval,
                )
        except Exception:  # noqa: BLE001 - Redis away for a moment: the next beat tries again
            logger.debug("could not publish the worker's heartbeat", exc_info=True)

    return report


def _freeze_heap(**_kwargs: Any) -> None:
    """``worker_ready``: keep the startup heap out of the garbage collector's full passes."""
    freeze_startup_heap()


def _start_sweeper(sender: Any = None, **_kwargs: Any) -> None:
    """``worker_ready``: sweep for abandoned tasks every :data:`SWEEP_INTERVAL` in the worker."""
    celery = sender.app
    if celery.conf.worker_pool == "threads" and not cooperative():
        logger.warning(
            "worker runs the thread pool (%s threads): pass --pool gevent on the command line "
            "for the gevent pool",
            celery.conf.worker_concurrency,
        )
    interval = min(SWEEP_INTERVAL, celery.conf.broker_transport_options["visibility_timeout"] / 3)

    def sweep() -> None:
        while True:
            time.sleep(interval)
            try:
                restore_abandoned(celery)
            except Exception:  # the broker may be down for a moment; the next sweep retries
                logger.warning("could not sweep for abandoned tasks", exc_info=True)

    threading.Thread(target=sweep, name="abandoned-task-sweeper", daemon=True).start()


class CeleryExt:
    """Flask extension binding a Celery app to each Flask app (``app.extensions["celery"]``)."""

    def init_app(self, app: Flask) -> None:
        """Create the app's Celery app (see :func:`celery_init_app`).

        Args:
            app: The Flask app.
        """
        celery_init_app(app)


#: Publishing gives up quickly when the broker is down, so callers can answer accordingly
#: (the webhook answers 5xx and Telegram redelivers; the listener keeps the offset).
ENQUEUE_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}

UPDATE_TASK = "tasks.updates.process_update"
#: The payload fields of an update, as the metrics name its kind.
UPDATE_KINDS = frozenset(
    (
        "message", "edited_message", "channel_post", "edited_channel_post", "business_message",
        "callback_query", "inline_query", "chosen_inline_result", "shipping_query",
        "pre_checkout_query", "poll", "poll_answer", "my_chat_member", "chat_member",
        "chat_join_request", "message_reaction", "message_reaction_count", "chat_boost",
    )
)  # fmt: skip
TEXT_TASK = "tasks.replies.answer_text"
#: The messages the periodic plan check sends (``shared.schedule`` queues the check).
NOTIFY_TASK = "tasks.plans.notify"
REPLY_TASK = "tasks.replies.generate_reply"


def enqueue(app: Flask, task_name: str, *args: object) -> None:
    """Enqueue a task by name without importing worker code; nobody waits for its result.

    Args:
        app: The Flask app whose Celery app publishes.
        task_name: e.g. :data:`UPDATE_TASK`.
        *args: JSON-serializable arguments.

    Raises:
        kombu.exceptions.OperationalError: When the broker cannot be reached (after a short
            bounded retry).
    """
    app.extensions["celery"].send_task(
        task_name,
        args=list(args),
        ignore_result=True,
        retry_policy=ENQUEUE_RETRY_POLICY,
        # Celery would saferepr() the whole update for the message's headers: a tenth of the
        # listener's CPU. Flower and the logs get the update's id instead.
        argsrepr=_argsrepr(args),
        kwargsrepr="{}",
    )


def _argsrepr(args: tuple[object, ...]) -> str:
    """A short description of a task's arguments: ``update_id`` for an update, else the value."""
    shown = []
    for arg in args:
        if isinstance(arg, dict) and "update_id" in arg:
            shown.append(f"<update {arg['update_id']}>")
        elif isinstance(arg, bool | int | float) or arg is None:
            shown.append(repr(arg))
        else:
            shown.append(f"<{type(arg).__name__}>")
    return f"({', '.join(shown)})"


def enqueue_update(app: Flask, update: dict[str, Any], after_earlier: bool | None = None) -> None:
    """Queue a raw Telegram update for the task that handles its kind (webhook and listener).

    A text message that is not one of the bot's commands, a photo, a voice message, audio or
    a document is a question for the LLM: it goes straight to :data:`TEXT_TASK` on the ``llm``
    queue, one task per message. In a group only what is addressed to the bot is queued
    (:func:`for_bot`); the rest is counted as ``ignored`` and dropped. Commands, button
    presses and everything else go to :data:`UPDATE_TASK` on the fast ``updates`` queue, so they
    never wait behind LLM answers. A malformed message or button press
    (``shared.telegram.updates.problem``) is dropped here, logged and counted as ``malformed``:
    no task would do anything with it but fail. Each question enters its chat's inbox
    (``shared.services.inbox``): a question with another of its chat in flight waits for the
    earlier ones to be logged first, whichever worker takes it.

    Args:
        app: The Flask app whose Celery app publishes.
        update: The update as Telegram sent it.
        after_earlier: For a question already entered in its chat's inbox (by
            :func:`enter_questions`, for a batch): whether it must wait for earlier ones.
            None: enter it now.

    Raises:
        kombu.exceptions.OperationalError: When the broker cannot be reached.
    """
    reason = updates.problem(update)
    if reason is not None:
        logger.warning(
            "dropped a malformed update update_id=%s: %s", update.get("update_id"), reason
        )
        metrics.inc(metrics.UPDATES_RECEIVED, app=app, kind="malformed")
        return
    if not for_bot(app, update):
        metrics.inc(metrics.UPDATES_RECEIVED, app=app, kind="ignored")
        return
    question = is_question(update)
    if question:
        if after_earlier is None:
            after_earlier = inbox.enter(app, update["message"]["chat"]["id"], update["update_id"])
        if after_earlier:
            enqueue(app, TEXT_TASK, update, True)  # after the chat's earlier questions
        else:
            enqueue(app, TEXT_TASK, update)
    else:
        enqueue(app, UPDATE_TASK, update)
    kind = "question" if question else update_kind(update)
    metrics.inc(metrics.UPDATES_RECEIVED, app=app, kind=kind)


def enter_questions(app: Flask, batch: list[dict[str, Any]]) -> dict[int, bool]:
    """Enter a batch's questions in their chats' inboxes in one round trip (the listener).

    Args:
        app: The Flask app.
        batch: Updates in Telegram's order (as ``getUpdates`` returns them).

    Returns:
        For each well-formed question's ``update_id``: whether it must wait for an earlier
        question of its chat (pass it to :func:`enqueue_update`).
    """
    questions = [
        u for u in batch if updates.problem(u) is None and is_question(u) and for_bot(app, u)
    ]
    entries = [(u["message"]["chat"]["id"], u["update_id"]) for u in questions]
    waits = inbox.enter_many(app, entries)
    return {update_id: wait for (_chat, update_id), wait in zip(entries, waits, strict=True)}


def update_kind(update: dict[str, Any]) -> str:
    """The kind of an update for the metrics: its field (``message``, ``callback_query`` …).

    A message whose text starts with ``/`` is a ``command``; a field Telegram does not send
    (or none) is ``other``, so a forged body cannot invent label values.

    Args:
        update: A raw update.

    Returns:
        ``command``, the name of the update's payload field, or ``other``.
    """
    message = update.get("message")
    if isinstance(message, dict) and str(message.get("text") or "").startswith("/"):
        return "command"
    return next((key for key in update if key in UPDATE_KINDS), "other")


#: Message fields that make a message a question even without text (the caption is the text);
#: the worker's dispatcher hands the same kinds to the LLM queue (``bot.handlers.dialog``).
QUESTION_CONTENT = ("photo", "voice", "audio", "document")


def is_question(update: dict[str, Any]) -> bool:
    """Whether an update is a question for the LLM (not a bot command).

    Args:
        update: A raw update.

    Returns:
        True for a ``message`` with text that does not start with a known ``/command``, and
        for a photo, voice message, audio or document (with or without a caption).
    """
    message = update.get("message")
    if not isinstance(message, dict):
        return False
    text = message.get("text")
    if not isinstance(text, str):
        if "animation" in message:  # a GIF carries a ``document`` too: it is not a text file
            return False
        return any(isinstance(message.get(kind), dict | list) for kind in QUESTION_CONTENT)
    if not text.startswith("/"):
        return True
    command = text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if len(text) > 1 else ""
    return command not in BOT_COMMANDS


def for_bot(app: Flask, update: dict[str, Any]) -> bool:
    """Whether the bot should handle an update at all: in a group, only what addresses it.

    A private chat, a button press, a payment: always. A group message: only when
    ``shared.services.groups.addressed`` says it is for this bot (its identity comes from
    ``getMe``, kept in memory and Redis).

    Args:
        app: The Flask app (its Bot API client asks ``getMe`` once per token).
        update: A well-formed raw update.

    Returns:
        False for a group message meant for people (or for another bot).

    Raises:
        BotApiUnavailable: When the bot's identity is unknown and Telegram cannot be reached.
    """
    message = update.get("message")
    if not isinstance(message, dict) or not groups.is_group(message.get("chat")):
        return True
    if "successful_payment" in message:
        return True
    from shared.extensions import telegram  # noqa: PLC0415 - the extensions import this module

    with app.app_context():
        me = telegram.me()
    return groups.addressed(message, groups.BotIdentity.of(me), BOT_COMMANDS)
