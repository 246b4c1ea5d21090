"""A model that keeps failing is cooled down for every worker; «Test» brings it back.

Real parts: the Celery worker answers through llmock (the primary model fails every attempt,
its fallback answers), cooldowns live in the real Redis, the admin page and the API read them.
"""

from __future__ import annotations

from flask import Flask

from shared.db import db
from shared.models import LLMModel
from shared.services.model_check import check_model
from tests.e2e.conftest import Conversation
from tests.support import ADMIN_API_TOKEN, wait_until
from tests.web.test_admin_login import login

ALICE = 601
AUTH = {"Authorization": f"Bearer {ADMIN_API_TOKEN}"}


def _primary_calls(conversation: Conversation) -> int:
    return sum(1 for r in conversation.llm.chat_requests() if r["body"]["model"] == "gpt-mock")


def test_a_failing_model_cools_down_and_the_test_button_brings_it_back(
    app: Flask, client, conversation: Conversation
) -> None:
    """Three give-ups cool the primary down: the fourth question goes to the fallback alone."""
    with app.app_context():
        backup = LLMModel(name="Backup", model="gpt-backup", base_url=conversation.llm.base_url)
        db.session.add(backup)
        db.session.flush()
        db.session.get(LLMModel, conversation.model_id).fallback_model_id = backup.id
        db.session.commit()
    config = app.config["AI_ROUTER"]
    attempts, threshold = config.llm_max_attempts, config.model_cooldown_failures
    assert threshold == 3
    conversation.llm.script(
        {"type": "fail", "status": 503, "times": None, "match": {"model": "gpt-mock"}}
    )
    for number in range(1, threshold + 1):
        conversation.say(ALICE, f"question {number}")
        conversation.sent(ALICE, number)
    assert _primary_calls(conversation) == threshold * attempts

    conversation.say(ALICE, "question 4")
    answers = conversation.sent(ALICE, threshold + 1)
    assert len(answers) == threshold + 1
    assert _primary_calls(conversation) == threshold * attempts, "the cooled model was asked"
    assert [row.model_name for row in conversation.rows(ALICE)] == ["Backup"] * (threshold + 1)

    health = client.get(f"/admin/api/models/{conversation.model_id}", headers=AUTH).get_json()
    assert health["health"]["state"] == "cooling_down"
    assert health["health"]["cooldown_until"] and "503" in health["health"]["last_error"]
    listed = client.get("/admin/api/models", headers=AUTH).get_json()["items"]
    assert {m["name"]: m["health"]["state"] for m in listed} == {
        "Mock GPT": "cooling_down",
        "Backup": "ok",
    }
    login(client)
    page = client.get("/admin/llm_model/").get_data(as_text=True)
    assert "Cooling down until" in page and "503" in page
    metrics = wait_until(
        lambda: (
            body
            if 'ai_router_llm_cooldowns_total{model="Mock GPT"} 1.0'
            in (body := client.get("/metrics").get_data(as_text=True))
            else None
        )
    )
    assert metrics

    # The provider is back: «Test» asks the model despite the cooldown and ends it.
    conversation.llm.reset()
    with app.app_context():
        outcome = check_model(db.session.get(LLMModel, conversation.model_id))
    assert outcome.ok and "cooldown is over" in outcome.message
    health = client.get(f"/admin/api/models/{conversation.model_id}", headers=AUTH).get_json()
    assert health["health"]["state"] == "ok" and health["health"]["last_error"] is None
    before = _primary_calls(conversation)
    conversation.say(ALICE, "question 5")
    conversation.sent(ALICE, threshold + 2)
    wait_until(lambda: _primary_calls(conversation) == before + 1)
    assert conversation.rows(ALICE)[-1].model_name == "Mock GPT"
