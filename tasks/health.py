"""Health tasks: prove the round trip producer → broker → worker → result backend."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="tasks.health.ping", ignore_result=False)
def ping(payload: str = "pong") -> dict[str, str]:
    """Answer a ping from inside a worker.

    Args:
        payload: Echoed back, so the caller can tell its own ping's answer.

    Returns:
        ``{"pong": payload}``.
    """
    return {"pong": payload}
