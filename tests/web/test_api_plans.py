"""The admin API's plans, and the plan fields of users: CRUD, refusals, the default, usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from shared.db import db
from shared.extensions import runtime
from shared.models import Dialog, PlanChange, Request, RequestStatus, User
from shared.services import usage
from shared.services.api_tokens import issue_token
from shared.services.catalog import seed_catalog
from shared.services.plans import seed_plans
from tests.support import ADMIN_API_TOKEN
from tests.web.test_api import _error as error_of

AUTH = {"Authorization": f"Bearer {ADMIN_API_TOKEN}"}


class ApiClient:
    """Calls ``/admin/api`` with a bearer token: ``api.get("/plans")``, ``api.post(path, json=…)``.

    Args:
        client: The Flask test client.
        token: The bearer token (the configured ``ADMIN_API_TOKEN`` by default).
    """

    def __init__(self, client: FlaskClient, token: str = ADMIN_API_TOKEN) -> None:
        self.client, self._headers = client, {"Authorization": f"Bearer {token}"}

    def __getattr__(self, method: str) -> Any:
        """The test client's method of that name, on ``/admin/api`` with the token."""

        def call(path: str, **kwargs: Any) -> Any:
            headers = {**self._headers, **kwargs.pop("headers", {})}
            return getattr(self.client, method)(f"/admin/api{path}", headers=headers, **kwargs)

        return call


def seeded_api(client: FlaskClient, app: Flask) -> ApiClient:
    """Seed modes, models and the plans «Free» (default) and «Paid»; a client of the API."""
    with app.app_context():
        seed_catalog(app.config["AI_ROUTER"])
        seed_plans()
        db.session.commit()
    return ApiClient(client)


@pytest.fixture()
def api(client: FlaskClient, app: Flask) -> ApiClient:
    """An API client, with the default modes and plans seeded."""
    return seeded_api(client, app)


def plans_by_name(api: ApiClient) -> dict[str, dict]:
    """Every plan, by name (checking the collection's shape)."""
    listing = api.get("/plans").get_json()
    assert listing["total"] == len(listing["items"])
    return {plan["name"]: plan for plan in listing["items"]}


def _model(api: ApiClient, name: str) -> int:
    body = {"name": name, "model": "m", "base_url": "http://127.0.0.1:9/v1"}
    response = api.post("/models", json=body)
    assert response.status_code == 201
    return response.get_json()["id"]


PLAN_FIELDS = {"id", "name", "description", "requests_per_day", "tokens_per_day",
               "tokens_per_month", "cost_usd_per_month", "model_ids", "is_default",
               "price_stars", "period_days", "fallback_model_id", "created_at"}  # fmt: skip


# -- plans ----------------------------------------------------------------------------------


def test_seeded_plans_are_listed_default_first(api: ApiClient) -> None:
    """«Free» (the default, not for sale) comes first, then «Paid»; every field is answered."""
    listing = api.get("/plans").get_json()
    assert [plan["name"] for plan in listing["items"]] == ["Free", "Paid"]
    assert listing["total"] == 2
    free, paid = listing["items"]
    assert set(free) == PLAN_FIELDS
    assert free["is_default"] is True and free["price_stars"] is None
    assert free["model_ids"] == [] and free["cost_usd_per_month"] is None
    assert paid["is_default"] is False and paid["price_stars"] == 250
    assert paid["cost_usd_per_month"] == 20.0 and paid["period_days"] == 30
    assert api.get(f"/plans/{paid['id']}").get_json() == paid


def test_plans_crud(api: ApiClient) -> None:
    """Create with every field, read, change (models emptied = every model), delete."""
    gpt, local = _model(api, "GPT"), _model(api, "Local")
    body = {
        "name": "Pro", "description": "Everything", "requests_per_day": 1000,
        "tokens_per_day": 3_000_000_000, "tokens_per_month": None, "cost_usd_per_month": 12.5,
        "model_ids": [local, gpt, gpt], "price_stars": 10_000, "period_days": 3660,
        "fallback_model_id": local,
    }  # fmt: skip
    created = api.post("/plans", json=body)
    assert created.status_code == 201, created.get_data(as_text=True)
    pro = created.get_json()
    assert set(pro) == PLAN_FIELDS
    assert pro["model_ids"] == sorted([gpt, local]) and pro["is_default"] is False
    assert pro["tokens_per_day"] == 3_000_000_000 and pro["tokens_per_month"] is None
    assert pro["cost_usd_per_month"] == 12.5 and pro["price_stars"] == 10_000
    assert pro["fallback_model_id"] == local and pro["created_at"]
    assert api.get(f"/plans/{pro['id']}").get_json() == pro
    assert list(plans_by_name(api)) == ["Free", "Paid", "Pro"]

    changed = api.patch(
        f"/plans/{pro['id']}",
        json={"name": "Pro+", "model_ids": [], "price_stars": None, "fallback_model_id": None},
    )
    assert changed.status_code == 200
    assert changed.get_json() == {
        **pro, "name": "Pro+", "model_ids": [], "price_stars": None, "fallback_model_id": None
    }  # fmt: skip
    assert api.get(f"/plans/{pro['id']}").get_json()["model_ids"] == []

    minimal = api.post("/plans", json={"name": "Tiny"})
    assert minimal.status_code == 201
    assert minimal.get_json()["period_days"] == 30 and minimal.get_json()["description"] == ""

    assert api.delete(f"/plans/{pro['id']}").status_code == 204
    error_of(api.get(f"/plans/{pro['id']}"), 404, "not_found")
    error_of(api.delete(f"/plans/{pro['id']}"), 404, "not_found")
    assert set(plans_by_name(api)) == {"Free", "Paid", "Tiny"}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"price_stars": 0}, "price_stars"),
        ({"price_stars": 10_001}, "price_stars"),
        ({"period_days": 0}, "period_days"),
        ({"period_days": 3661}, "period_days"),
        ({"requests_per_day": -1}, "requests_per_day"),
        ({"tokens_per_month": "5"}, "tokens_per_month"),
        ({"cost_usd_per_month": -0.01}, "cost_usd_per_month"),
        ({"cost_usd_per_month": True}, "cost_usd_per_month"),
        ({"model_ids": [0]}, "model_ids"),
        ({"model_ids": "1"}, "model_ids"),
        ({"is_default": "true"}, "is_default"),
        ({"name": " "}, "name"),
        ({"id": 5}, "id"),
        ({"created_at": "2025-01-01T00:00:00Z"}, "created_at"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_plan_validation(api: ApiClient, bad: dict, field: str) -> None:
    """Bad values are 400 validation errors naming the field; nothing is created."""
    error = error_of(api.post("/plans", json={"name": "New", **bad}), 400, "validation_error")
    assert field in error["message"]
    paid = plans_by_name(api)["Paid"]
    error_of(api.patch(f"/plans/{paid['id']}", json=bad), 400, "validation_error")
    assert plans_by_name(api) == {"Free": plans_by_name(api)["Free"], "Paid": paid}


def test_plan_refusals_beyond_the_schema(api: ApiClient) -> None:
    """A taken name is a 409; unknown models (allowed or fallback) are 400; nothing changes."""
    gpt = _model(api, "GPT")
    paid = plans_by_name(api)["Paid"]
    error_of(api.post("/plans", json={"name": "Paid"}), 409, "conflict")
    error_of(api.patch(f"/plans/{paid['id']}", json={"name": "Free"}), 409, "conflict")
    unknown = error_of(api.post("/plans", json={"name": "X", "model_ids": [gpt, 99999]}), 400)
    assert "model_ids" in unknown["message"] and "99999" in unknown["message"]
    assert "no such object" in unknown["message"]
    fallback = error_of(
        api.patch(f"/plans/{paid['id']}", json={"fallback_model_id": 99999, "price_stars": 1}),
        400,
        "validation_error",
    )
    assert "fallback_model_id" in fallback["message"]
    error_of(api.patch(f"/plans/{paid['id']}", json={"model_ids": [99999]}), 400)
    assert plans_by_name(api)["Paid"] == paid
    assert set(plans_by_name(api)) == {"Free", "Paid"}
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"name": "x"}} if method == "patch" else {}
        error_of(getattr(api, method)("/plans/99999", **kwargs), 404, "not_found")
        error_of(getattr(api, method)(f"/plans/{2**40}", **kwargs), 404, "not_found")


def test_the_default_plan_moves_and_stays_single(api: ApiClient) -> None:
    """is_default: true moves the flag; unticking or deleting the default is a 409."""
    plans = plans_by_name(api)
    free, paid = plans["Free"], plans["Paid"]
    api.post("/users", json={"telegram_id": 111})
    assert api.get("/users/111").get_json()["plan_id"] == free["id"]

    refused = error_of(api.patch(f"/plans/{free['id']}", json={"is_default": False}), 409)
    assert refused["code"] == "conflict" and "default" in refused["message"]
    refused = error_of(api.delete(f"/plans/{free['id']}"), 409, "conflict")
    assert "default" in refused["message"]
    assert plans_by_name(api)["Free"]["is_default"] is True

    moved = api.patch(f"/plans/{paid['id']}", json={"is_default": True})
    assert moved.status_code == 200 and moved.get_json()["is_default"] is True
    defaults = {name: plan["is_default"] for name, plan in plans_by_name(api).items()}
    assert defaults == {"Free": False, "Paid": True}
    # A user without a plan of their own is on the default plan, wherever it is.
    assert api.get("/users/111").get_json()["plan_id"] == paid["id"]
    assert api.patch(f"/plans/{free['id']}", json={"is_default": False}).status_code == 200
    error_of(api.delete(f"/plans/{paid['id']}"), 409, "conflict")

    created = api.post("/plans", json={"name": "House", "is_default": True})
    assert created.status_code == 201 and created.get_json()["is_default"] is True
    defaults = {name: plan["is_default"] for name, plan in plans_by_name(api).items()}
    assert defaults == {"House": True, "Free": False, "Paid": False}
    assert list(defaults)[0] == "House"  # the default is listed first
    assert api.delete(f"/plans/{free['id']}").status_code == 204


def test_deleting_a_plan_moves_its_users_to_the_default(api: ApiClient, app: Flask) -> None:
    """The plan's users land on the default plan; their history says who deleted what."""
    free = plans_by_name(api)["Free"]
    pro = api.post("/plans", json={"name": "Pro", "price_stars": 5}).get_json()
    for telegram_id in (111, 222):
        api.post("/users", json={"telegram_id": telegram_id})
    until = "2099-01-01T00:00:00+00:00"
    assignment = {"plan_id": pro["id"], "plan_expires_at": until}
    assert api.patch("/users/111", json=assignment).get_json()["plan_id"] == pro["id"]

    assert api.delete(f"/plans/{pro['id']}").status_code == 204

    moved = api.get("/users/111").get_json()
    assert moved["plan_id"] == free["id"] and moved["plan_expires_at"] is None
    latest = moved["plan_history"][0]
    assert latest["reason"] == "admin" and latest["actor"] == "ADMIN_API_TOKEN"
    assert latest["from_plan_name"] == "Pro" and latest["to_plan_name"] is None
    assert latest["from_expires_at"] == until and latest["to_expires_at"] is None
    assert "Pro" in latest["note"] and "deleted" in latest["note"]
    assert len(moved["plan_history"]) == 2
    untouched = api.get("/users/222").get_json()
    assert untouched["plan_history"] == [] and untouched["plan_id"] == free["id"]
    with app.app_context():
        user = db.session.scalar(select(User).where(User.telegram_id == 111))
        assert (user.plan_id, user.plan_expires_at) == (None, None)


def test_plan_changes_reach_the_bot_processes(api: ApiClient, app: Flask) -> None:
    """A change through the API is in the runtime snapshot every process reads its plans from."""
    paid = plans_by_name(api)["Paid"]
    api.patch(f"/plans/{paid['id']}", json={"price_stars": 99, "requests_per_day": 7})
    with app.app_context():
        snapshot = runtime.get()
        assert snapshot.plans[paid["id"]].price_stars == 99
        assert snapshot.plans[paid["id"]].requests_per_day == 7


# -- users' plans ---------------------------------------------------------------------------


def _requests(app: Flask, telegram_id: int, rows: list[tuple[datetime, RequestStatus, int, str]]):
    """Log requests of a user: (when, status, tokens (prompt, completion = tokens), cost)."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.telegram_id == telegram_id))
        dialog = Dialog(user_id=user.id)
        db.session.add(dialog)
        db.session.flush()
        for number, (at, status, tokens, cost) in enumerate(rows, start=1):
            db.session.add(
                Request(
                    dialog_id=dialog.id, number=number, user_id=user.id, request_text="q",
                    request_at=at, status=status, prompt_tokens=tokens,
                    completion_tokens=tokens, cost_usd=Decimal(cost),
                )
            )  # fmt: skip
        db.session.commit()


USER_PLAN_FIELDS = {"plan_id", "plan_expires_at", "usage"}
USAGE_FIELDS = {"requests_today", "tokens_today", "tokens_month", "cost_usd_month"}


def test_users_show_their_plan_and_usage(api: ApiClient, app: Flask) -> None:
    """plan_id is the effective plan; usage counts today and this month as the limits do."""
    free = plans_by_name(api)["Free"]
    created = api.post("/users", json={"telegram_id": 111})
    assert created.status_code == 201
    fresh = created.get_json()
    assert USER_PLAN_FIELDS <= set(fresh) and set(fresh["usage"]) == USAGE_FIELDS
    assert fresh["plan_id"] == free["id"] and fresh["plan_expires_at"] is None
    assert fresh["usage"] == dict.fromkeys(USAGE_FIELDS, 0)
    api.post("/users", json={"telegram_id": 222})

    tz = app.config["AI_ROUTER"].timezone
    now = datetime.now(UTC)
    yesterday = usage.day_start(tz) - timedelta(seconds=1)
    this_month = yesterday >= usage.month_start(tz)
    ok, denied = RequestStatus.OK, RequestStatus.DENIED
    _requests(app, 111, [
        (now, ok, 50, "0.01"),
        (now, ok, 5, "0.002"),
        (now, denied, 0, "0"),  # refused: not counted against the limits
        (yesterday, ok, 500, "1"),
        (now - timedelta(days=40), ok, 7, "5"),
    ])  # fmt: skip

    expected = {
        "requests_today": 2,
        "tokens_today": 110,
        "tokens_month": 110 + (1000 if this_month else 0),
        "cost_usd_month": pytest.approx(0.012 + (1 if this_month else 0)),
    }
    one = api.get("/users/111").get_json()
    assert one["usage"] == expected and one["requests_total"] == 5
    listing = {u["telegram_id"]: u for u in api.get("/users").get_json()["items"]}
    assert listing[111]["usage"] == expected
    assert listing[222]["usage"] == dict.fromkeys(USAGE_FIELDS, 0)
    assert listing[222]["plan_id"] == free["id"]
    assert "plan_history" not in listing[111]  # only on the single-user answer
    assert api.get("/users/111").get_json()["plan_history"] == []


def test_assigning_a_plan_is_recorded_under_the_tokens_name(api: ApiClient, app: Flask) -> None:
    """PATCH plan_id + plan_expires_at: the user's plan, expiry and a PlanChange by the token."""
    plans = plans_by_name(api)
    free, paid = plans["Free"], plans["Paid"]
    api.post("/users", json={"telegram_id": 111})

    patched = api.patch(
        "/users/111", json={"plan_id": paid["id"], "plan_expires_at": "2099-01-01T03:00:00+03:00"}
    )
    assert patched.status_code == 200, patched.get_data(as_text=True)
    body = patched.get_json()
    assert body["plan_id"] == paid["id"]
    assert body["plan_expires_at"] == "2099-01-01T00:00:00+00:00"
    assert "plan_history" not in body
    history = api.get("/users/111").get_json()["plan_history"]
    assert len(history) == 1
    change = history[0]
    assert change["reason"] == "admin" and change["actor"] == "ADMIN_API_TOKEN"
    assert change["from_plan_name"] is None and change["to_plan_name"] == "Paid"
    assert change["to_plan_id"] == paid["id"]
    assert change["to_expires_at"] == "2099-01-01T00:00:00+00:00"
    with app.app_context():
        row = db.session.scalar(select(PlanChange))
        assert row.actor == "ADMIN_API_TOKEN" and row.to_plan_id == paid["id"]

    # Another token is another actor; a new end alone keeps the plan.
    with app.app_context():
        _, token = issue_token("billing-bot")
        db.session.commit()
    other = ApiClient(api.client, token)
    extended = other.patch("/users/111", json={"plan_expires_at": "2100-01-01T00:00:00Z"})
    assert extended.get_json()["plan_id"] == paid["id"]
    assert extended.get_json()["plan_expires_at"] == "2100-01-01T00:00:00+00:00"
    latest = api.get("/users/111").get_json()["plan_history"][0]
    assert latest["actor"].endswith("billing-bot") and latest["to_plan_name"] == "Paid"

    # The default plan's id puts the user back on it, with no end.
    back = api.patch("/users/111", json={"plan_id": free["id"]}).get_json()
    assert back["plan_id"] == free["id"] and back["plan_expires_at"] is None
    history = api.get("/users/111").get_json()["plan_history"]
    assert len(history) == 3 and history[0]["to_plan_name"] is None
    with app.app_context():
        user = db.session.scalar(select(User).where(User.telegram_id == 111))
        assert (user.plan_id, user.plan_expires_at) == (None, None)


def test_an_expired_plan_reads_as_the_default(api: ApiClient) -> None:
    """A plan whose end has passed is answered as the default plan, with no end."""
    plans = plans_by_name(api)
    api.post("/users", json={"telegram_id": 111})
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    body = api.patch("/users/111", json={"plan_id": plans["Paid"]["id"], "plan_expires_at": past})
    assert body.status_code == 200
    assert body.get_json()["plan_id"] == plans["Free"]["id"]
    assert body.get_json()["plan_expires_at"] is None
    assert api.get("/users/111").get_json()["plan_history"][0]["to_plan_name"] == "Paid"


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"plan_id": 99999}, "no such object"),
        ({"plan_expires_at": "2099-01-01T00:00:00"}, "UTC offset"),  # naive
        ({"plan_expires_at": "2099-01-01"}, "UTC offset"),
        ({"plan_expires_at": "tomorrow"}, "plan_expires_at"),
        ({"plan_expires_at": 4102444800}, "plan_expires_at"),
        ({"plan_expires_at": "0001-01-01T00:00:00+05:00"}, "out of range"),
        ({"plan_expires_at": "9999-12-31T23:59:59-05:00"}, "out of range"),
        ({"plan_id": 0}, "plan_id"),
        ({"plan_id": "1"}, "plan_id"),
        ({"usage": {}}, "usage"),
        ({"plan_history": []}, "plan_history"),
    ],
)
def test_plan_assignment_refusals_change_nothing(api: ApiClient, bad: dict, says: str) -> None:
    """Unknown plans and malformed or naive ends are 400s; the user keeps their plan."""
    paid = plans_by_name(api)["Paid"]
    api.post("/users", json={"telegram_id": 111, "plan_id": paid["id"]})
    before = api.get("/users/111").get_json()
    error = error_of(api.patch("/users/111", json=bad), 400, "validation_error")
    assert says in error["message"]
    assert api.get("/users/111").get_json() == before
    error_of(api.post("/users", json={"telegram_id": 222, **bad}), 400, "validation_error")
    error_of(api.get("/users/222"), 404)


def test_a_user_can_be_created_on_a_plan(api: ApiClient) -> None:
    """POST /users with plan_id and plan_expires_at: created on it, the change recorded."""
    paid = plans_by_name(api)["Paid"]
    created = api.post(
        "/users",
        json={"telegram_id": 111, "plan_id": paid["id"], "plan_expires_at": "2099-05-01T00:00Z"},
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.get_json()["plan_id"] == paid["id"]
    assert created.get_json()["plan_expires_at"] == "2099-05-01T00:00:00+00:00"
    [change] = api.get("/users/111").get_json()["plan_history"]
    assert change["to_plan_name"] == "Paid" and change["actor"] == "ADMIN_API_TOKEN"


def test_openapi_describes_plans_and_the_plan_fields_of_users(client: FlaskClient) -> None:
    """Plans need only a name; a patch nothing; users' plan fields are documented."""
    document = client.get("/admin/api/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    assert schemas["Plan"]["required"] == ["name"]
    assert set(schemas["Plan"]["properties"]) == PLAN_FIELDS
    assert "required" not in schemas["PlanPatch"]
    assert schemas["Plan"]["properties"]["price_stars"]["maximum"] == 10_000
    user = schemas["User"]["properties"]
    assert USER_PLAN_FIELDS <= set(user) and user["usage"]["readOnly"] is True
    assert user["plan_expires_at"]["format"] == "date-time"
    assert set(schemas["Usage"]["properties"]) == USAGE_FIELDS
    detail = document["paths"]["/admin/api/users/{telegram_id}"]["get"]["responses"]["200"]
    assert detail["content"]["application/json"]["schema"]["$ref"].endswith("/UserDetail")
    assert "plan_history" in schemas["UserDetail"]["properties"]
    assert "plan_history" not in user
    plan_item = document["paths"]["/admin/api/plans/{plan_id}"]
    assert {"404", "409"} <= set(plan_item["delete"]["responses"])


def test_plan_assignment_rules_for_the_expiry(api: ApiClient) -> None:
    """A new plan without an end has none; the default plan never ends; an end alone applies."""
    plans = plans_by_name(api)
    paid, free = plans["Paid"]["id"], plans["Free"]["id"]
    later = "2099-01-01T00:00:00+00:00"
    api.post("/users", json={"telegram_id": 111, "plan_id": paid, "plan_expires_at": later})
    other = api.post("/plans", json={"name": "Team"}).get_json()["id"]
    moved = api.patch("/users/111", json={"plan_id": other}).get_json()
    assert (moved["plan_id"], moved["plan_expires_at"]) == (other, None), "no end carried over"
    ends = api.patch("/users/111", json={"plan_expires_at": later}).get_json()
    assert (ends["plan_id"], ends["plan_expires_at"]) == (other, later)
    back = api.patch("/users/111", json={"plan_id": None}).get_json()
    assert (back["plan_id"], back["plan_expires_at"]) == (free, None)
    again = api.patch("/users/111", json={"plan_id": free, "plan_expires_at": later}).get_json()
    assert (again["plan_id"], again["plan_expires_at"]) == (free, None), "the default never ends"
    reasons = [c["to_plan_name"] for c in api.get("/users/111").get_json()["plan_history"]]
    assert reasons == [None, "Team", "Team", "Paid"], "newest first; no change, no entry"


def test_users_filtered_by_the_plan_that_governs_them(api: ApiClient) -> None:
    """``?plan_id=``: a plan's users while it runs; the default's include ended and no plans."""
    plans = plans_by_name(api)
    paid, free = plans["Paid"]["id"], plans["Free"]["id"]
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    api.post("/users", json={"telegram_id": 1, "plan_id": paid})
    api.post("/users", json={"telegram_id": 2})
    api.post("/users", json={"telegram_id": 3, "plan_id": paid, "plan_expires_at": past})

    def ids(plan_id: int) -> list[int]:
        body = api.get(f"/users?plan_id={plan_id}").get_json()
        assert body["total"] == len(body["items"])
        return sorted(user["telegram_id"] for user in body["items"])

    assert ids(paid) == [1]
    assert ids(free) == [2, 3]
    assert ids(999_999) == []
    error_of(api.get("/users?plan_id=0"), 400)


def test_the_only_model_of_a_plan_cannot_be_deleted(api: ApiClient) -> None:
    """Deleting a plan's only model would open the plan to every model: 409, nothing deleted."""
    only, other = _model(api, "Only"), _model(api, "Other")
    free = plans_by_name(api)["Free"]
    api.patch(f"/plans/{free['id']}", json={"model_ids": [only]})
    error = error_of(api.delete(f"/models/{only}"), 409, "conflict")
    assert "Free" in error["message"]
    assert plans_by_name(api)["Free"]["model_ids"] == [only]
    api.patch(f"/plans/{free['id']}", json={"model_ids": [only, other]})
    assert api.delete(f"/models/{only}").status_code == 204
    assert plans_by_name(api)["Free"]["model_ids"] == [other]
