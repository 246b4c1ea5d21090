"""Celery beat in the listener (``shared.schedule``): once per deployment, and it does its job."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from shared.db import db
from shared.models import Plan, User
from shared.models.types import utcnow
from shared.schedule import BEAT_LOCK_KEY, CHECK_PLANS_TASK, start_beat
from shared.services.plans import seed_plans
from tests.support import wait_until


def test_one_beat_ticks_however_many_listeners_run(
    app: Flask, second_process: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """Two listeners' schedulers at once: one holds the lock, the check is queued once."""
    caplog.set_level(logging.INFO, logger="celery.beat")
    stop = threading.Event()
    threads = [start_beat(app, stop), start_beat(second_process, stop)]
    try:
        wait_until(lambda: "Sending due task" in caplog.text, what="the first check queued")
        stop.wait(1.5)  # both threads tick a few times meanwhile
        assert app.extensions["redis"].get(BEAT_LOCK_KEY) is not None
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    sent = [
        r
        for r in caplog.records
        if r.name == "celery.beat" and "Sending due task" in r.getMessage()
        and CHECK_PLANS_TASK in r.getMessage()
    ]  # fmt: skip
    assert len(sent) == 1, [r.getMessage() for r in sent]
    assert app.extensions["redis"].get(BEAT_LOCK_KEY) is None, "released on stop"


def test_the_listeners_beat_expires_plans_through_the_worker(
    app: Flask, celery_worker: object
) -> None:
    """An ended plan falls back to the default soon after a listener starts: beat → worker."""
    with app.app_context():
        seed_plans()
        paid = db.session.scalar(select(Plan).where(Plan.name == "Paid"))
        db.session.add(User(telegram_id=9100, plan_id=paid.id, plan_expires_at=utcnow()))
        db.session.add(
            User(telegram_id=9101, plan_id=paid.id, plan_expires_at=utcnow() + timedelta(days=9))
        )
        db.session.commit()
    stop = threading.Event()
    thread = start_beat(app, stop)

    def plans() -> dict[int, int | None]:
        with app.app_context():
            rows = db.session.execute(select(User.telegram_id, User.plan_id)).all()
            db.session.rollback()
            return dict(rows)

    try:
        wait_until(lambda: plans()[9100] is None, timeout=30, what="the expired plan moved")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert plans()[9101] is not None, "a plan ending in 9 days stays"
