"""The admin API fuzzed from its own OpenAPI document (schemathesis).

Every operation of ``GET /admin/api/openapi.json`` is called with requests generated from the
document: valid ones (positive) and ones that break it (negative). Every answer must be
inside the document — a documented status, the documented body, never a 5xx — a valid request
must be accepted, and an invalid one refused.

A valid request may still be refused with 400 for a rule the document cannot express (a
reference to a row that does not exist or cannot serve, a reversed or too long period); those
refusals are listed in :data:`SEMANTIC_REFUSALS` and nothing else is excused.

Generation is derandomized so CI runs the same cases every time; ``FUZZ_EXAMPLES`` (default
40 per operation and mode) widens a local run.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import select

from shared.db import db
from shared.models import Dialog, Group, Request, RequestStatus, User
from shared.services.catalog import seed_catalog
from shared.services.plans import seed_plans
from tests.fakes.telegram import FakeTelegram
from tests.support import ADMIN_API_TOKEN
from tests.web.test_api_payments import pay

#: 400 messages for valid-looking requests that break a rule beyond the document.
SEMANTIC_REFUSALS = (
    "no such object",
    "has no transcription model",  # voice_model: a model that exists but cannot transcribe
    "since must be before until",
    "a period is at most",
    "out of range (years",
)


@schemathesis.check
def accepts_valid_requests(ctx, response, case) -> None:
    """Schemathesis' positive-data check, excusing the refusals in SEMANTIC_REFUSALS."""
    if response.status_code == 400:
        message = response.json().get("error", {}).get("message", "")
        if any(reason in message for reason in SEMANTIC_REFUSALS):
            return None
    return positive_data_acceptance(ctx, response, case)


def _known_ids(app: Flask, telegram: FakeTelegram) -> tuple[dict[str, int], dict[str, int]]:
    """Create a model, a mode, a user, plans, a payment, a group and a message; their ids.

    The bot token is the fake Bot API's and the payment is one it charged, so a refund of it
    goes through (once). Deletions get a plan of their own: no other operation can make it the
    default (which cannot be deleted).

    Returns:
        The ids for every operation, and the ids for deletions.
    """
    client = app.test_client()
    auth = {"Authorization": f"Bearer {ADMIN_API_TOKEN}"}

    def create(path: str, body: dict) -> dict:
        response = client.post(f"/admin/api{path}", json=body, headers=auth)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    model = create("/models", {"name": "Fuzz", "base_url": "http://127.0.0.1:9/v1", "model": "m"})
    mode = create("/modes", {"name": "Fuzz mode"})
    user = create("/users", {"telegram_id": 4242})
    plan = create("/plans", {"name": "Fuzz plan", "price_stars": 5})
    doomed = create("/plans", {"name": "Fuzz plan to delete"})
    with app.app_context():  # groups come from Telegram, log rows from the bot: stored here
        owner = db.session.scalar(select(User).where(User.telegram_id == user["telegram_id"]))
        group = Group(chat_id=-1001234567890, title="Fuzz group", kind="supergroup")
        dialog = Dialog(user_id=owner.id, chat_id=group.chat_id, thread_id=0)
        db.session.add_all([group, dialog])
        db.session.flush()
        message = Request(
            dialog_id=dialog.id, number=1, user_id=owner.id, chat_id=group.chat_id,
            thread_id=7, request_text="what is this?", status=RequestStatus.OK,
            attachment={"kind": "document", "size": 12, "file_name": "notes.txt"},
            attachment_text="some notes",
        )  # fmt: skip
        db.session.add(message)
        db.session.commit()
        group_id, message_id = group.id, message.id
    token = {"telegram_bot_token": telegram.token}
    patched = client.patch("/admin/api/settings", json=token, headers=auth)
    assert patched.status_code == 200
    known = {
        "model_id": model["id"],
        "mode_id": mode["id"],
        "telegram_id": user["telegram_id"],
        "plan_id": plan["id"],
        "payment_id": pay(app, telegram, user["telegram_id"], plan["id"]),
        "group_id": group_id,
        "message_id": message_id,
    }
    return known, {**known, "plan_id": doomed["id"]}


def _order(run: tuple[GenerationMode, Any]) -> int:
    """Refunds first (before the fuzzed settings change the bot token), deletions last."""
    method, path = run[1].method.upper(), run[1].path
    return 0 if path.endswith("/refund") else 2 if method == "DELETE" else 1


def test_every_operation_answers_inside_its_document(app: Flask, telegram: FakeTelegram) -> None:
    """Positive and negative requests to every operation: no 5xx, no answer off the document."""
    with app.app_context():
        seed_catalog(app.config["AI_ROUTER"])
        seed_plans()
        db.session.commit()
    known, deletable = _known_ids(app, telegram)
    config = SchemathesisConfig.from_dict(
        {"auth": {"openapi": {"bearer": {"bearer": ADMIN_API_TOKEN}}}}
    )
    schema = schemathesis.openapi.from_wsgi("/admin/api/openapi.json", app, config=config)
    examples = int(os.environ.get("FUZZ_EXAMPLES", "40"))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures: list[str] = []
    accepted: set[str] = set()
    # Deletions last, so the other operations meet the rows that exist; refunds first (_order).
    runs = sorted(((mode, op) for mode in GenerationMode for op in operations), key=_order)
    for mode, operation in runs:
        strategy = operation.as_strategy(generation_mode=mode)
        ids = deletable if operation.method.upper() == "DELETE" else known
        path = {name: ids[name] for name in ids if "{" + name + "}" in operation.path}
        if path:  # random ids (mostly 404) and the ids of rows that exist
            strategy |= operation.as_strategy(generation_mode=mode, path_parameters=path)

        @given(case=strategy)
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case) -> None:
            response = case.call_and_validate(
                excluded_checks=[positive_data_acceptance],
                additional_checks=[accepts_valid_requests],
            )
            if response.status_code < 300:
                accepted.add(case.operation.label)

        try:
            call()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - all are collected
            failures.append(f"{mode.value} {operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    # The token was sent and used: every operation answered a valid request at least once.
    assert accepted == {operation.label for operation in operations}
