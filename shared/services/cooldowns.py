"""Cooldowns of failing models, shared by every process (as LLM gateways do).

A model *gives up* when its retries are spent (``shared.llm.chat``). Each give-up is counted
in Redis; the ``MODEL_COOLDOWN_FAILURES``-th within ``MODEL_COOLDOWN_SECONDS`` cools the model
down for ``MODEL_COOLDOWN_SECONDS``: every worker then skips it and asks its fallback directly
(a model with no usable fallback fails at once with "cooling down" instead of making each user
wait through the retries). When the cooldown ends, the next question tries the model again, and
the admin's «Test» ends it early when the model answers.

Refusals that belong to one request (400, 413, 422: a prompt too long, a bad parameter) are not
the model's fault and are not counted. The last error of every model is kept for the admin,
counted or not.

Keys (all under ``ai_router:models:``):

- ``cooldowns`` — hash ``model id → {"until", "since", "error"}`` (epoch seconds);
- ``last_error`` — hash ``model id → {"at", "error"}``;
- ``failures:<id>`` — the give-ups in the current window (expires with it).

Reading is free on the hot path: each process keeps the cooldowns in memory and reloads the
hash only when the runtime settings version changes (``shared.runtime``), which starting or
ending a cooldown bumps, so every process knows within about a second.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import select

from shared import metrics
from shared.db import db
from shared.llm import LLMHTTPError, ModelSpec
from shared.models import LLMModel
from shared.redis import KEY_PREFIX, app_script
from shared.runtime import VERSION_KEY, RuntimeSettings

logger = logging.getLogger(__name__)

COOLDOWNS_KEY = f"{KEY_PREFIX}models:cooldowns"
LAST_ERROR_KEY = f"{KEY_PREFIX}models:last_error"
FAILURES_PREFIX = f"{KEY_PREFIX}models:failures:"
#: HTTP statuses that refuse one request, not the model: never counted.
REQUEST_FAULTS = frozenset({400, 413, 422})

# KEYS: failures counter, last-error hash, cooldowns hash, runtime version.
# ARGV: model id, last-error JSON, threshold, window ms, cooldown JSON.
# Returns 1 when this give-up started a cooldown.
_GAVE_UP = """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local threshold = tonumber(ARGV[3])
if threshold <= 0 then return 0 end
local failures = redis.call('INCR', KEYS[1])
if failures == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
if failures < threshold then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
redis.call('INCR', KEYS[4])
return 1
"""


@dataclass(frozen=True)
class ModelHealth:
    """What the admin sees of one model's recent calls.

    Attributes:
        cooldown_until: When its cooldown ends (UTC), or None when it is not cooling down.
        last_error: The last error it gave up with (or the last failed «Test»), or None.
        last_error_at: When that was (UTC), or None.
        recent_failures: Give-ups counted in the current window.
    """

    cooldown_until: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    recent_failures: int = 0

    @property
    def state(self) -> str:
        """``cooling_down`` or ``ok``."""
        return "cooling_down" if self.cooldown_until is not None else "ok"


@dataclass
class _State:
    """Per-app memory of the cooldowns (``app.extensions["cooldowns"]``)."""

    version: int | None = None
    until: dict[int, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def counts(exc: BaseException) -> bool:
    """Whether a give-up counts towards a cooldown (not a refusal of this one request).

    Args:
        exc: The error the model gave up with.

    Returns:
        False for a 400, 413 or 422 from the endpoint; True otherwise.
    """
    return not (isinstance(exc, LLMHTTPError) and exc.status in REQUEST_FAULTS)


class Cooldowns:
    """Flask extension: which models are cooling down, read from memory; give-ups recorded.

    ``shared.llm.LLMGateway`` finds it as ``app.extensions["model_health"]`` and calls
    :meth:`cooling` before asking a model and :meth:`gave_up` when one gave up.

    Args:
        runtime: The runtime settings extension (its version says when to reload).
    """

    def __init__(self, runtime: RuntimeSettings) -> None:
        self._runtime = runtime

    def init_app(self, app: Flask) -> None:
        """Bind to an app.

        Args:
            app: The Flask app (Redis and the runtime settings bound first).
        """
        app.extensions["cooldowns"] = _State()
        app.extensions["model_health"] = self

    def cooling(self, spec: ModelSpec) -> bool:
        """Whether every worker should skip this model for now (no I/O unless a change).

        Args:
            spec: The model about to be asked.

        Returns:
            True while its cooldown lasts.
        """
        state: _State = current_app.extensions["cooldowns"]
        version = self._runtime.get().version
        if version != state.version and version != -1:
            self._reload(state, version)
        until = state.until.get(spec.id)
        return until is not None and until > time.time()

    @staticmethod
    def _reload(state: _State, version: int) -> None:
        """Read the cooldowns hash after a change of the runtime version."""
        try:
            raw = current_app.extensions["redis"].hgetall(COOLDOWNS_KEY)
        except Exception:  # Redis down: no cooldowns rather than no answers
            logger.warning("cooldowns: cannot read them from Redis", exc_info=True)
            return
        now = time.time()
        until = {}
        for model_id, value in raw.items():
            ends = float(json.loads(value)["until"])
            if ends > now:
                until[int(model_id)] = ends
        with state.lock:
            state.until, state.version = until, version

    def gave_up(self, spec: ModelSpec, exc: BaseException) -> None:
        """Record that a model gave up; the threshold-th time in a window cools it down.

        Never raises: a Redis failure is logged and the give-up goes uncounted.

        Args:
            spec: The model.
            exc: The error it gave up with.
        """
        config = current_app.config["AI_ROUTER"]
        now = time.time()
        error = _describe(exc)
        threshold = config.model_cooldown_failures if counts(exc) else 0
        seconds = config.model_cooldown_seconds
        try:
            started = app_script(current_app, _GAVE_UP)(
                keys=[f"{FAILURES_PREFIX}{spec.id}", LAST_ERROR_KEY, COOLDOWNS_KEY, VERSION_KEY],
                args=[
                    spec.id,
                    json.dumps({"at": now, "error": error}),
                    threshold,
                    seconds * 1000,
                    json.dumps({"until": now + seconds, "since": now, "error": error}),
                ],
            )
        except Exception:
            logger.warning("cooldowns: cannot record a give-up of %s", spec.name, exc_info=True)
            return
        if started:
            state: _State = current_app.extensions["cooldowns"]
            with state.lock:  # this process knows at once; the others at their next check
                state.until = {**state.until, spec.id: now + seconds}
            metrics.inc(metrics.LLM_COOLDOWNS, model=spec.name)
            logger.warning(
                "model cooled down model=%s seconds=%s after=%s failures, last: %s",
                spec.name,
                seconds,
                threshold,
                error,
            )


def _describe(exc: BaseException) -> str:
    """One line for the admin (no secrets, no traceback)."""
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def note_error(model_id: int, error: str) -> None:
    """Keep a model's last error without counting it (a failed «Test»).

    Args:
        model_id: The model.
        error: One line for the admin.
    """
    current_app.extensions["redis"].hset(
        LAST_ERROR_KEY, str(model_id), json.dumps({"at": time.time(), "error": error})
    )


def end_cooldown(model_id: int) -> bool:
    """End a model's cooldown and forget its failures (it answered the admin's «Test»).

    Args:
        model_id: The model.

    Returns:
        Whether it was cooling down.
    """
    pipe = current_app.extensions["redis"].pipeline()
    pipe.hdel(COOLDOWNS_KEY, str(model_id))
    pipe.delete(f"{FAILURES_PREFIX}{model_id}")
    pipe.hdel(LAST_ERROR_KEY, str(model_id))
    pipe.incr(VERSION_KEY)
    removed = pipe.execute()[0]
    state: _State | None = current_app.extensions.get("cooldowns")
    if state is not None:  # this process knows at once; the others at their next check
        with state.lock:
            state.until = {k: v for k, v in state.until.items() if k != model_id}
    if removed:
        logger.info("model cooldown ended by a successful test model_id=%s", model_id)
    return bool(removed)


def health(model_ids: list[int]) -> dict[int, ModelHealth]:
    """The health of some models, for the admin page and the API (one round trip).

    Args:
        model_ids: The models.

    Returns:
        Their health by id (``ok`` with no error for a model Redis knows nothing about, or
        for all of them when Redis cannot be read).
    """
    if not model_ids:
        return {}
    try:
        pipe = current_app.extensions["redis"].pipeline(transaction=False)
        pipe.hgetall(COOLDOWNS_KEY)
        pipe.hgetall(LAST_ERROR_KEY)
        pipe.mget([f"{FAILURES_PREFIX}{model_id}" for model_id in model_ids])
        cooldowns, errors, failures = pipe.execute()
    except Exception:
        logger.warning("cooldowns: cannot read model health from Redis", exc_info=True)
        return {model_id: ModelHealth() for model_id in model_ids}
    now = time.time()
    found: dict[int, ModelHealth] = {}
    for model_id, count in zip(model_ids, failures, strict=True):
        cooldown = _loads(cooldowns.get(str(model_id)))
        error = _loads(errors.get(str(model_id)))
        ends = cooldown.get("until")
        found[model_id] = ModelHealth(
            cooldown_until=_utc(ends) if ends and float(ends) > now else None,
            last_error=error.get("error"),
            last_error_at=_utc(error["at"]) if "at" in error else None,
            recent_failures=int(count or 0),
        )
    return found


def health_of(model_id: int) -> ModelHealth:
    """One model's health, read for every model once per app context (admin lists, the API).

    Args:
        model_id: The model.

    Returns:
        Its health.
    """
    loaded: dict[int, ModelHealth] | None = g.get("model_health")
    if loaded is None or model_id not in loaded:
        ids = set(db.session.scalars(select(LLMModel.id))) | {model_id}
        loaded = health(sorted(ids))
        g.model_health = loaded
    return loaded[model_id]


def _loads(value: Any) -> dict[str, Any]:
    """A stored JSON object, or ``{}``."""
    if not value:
        return {}
    try:
        loaded = json.loads(value)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _utc(epoch: float) -> datetime:
    """An aware UTC datetime from epoch seconds."""
    return datetime.fromtimestamp(float(epoch), UTC)


__all__ = [
    "Cooldowns",
    "ModelHealth",
    "counts",
    "end_cooldown",
    "health",
    "health_of",
    "note_error",
]
