"""Plans and payments end to end: limits across workers, /usage, /buy in Stars, refunds, expiry.

Everything goes through the real parts: updates enter by the door the webhook and the listener
use, real Celery workers answer through the fake Bot API and llmock, the limits live in the
test's Redis, the plans and payments in its database.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from shared.celery_setup import enqueue_update
from shared.config import Config
from shared.db import db
from shared.extensions import runtime
from shared.models import (
    LLMModel,
    Payment,
    PaymentStatus,
    Plan,
    PlanChange,
    Request,
    RequestStatus,
    User,
)
from shared.models.types import utcnow
from shared.redis import KEY_PREFIX
from shared.services import payments
from shared.services.catalog import set_api_key
from shared.services.plans import seed_plans
from tests.e2e.conftest import Conversation, producer_for, use_slow_model, worker_process
from tests.fakes.slow_llm import SlowLLM
from tests.fakes.telegram import FakeTelegram
from tests.support import app_env, stop_process, wait_until

ALICE = 7001


def _text(call: Any) -> str:
    return str(call.params.get("text") or "")


def _markup(value: Any) -> dict[str, Any]:
    """A ``reply_markup`` parameter as sent (a JSON string or an object)."""
    return json.loads(value) if isinstance(value, str) else value


def _plans(app: Flask, **free: object) -> dict[str, int]:
    """Seed «Free» (the default, with ``free``'s limits) and «Paid»; their ids by name."""
    with app.app_context():
        seed_plans()
        plans = {plan.name: plan for plan in db.session.scalars(select(Plan))}
        for key, value in free.items():
            setattr(plans["Free"], key, value)
        db.session.commit()
        return {name: plan.id for name, plan in plans.items()}


def _deliver_pending(conversation: Conversation, kind: str) -> dict[str, Any]:
    """Deliver the newest queued update that carries ``kind`` (the fake queues what it injects)."""
    for update in reversed(conversation.telegram.pending_updates()):
        if kind in update or kind in (update.get("message") or {}):
            conversation.deliver(update)
            return update
    raise AssertionError(f"no pending update with {kind}")


def _user(app: Flask, telegram_id: int) -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.telegram_id == telegram_id))
        assert user is not None
        db.session.expunge(user)
        return user


def test_fifty_messages_with_three_requests_left_get_three_answers_across_two_workers(
    app: Flask,
    config: Config,
    telegram: FakeTelegram,
    own_redis: str,
    tmp_path: Path,
) -> None:
    """A user with 3 of 5 requests left sends 50 at once; two gevent workers: 3 answers, 47 no."""
    with SlowLLM(delay=0.3) as llm:
        use_slow_model(app, telegram, llm)
        _plans(app, requests_per_day=5, tokens_per_day=None, tokens_per_month=None)
        env = app_env(
            tmp_path, config.database_url, own_redis,
            TELEGRAM_API_URL=telegram.url, WORKER_POOL="gevent", LOG_LEVEL="WARNING",
            TELEGRAM_CHAT_RATE="1000",  # 52 replies in one chat: pacing is not tested here
        )  # fmt: skip
        workers = [worker_process(env, f"plans{n}", 100) for n in (1, 2)]
        try:
            producer = producer_for(app, env)
            for count, text in enumerate(("one", "two"), start=1):  # 2 of the day's 5 used
                enqueue_update(producer, telegram.inject_message(ALICE, text))
                telegram.wait_for_calls("sendMessage", count, timeout=30)
            updates = [telegram.inject_message(ALICE, f"question {n}") for n in range(50)]
            for update in updates:
                enqueue_update(producer, update)
            telegram.wait_for_calls("sendMessage", 52, timeout=90)
        finally:
            for worker in workers:
                stop_process(worker)
    assert llm.served == 5, "one LLM call per answered message, none for a refused one"
    with app.app_context():
        rows = db.session.scalars(select(Request).order_by(Request.id)).all()
        statuses = [row.status for row in rows]
        errors = {row.error for row in rows if row.status == RequestStatus.DENIED}
    assert statuses.count(RequestStatus.OK) == 5
    assert statuses.count(RequestStatus.DENIED) == 47
    assert len(errors) == 1 and next(iter(errors)).startswith("limit requests_per_day=5 reached")
    refusals = [c for c in telegram.calls("sendMessage") if "лимит запросов" in _text(c)]
    assert len(refusals) == 47
    assert "(5)" in _text(refusals[0]) and "обновится" in _text(refusals[0])
    markup = _markup(refusals[0].params["reply_markup"])
    assert markup["inline_keyboard"][0][0]["callback_data"] == "buy", "«Paid» is on sale"


def test_usage_shows_the_plan_what_is_used_and_left(app: Flask, conversation: Conversation) -> None:
    """/usage: plan, used and left today and this month, reset times; English too."""
    _plans(app, requests_per_day=10, tokens_per_day=1000, tokens_per_month=None)
    conversation.say(ALICE, "hello")
    conversation.sent(ALICE)
    conversation.say(ALICE, "/usage")
    text = _text(conversation.sent(ALICE, 2)[1])
    assert text.startswith("Тариф: Free")
    assert "• запросы: 1 из 10, осталось 9" in text
    used = next(line for line in text.splitlines() if line.startswith("• токены") and "из 1000")
    assert "осталось" in used
    assert "В этом месяце (обновится 01." in text
    assert "без ограничений" in text, "tokens per month are unlimited on this Free"
    conversation.say(ALICE, "/usage", language_code="en")
    assert "requests: 1 of 10, 9 left" in _text(conversation.sent(ALICE, 3)[2])


def test_settings_offer_only_the_plans_models(app: Flask, conversation: Conversation) -> None:
    """A plan listing models limits /settings to them; a forged button for another is refused."""
    ids = _plans(app)
    with app.app_context():
        other = LLMModel(name="Other", model="other", base_url="http://127.0.0.1:9", enabled=True)
        third = LLMModel(name="Third", model="third", base_url="http://127.0.0.1:9", enabled=True)
        db.session.add_all([other, third])
        db.session.flush()
        free = db.session.get(Plan, ids["Free"])
        free.models = [db.session.get(LLMModel, conversation.model_id), other]
        db.session.commit()
        third_id = third.id
    conversation.say(ALICE, "/settings")
    markup = _markup(conversation.sent(ALICE)[0].params["reply_markup"])
    labels = [row[0]["text"] for row in markup["inline_keyboard"]]
    assert any("Other" in label for label in labels)
    assert not any("Third" in label for label in labels)
    message_id = conversation.telegram.messages(ALICE)[-1]["message_id"]
    conversation.press(ALICE, message_id, f"model:{third_id}", check_button=False)
    toast = conversation.telegram.wait_for_call("answerCallbackQuery", timeout=30)
    assert "недоступен" in str(toast.params.get("text"))
    assert _user(app, ALICE).model_id is None


def test_buying_a_plan_in_stars_extends_it_once_and_a_refund_takes_it_back(
    app: Flask, conversation: Conversation
) -> None:
    """/buy → invoice → pre-checkout ok → payment: Paid for 30 days, once; refund → Free."""
    ids = _plans(app)
    telegram = conversation.telegram
    conversation.say(ALICE, "/buy")
    offer = conversation.sent(ALICE)[0]
    assert "Paid — 250 Stars на 30 дн." in _text(offer)
    button = _markup(offer.params["reply_markup"])["inline_keyboard"][0][0]
    assert button["callback_data"] == f"plan:{ids['Paid']}"
    conversation.press(ALICE, telegram.messages(ALICE)[-1]["message_id"], button["callback_data"])
    conversation.sent(ALICE, method="sendInvoice")
    invoice = telegram.invoices(ALICE)[-1]
    assert (invoice["currency"], invoice["total_amount"]) == ("XTR", 250)
    assert invoice["payload"] == f"plan:{ids['Paid']}:250:{ALICE}"

    query_id = telegram.inject_pre_checkout_query(ALICE)
    _deliver_pending(conversation, "pre_checkout_query")
    telegram.wait_for_call("answerPreCheckoutQuery", timeout=30)
    answer = telegram.pre_checkout_answers()[-1]
    # the fake refuses an answer after its 10 s, so an accepted answer came in time
    assert answer["pre_checkout_query_id"] == query_id and answer["ok"] is True
    charge = telegram.inject_successful_payment(query_id)
    _deliver_pending(conversation, "successful_payment")
    thanks = conversation.sent(ALICE, 2)[1]
    assert "Спасибо за оплату! Тариф «Paid» действует до" in _text(thanks)
    user = _user(app, ALICE)
    assert user.plan_id == ids["Paid"]
    assert abs(user.plan_expires_at - (utcnow() + timedelta(days=30))) < timedelta(minutes=1)
    first_expiry = user.plan_expires_at

    duplicate = telegram.inject_duplicate_payment(charge)
    conversation.deliver(duplicate)
    redis = app.extensions["redis"]
    wait_until(
        lambda: redis.get(f"{KEY_PREFIX}update:{duplicate['update_id']}") == "done",
        what="the duplicate payment handled",
    )
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
        payment = db.session.scalar(select(Payment))
        assert payment.stars == 250 and payment.telegram_payment_charge_id == charge
        payment_id = payment.id
    assert _user(app, ALICE).plan_expires_at == first_expiry, "extended once"
    thanked = [c for c in telegram.calls("sendMessage") if "Спасибо" in _text(c)]
    assert len(thanked) == 1, "thanked once"

    with app.app_context():
        payments.refund(payment_id, actor="admin")
        db.session.commit()
        payment = db.session.get(Payment, payment_id)
        assert payment.status == PaymentStatus.REFUNDED and payment.refunded_by == "admin"
        reasons = [c.reason for c in db.session.scalars(select(PlanChange).order_by(PlanChange.id))]
    assert telegram.refunds()[-1]["telegram_payment_charge_id"] == charge
    user = _user(app, ALICE)
    assert (user.plan_id, user.plan_expires_at) == (None, None), "back on the default plan"
    assert reasons == ["purchase", "refund"]
    with app.app_context(), pytest.raises(payments.AlreadyRefunded):
        payments.refund(payment_id, actor="admin")


def test_a_price_changed_since_the_invoice_is_refused_at_pre_checkout(
    app: Flask, conversation: Conversation
) -> None:
    """The invoice said 250 ⭐, the plan now costs 300: ok=false with the reason, in time."""
    ids = _plans(app)
    telegram = conversation.telegram
    conversation.say(ALICE, "/buy")
    conversation.sent(ALICE)
    message_id = telegram.messages(ALICE)[-1]["message_id"]
    conversation.press(ALICE, message_id, f"plan:{ids['Paid']}")
    conversation.sent(ALICE, method="sendInvoice")
    with app.app_context():
        db.session.get(Plan, ids["Paid"]).price_stars = 300
        db.session.commit()
    wait_until(lambda: _snapshot_price(app, ids["Paid"]) == 300)
    telegram.inject_pre_checkout_query(ALICE)
    _deliver_pending(conversation, "pre_checkout_query")
    telegram.wait_for_call("answerPreCheckoutQuery", timeout=30)
    answer = telegram.pre_checkout_answers()[-1]
    assert answer["ok"] is False and "Цена тарифа изменилась" in answer["error_message"]
    with app.app_context():
        db.session.get(Plan, ids["Paid"]).price_stars = None  # off sale
        db.session.commit()
    wait_until(lambda: _snapshot_price(app, ids["Paid"]) is None)
    conversation.press(ALICE, message_id, f"plan:{ids['Paid']}", check_button=False)
    toast = telegram.wait_for_calls("answerCallbackQuery", 2, timeout=30)[-1]
    assert "недоступен" in str(toast.params.get("text"))
    assert len(telegram.invoices(ALICE)) == 1


def _snapshot_price(app: Flask, plan_id: int) -> int | None:
    with app.app_context():
        return runtime.get().plans[plan_id].price_stars


def test_an_expired_plan_falls_back_and_an_ending_one_is_reminded_once(
    app: Flask, conversation: Conversation
) -> None:
    """The beat job: expired → default plan and a message; ending in 2 days → one reminder."""
    ids = _plans(app)
    with app.app_context():
        now = utcnow()
        db.session.add_all(
            [
                User(telegram_id=ALICE, plan_id=ids["Paid"], plan_expires_at=now - timedelta(1)),
                User(telegram_id=ALICE + 1, plan_id=ids["Paid"],
                     plan_expires_at=now + timedelta(days=2)),
                User(telegram_id=ALICE + 2, plan_id=ids["Paid"],
                     plan_expires_at=now + timedelta(days=20)),
            ]
        )  # fmt: skip
        db.session.commit()
    celery = app.extensions["celery"]
    result = celery.send_task("tasks.plans.check_plans", ignore_result=False)
    assert result.get(timeout=30) == {"expired": 1, "reminded": 1}
    assert "Срок тарифа «Paid» закончился" in _text(conversation.sent(ALICE)[0])
    reminder = conversation.sent(ALICE + 1)[0]
    assert "Тариф «Paid» закончится" in _text(reminder)
    assert _markup(reminder.params["reply_markup"])["inline_keyboard"][0][0]["text"].endswith(
        "Купить тариф"
    )
    second = celery.send_task("tasks.plans.check_plans", ignore_result=False)
    assert second.get(timeout=30) == {"expired": 0, "reminded": 0}
    user = _user(app, ALICE)
    assert (user.plan_id, user.plan_expires_at) == (None, None)
    with app.app_context():
        change = db.session.scalar(select(PlanChange).where(PlanChange.user_id == user.id))
        assert (change.reason, change.actor, change.from_plan_name) == ("expiry", "system", "Paid")
    later = [c for c in conversation.telegram.calls() if c.params.get("chat_id") == ALICE + 2]
    assert later == [], "a plan ending in 20 days gets no reminder yet"


def test_limits_survive_a_redis_that_lost_its_counters(
    app: Flask, conversation: Conversation
) -> None:
    """The counters are rebuilt from the database: a limit of 2 holds after the keys vanish."""
    _plans(app, requests_per_day=2, tokens_per_day=None, tokens_per_month=None)
    conversation.say(ALICE, "one")
    conversation.sent(ALICE)
    redis = app.extensions["redis"]
    for key in redis.scan_iter(f"{KEY_PREFIX}quota:*"):
        redis.delete(key)
    conversation.say(ALICE, "two")
    conversation.sent(ALICE, 2)
    conversation.say(ALICE, "three")
    refusal = conversation.sent(ALICE, 3)[2]
    assert "лимит запросов" in _text(refusal)
    statuses = [row.status for row in conversation.rows(ALICE)]
    assert statuses == ["ok", "ok", "denied"]


def test_a_plans_cheaper_model_answers_past_the_dollar_limit(
    app: Flask, conversation: Conversation
) -> None:
    """Over «Free»'s $ budget with a fallback model set: the cheaper model answers, not a no."""
    ids = _plans(app, requests_per_day=None, tokens_per_day=None, tokens_per_month=None)
    with app.app_context():
        cheap = LLMModel(
            name="Cheap", model="gpt-mock", base_url=conversation.llm.base_url, enabled=True
        )
        set_api_key(cheap, "sk-cheap")
        db.session.add(cheap)
        db.session.flush()
        default = db.session.get(LLMModel, conversation.model_id)
        default.input_price_per_1m, default.output_price_per_1m = 100, 200  # ≈ $0.005 an answer
        free = db.session.get(Plan, ids["Free"])
        free.cost_usd_per_month = Decimal("0.001")
        free.fallback_model_id = cheap.id
        db.session.commit()
    conversation.say(ALICE, "first")  # under the budget: the default model
    conversation.sent(ALICE)
    conversation.say(ALICE, "second")  # the budget is spent: the plan's fallback answers
    conversation.sent(ALICE, 2)
    rows = conversation.rows(ALICE)
    assert [row.status for row in rows] == ["ok", "ok"]
    assert [row.model_name for row in rows] == ["Mock GPT", "Cheap"]
    assert rows[0].cost_usd > Decimal("0.001"), "the first answer spent the budget"


def test_a_redelivered_update_is_counted_once(app: Flask, conversation: Conversation) -> None:
    """The same update delivered twice uses one request of the day, not two."""
    _plans(app, requests_per_day=2, tokens_per_day=None, tokens_per_month=None)
    update = conversation.telegram.inject_message(ALICE, "twice")
    conversation.deliver(update)
    conversation.deliver(update)
    conversation.sent(ALICE)
    conversation.say(ALICE, "second of two")
    assert "лимит" not in _text(conversation.sent(ALICE, 2)[1])
    conversation.say(ALICE, "third")
    assert "лимит запросов" in _text(conversation.sent(ALICE, 3)[2])
    assert [row.status for row in conversation.rows(ALICE)] == ["ok", "ok", "denied"]


def test_an_answer_settles_its_reservation_with_the_real_usage(
    app: Flask, conversation: Conversation
) -> None:
    """After the answer, the day's counters hold the row's real tokens, no open reservation."""
    _plans(app, requests_per_day=10, tokens_per_day=100_000, tokens_per_month=None)
    conversation.say(ALICE, "count my tokens")
    conversation.sent(ALICE)
    [row] = conversation.rows(ALICE)
    redis = app.extensions["redis"]
    [key] = list(redis.scan_iter(f"{KEY_PREFIX}quota:*:d:*"))

    def settled() -> bool:
        fields = redis.hgetall(key)
        return not any(name.startswith("r:") for name in fields)

    wait_until(settled, what="the reservation settled")
    tokens = (row.prompt_tokens or 0) + (row.completion_tokens or 0)
    assert tokens > 0 and redis.hget(key, "tok") == str(tokens)
    assert redis.hget(key, "req") == "1"


def test_a_blocked_user_cannot_buy(app: Flask, conversation: Conversation) -> None:
    """/buy and the pre-checkout of a blocked user are refused with the access refusal."""
    ids = _plans(app)
    with app.app_context():
        db.session.add(User(telegram_id=ALICE, status="blocked"))
        db.session.commit()
    conversation.say(ALICE, "/buy")
    assert "Доступ к боту закрыт" in _text(conversation.sent(ALICE)[0])
    telegram = conversation.telegram
    query = telegram.inject_pre_checkout_query(
        ALICE, chat_id=ALICE, total_amount=250, invoice_payload=f"plan:{ids['Paid']}:250:{ALICE}"
    )
    _deliver_pending(conversation, "pre_checkout_query")
    telegram.wait_for_call("answerPreCheckoutQuery", timeout=30)
    answer = telegram.pre_checkout_answers()[-1]
    assert answer["pre_checkout_query_id"] == query and answer["ok"] is False
    assert "Доступ к боту закрыт" in answer["error_message"]
