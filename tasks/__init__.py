"""Celery tasks: thin wrappers that take ids or JSON, call a service, and decide about retries.

Each task has an explicit name (``tasks.<module>.<function>``) so producers enqueue it by name
with ``send_task`` and never import worker code. Tasks must be idempotent: the broker may
deliver a task twice (``acks_late`` plus redelivery after a crash).
"""
