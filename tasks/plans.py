"""Plan expiry, queued by Celery beat (``shared.schedule``): back to the default plan, reminders.

``tasks.plans.check_plans`` runs every ``PLAN_CHECK_SECONDS`` (queue ``updates``): it moves users
whose plan has ended back to the default plan (each change recorded as ``expiry``) and marks
users whose plan ends within ``PLAN_REMIND_DAYS`` as reminded, committing each batch; then it
queues one ``tasks.plans.notify`` per user, so a slow or refused send never holds the job.
Enforcement never waits for this job: an expired plan stops counting the moment it ends
(``shared.services.plans.effective_plan``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from celery import shared_task
from flask import current_app

from shared.celery_setup import NOTIFY_TASK, enqueue
from shared.db import db
from shared.extensions import runtime, telegram
from shared.services import payments, plans
from shared.telegram.client import ChatUnreachable, SendDeferred
from shared.telegram.keyboards import buy_keyboard
from shared.telegram.texts import lang_of, local_time, t

logger = logging.getLogger(__name__)


@shared_task(name="tasks.plans.check_plans")
def check_plans() -> dict[str, int]:
    """Expire ended plans and remind users whose plan ends soon; queue their messages.

    Returns:
        ``{"expired": n, "reminded": m}``.
    """
    config = current_app.config["AI_ROUTER"]
    default = plans.default_plan()
    default_name = default.name if default else ""
    expired = reminded = 0
    try:
        while batch := plans.expire_due():
            notes = [(u.telegram_id, u.language_code, name) for u, name in batch if u.reachable]
            db.session.commit()
            expired += len(batch)
            for telegram_id, language_code, name in notes:
                enqueue(current_app, NOTIFY_TASK, telegram_id, "plan_expired", language_code,
                        {"plan": name, "default": default_name})  # fmt: skip
        while batch := plans.reminders_due(days=config.plan_remind_days):
            notes = [
                (u.telegram_id, u.language_code, u.plan.name if u.plan else "", u.plan_expires_at)
                for u in batch
                if u.reachable
            ]
            db.session.commit()
            reminded += len(batch)
            for telegram_id, language_code, name, ends in notes:
                enqueue(current_app, NOTIFY_TASK, telegram_id, "plan_expires_soon", language_code,
                        {"plan": name, "date": ends.isoformat()})  # fmt: skip
    finally:
        db.session.close()
    if expired or reminded:
        logger.info("plans checked: %s expired, %s reminded", expired, reminded)
    return {"expired": expired, "reminded": reminded}


@shared_task(name="tasks.plans.notify", bind=True, max_retries=5)
def notify(self, telegram_id: int, key: str, language_code: str | None, values: dict) -> None:
    """Tell a user about their plan (ended, or ending soon with the «Купить тариф» button).

    Args:
        self: The bound task.
        telegram_id: The user (their private chat).
        key: ``plan_expired`` or ``plan_expires_soon``.
        language_code: Their Telegram language.
        values: The text's placeholders (``date`` as ISO 8601, shown in the configured zone).
    """
    lang = lang_of(language_code)
    if "date" in values:
        tz_name = current_app.config["AI_ROUTER"].timezone
        values = {**values, "date": local_time(datetime.fromisoformat(values["date"]), tz_name)}
    markup = buy_keyboard(lang) if payments.offers(runtime.get()) else None
    try:
        telegram.send_message(telegram_id, t(key, lang, **values), reply_markup=markup)
    except ChatUnreachable:
        logger.info("plan notice not sent: chat %s unreachable", telegram_id)
    except SendDeferred as exc:
        raise self.retry(exc=exc, countdown=exc.wait) from exc
