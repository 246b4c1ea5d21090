"""Prometheus metrics of the whole deployment, summed in Redis.

Every process (web, listener, workers, on any host) records its events in memory — a counter
increment or a histogram observation costs a dict update, no I/O — and a background flusher
adds what accumulated to one Redis hash every :data:`FLUSH_INTERVAL` seconds, in one pipeline
of ``HINCRBYFLOAT``. ``GET /metrics`` (``web/metrics.py``) reads that hash and exposes it in
Prometheus' text format through ``prometheus_client``'s metric families, with the gauges read
at scrape time: the depth of each Celery queue, and the answers being generated (each process
reports its own count with a short expiry; the scrape sums them).

So one scrape of any web process sees the whole deployment, however many processes and hosts
run, and the counters survive process restarts (they reset only with Redis). An event of the
last ``FLUSH_INTERVAL`` seconds before a process is killed may be lost; a flush that fails
(Redis away) keeps its increments for the next one.

What is measured is declared once, in :data:`METRICS`; recording an undeclared name raises.
Record with :func:`inc` and :func:`observe` (``from shared import metrics``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, has_app_context
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from shared.redis import KEY_PREFIX, current_redis
from shared.services.generations import in_flight as generations_in_flight

logger = logging.getLogger(__name__)

#: Seconds between two flushes of a process's increments to Redis.
FLUSH_INTERVAL = 2.0
#: The hash holding every counter and histogram series of the deployment.
METRICS_KEY = f"{KEY_PREFIX}metrics"
#: Each process's count of answers in flight: ``<prefix><process id>``, expiring.
IN_FLIGHT_PREFIX = f"{KEY_PREFIX}metrics:in_flight:"
#: The Celery queues whose depth is reported.
QUEUES = ("updates", "llm")
#: Seconds: the model answering (whole call, first token).
LLM_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 60.0, 120.0)
_SEP = "\x1f"

UPDATES_RECEIVED = "ai_router_updates_received_total"
REPLIES_DELIVERED = "ai_router_replies_delivered_total"
LLM_REQUESTS = "ai_router_llm_requests_total"
LLM_LATENCY = "ai_router_llm_latency_seconds"
LLM_TTFT = "ai_router_llm_time_to_first_token_seconds"
LLM_COOLDOWNS = "ai_router_llm_cooldowns_total"
TELEGRAM_CALLS = "ai_router_telegram_calls_total"
TELEGRAM_RETRY_AFTER = "ai_router_telegram_retry_after_seconds_total"


@dataclass(frozen=True)
class Metric:
    """One declared metric.

    Attributes:
        name: The Prometheus name (counters end in ``_total``).
        kind: ``counter`` or ``histogram``.
        help: What it counts.
        labels: Its label names, in order.
        buckets: Upper bounds of a histogram's buckets (``+Inf`` is added).
    """

    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


#: Everything the deployment records, by name.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            UPDATES_RECEIVED,
            "counter",
            "Telegram updates queued by the webhook or the listener, by kind.",
            ("kind",),
        ),
        Metric(
            REPLIES_DELIVERED,
            "counter",
            "Replies to questions settled, by the row's status (undeliverable: Telegram refused).",
            ("status",),
        ),
        Metric(
            LLM_REQUESTS,
            "counter",
            "HTTP requests to a model's endpoint (each retry counts), by model and outcome.",
            ("model", "outcome"),
        ),
        Metric(
            LLM_LATENCY,
            "histogram",
            "Duration of a model's successful answer, request to last chunk.",
            ("model",),
            LLM_BUCKETS,
        ),
        Metric(
            LLM_TTFT,
            "histogram",
            "Time from the request to the first text of a model's answer.",
            ("model",),
            LLM_BUCKETS,
        ),
        Metric(
            LLM_COOLDOWNS,
            "counter",
            "Cooldowns started: a model gave up too often and every worker skips it a while.",
            ("model",),
        ),
        Metric(
            TELEGRAM_CALLS,
            "counter",
            "Bot API calls, by method and outcome (ok, 429, 4xx, 5xx, network).",
            ("method", "outcome"),
        ),
        Metric(
            TELEGRAM_RETRY_AFTER,
            "counter",
            "Seconds of retry_after Telegram imposed with its 429s.",
        ),
    )
}


@dataclass
class _Buffer:
    """A process's increments since its last flush (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: dict[str, float] = field(default_factory=dict)
    flusher: threading.Thread | None = None
    process_id: str = ""


def _field(name: str, labels: Mapping[str, str]) -> str:
    """The hash field of one series: the name, then ``label=value`` in declared order."""
    return _SEP.join([name, *(f"{k}={labels[k]}" for k in METRICS[name].labels)])


class Metrics:
    """Flask extension: each app gets its buffer of increments (``app.extensions["metrics"]``).

    Recording goes through the module's :func:`inc` and :func:`observe`; nothing connects and
    no thread starts until the first event.
    """

    def init_app(self, app: Flask) -> None:
        """Give the app its buffer.

        Args:
            app: The Flask app.
        """
        app.extensions["metrics"] = _Buffer(
            process_id=f"{socket.gethostname()}:{os.getpid()}:{id(app):x}"
        )


def inc(name: str, amount: float = 1.0, *, app: Flask | None = None, **labels: str) -> None:
    """Add to a counter (in memory; flushed to Redis in the background).

    A no-op without an app (given, or the current one).

    Args:
        name: A declared counter.
        amount: How much (≥ 0).
        app: The app whose buffer records it (default: the current app).
        **labels: Its labels (every declared one).

    Raises:
        KeyError: For an undeclared metric or a missing label (a programming error).
    """
    _add({_field(name, labels): amount}, app)


def observe(name: str, value: float, **labels: str) -> None:
    """Record one observation of a histogram (in memory; flushed in the background).

    A no-op outside an app context.

    Args:
        name: A declared histogram.
        value: The observed value (seconds).
        **labels: Its labels (every declared one).

    Raises:
        KeyError: For an undeclared metric or a missing label (a programming error).
    """
    metric = METRICS[name]
    base = [f"{k}={labels[k]}" for k in metric.labels]
    increments = {
        _SEP.join([f"{name}|sum", *base]): value,
        _SEP.join([f"{name}|count", *base]): 1.0,
    }
    for bound in metric.buckets:
        if value <= bound:  # buckets are cumulative
            increments[_SEP.join([f"{name}|bucket", *base, f"le={bound}"])] = 1.0
    _add(increments, None)


def _add(increments: dict[str, float], app: Flask | None) -> None:
    if app is None:
        if not has_app_context():
            return
        app = current_app._get_current_object()  # noqa: SLF001 - the flusher needs the app
    buffer: _Buffer = app.extensions["metrics"]
    with buffer.lock:
        for key, amount in increments.items():
            buffer.pending[key] = buffer.pending.get(key, 0.0) + amount
        if buffer.flusher is None:
            buffer.flusher = threading.Thread(
                target=_flush_forever, args=(app,), name="metrics-flusher", daemon=True
            )
            buffer.flusher.start()


def _flush_forever(app: Flask) -> None:
    while True:
        time.sleep(FLUSH_INTERVAL)
        with app.app_context():
            try:
                flush()
            except Exception:  # noqa: BLE001 - Redis away: the increments wait for the next flush
                logger.debug("metrics flush failed", exc_info=True)


def flush() -> None:
    """Add this process's pending increments to Redis and report its answers in flight.

    Raises:
        redis.RedisError: When Redis cannot be reached (the increments are kept for later).
    """
    buffer: _Buffer = current_app.extensions["metrics"]
    with buffer.lock:
        pending, buffer.pending = buffer.pending, {}
    in_flight = generations_in_flight()
    try:
        pipe = current_redis().pipeline(transaction=False)
        for key, amount in pending.items():
            pipe.hincrbyfloat(METRICS_KEY, key, amount)
        pipe.set(IN_FLIGHT_PREFIX + buffer.process_id, in_flight, ex=int(FLUSH_INTERVAL * 3))
        pipe.execute()
    except Exception:
        with buffer.lock:  # put them back for the next flush
            for key, amount in pending.items():
                buffer.pending[key] = buffer.pending.get(key, 0.0) + amount
        raise


class DeploymentCollector(Collector):
    """The deployment's metrics for ``prometheus_client``: read from Redis at each scrape.

    Args:
        client: A Redis client (the app's).
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def collect(self) -> Iterator[Any]:
        """Yield every declared metric, then the queue depths and the answers in flight."""
        series: dict[str, dict[str, list[tuple[tuple[str, ...], str, float]]]] = {}
        for raw_key, raw_value in self._client.hgetall(METRICS_KEY).items():
            name, *pairs = _text(raw_key).split(_SEP)
            metric_name, _, part = name.partition("|")
            if metric_name not in METRICS:
                continue  # written by another version
            values = dict(pair.split("=", 1) for pair in pairs)
            le = values.pop("le", "")
            labels = tuple(values.get(k, "") for k in METRICS[metric_name].labels)
            series.setdefault(metric_name, {}).setdefault(part, []).append(
                (labels, le, float(raw_value))
            )
        for metric in METRICS.values():
            found = series.get(metric.name, {})
            if metric.kind == "counter":
                family = CounterMetricFamily(
                    metric.name.removesuffix("_total"), metric.help, labels=metric.labels
                )
                for labels, _le, value in found.get("", []):
                    family.add_metric(labels, value)
                yield family
                continue
            yield _histogram(metric, found)
        depth = GaugeMetricFamily(
            "ai_router_queue_depth", "Tasks waiting in each Celery queue.", labels=("queue",)
        )
        for queue in QUEUES:
            depth.add_metric((queue,), float(self._client.llen(queue)))
        yield depth
        keys = list(self._client.scan_iter(f"{IN_FLIGHT_PREFIX}*", count=1000))
        values = self._client.mget(keys) if keys else []
        yield GaugeMetricFamily(
            "ai_router_answers_in_flight",
            "Answers being generated right now, across every worker process.",
            value=float(sum(int(v) for v in values if v is not None)),
        )


def _histogram(
    metric: Metric, found: dict[str, list[tuple[tuple[str, ...], str, float]]]
) -> HistogramMetricFamily:
    """Assemble a histogram family from its bucket, sum and count series."""
    family = HistogramMetricFamily(metric.name, metric.help, labels=metric.labels)
    buckets: dict[tuple[str, ...], dict[str, float]] = {}
    for labels, le, value in found.get("bucket", []):
        buckets.setdefault(labels, {})[le] = value
    sums = {labels: value for labels, _le, value in found.get("sum", [])}
    for labels, _le, count in found.get("count", []):
        seen = buckets.get(labels, {})
        cumulative = [(str(bound), seen.get(str(bound), 0.0)) for bound in metric.buckets]
        family.add_metric(labels, [*cumulative, ("+Inf", count)], sum_value=sums.get(labels, 0.0))
    return family


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
