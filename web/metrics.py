"""``GET /metrics``: the whole deployment's Prometheus metrics (``shared.metrics``).

Any web process answers for every process of the deployment: the counters and histograms are
summed in Redis, the gauges read at the scrape. With ``METRICS_TOKEN`` set the scrape needs it
as a bearer token (401 otherwise); unset, the endpoint is open — keep it on a private network.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.metrics import DeploymentCollector
from shared.redis import current_redis

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Expose the deployment's metrics in Prometheus' text format.

    Returns:
        ``200`` with the exposition; ``401`` when ``METRICS_TOKEN`` is set and not presented.
    """
    token = current_app.config["AI_ROUTER"].metrics_token
    if token:
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), token.encode()):
            return Response(
                "unauthorized\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'},
                mimetype="text/plain",
            )  # fmt: skip
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeploymentCollector(current_redis()))
    return Response(generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST})
