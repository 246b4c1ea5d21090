"""The admin JSON API: auth, every resource, validation errors, and the OpenAPI document."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from flask import Flask
from sqlalchemy import select

from shared.db import db
from shared.models import Dialog, Payment, Request, RequestStatus, Setting, User
from shared.services.api_tokens import issue_token, revoke_token
from shared.services.catalog import seed_catalog
from shared.services.settings import get_setting
from tests.support import ADMIN_API_TOKEN

AUTH = {"Authorization": f"Bearer {ADMIN_API_TOKEN}"}


@pytest.fixture()
def api(client, app: Flask):
    """A client that sends the bearer token, with the default modes seeded."""
    with app.app_context():
        seed_catalog(app.config["AI_ROUTER"])
        db.session.commit()

    class Api:
        def __getattr__(self, method):
            def call(path, **kwargs):
                headers = {**AUTH, **kwargs.pop("headers", {})}
                return getattr(client, method)(f"/admin/api{path}", headers=headers, **kwargs)

            return call

    return Api()


def _error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    if code:
        assert body["error"]["code"] == code
    return body["error"]


API_PATHS = ["/settings", "/models", "/modes", "/users", "/groups", "/plans", "/payments",
             "/messages", "/stats", "/bot", "/audit"]  # fmt: skip


@pytest.mark.parametrize("path", API_PATHS)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "x"}])
def test_no_valid_token_no_data(client, path: str, headers: dict) -> None:
    """Without a valid bearer token every resource answers 401 with a JSON error."""
    response = client.get(f"/admin/api{path}", headers=headers)
    _error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_issued_tokens_work_until_revoked(client, app: Flask) -> None:
    """Tokens issued in the admin are accepted, and refused once revoked; only a hash is kept."""
    with app.app_context():
        row, token = issue_token("ci")
        db.session.commit()
        assert token not in row.token_hash
        token_id = row.id
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/admin/api/settings", headers=headers).status_code == 200
    with app.app_context():
        revoke_token(token_id)
        db.session.commit()
    assert client.get("/admin/api/settings", headers=headers).status_code == 401


HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def test_openapi_matches_the_routes(client, app: Flask) -> None:
    """Readable without a token; documents every API route and nothing that does not exist."""
    response = client.get("/admin/api/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.")
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/admin/api/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routed |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == routed
    assert document["paths"]["/admin/api/openapi.json"]["get"]["security"] == []


def test_openapi_document_is_valid(client) -> None:
    """The served document is a valid OpenAPI 3.0 document (checked by openapi-spec-validator)."""
    from openapi_spec_validator import validate

    document = client.get("/admin/api/openapi.json").get_json()
    validate(document)
    document["paths"]["/admin/api/models"]["get"]["responses"] = "none"
    with pytest.raises(Exception, match="is not of type .object."):
        validate(document)


def _schema(document: dict, ref: dict) -> dict:
    name = ref["$ref"].rsplit("/", 1)[-1]
    return document["components"]["schemas"][name]


def test_openapi_describes_request_bodies_and_queries(client) -> None:
    """Every body-taking operation references a closed schema; list filters are parameters."""
    document = client.get("/admin/api/openapi.json").get_json()
    paths = document["paths"]
    bodies = {
        (method, path): op["requestBody"]["content"]["application/json"]["schema"]
        for path, item in paths.items()
        for method, op in item.items()
        if method in HTTP_METHODS and "requestBody" in op
    }
    assert set(bodies) == {
        ("patch", "/admin/api/settings"), ("post", "/admin/api/models"),
        ("patch", "/admin/api/models/{model_id}"), ("post", "/admin/api/modes"),
        ("patch", "/admin/api/modes/{mode_id}"), ("post", "/admin/api/users"),
        ("patch", "/admin/api/users/{telegram_id}"), ("post", "/admin/api/bot/start"),
        ("post", "/admin/api/plans"), ("patch", "/admin/api/plans/{plan_id}"),
        ("patch", "/admin/api/groups/{group_id}"),
    }  # fmt: skip
    for ref in bodies.values():
        schema = _schema(document, ref)
        assert schema["additionalProperties"] is False and schema["properties"]
    model_in = _schema(document, bodies[("post", "/admin/api/models")])
    assert set(model_in["required"]) == {"name", "model", "base_url"}
    assert model_in["properties"]["api_key"]["writeOnly"] is True
    assert model_in["properties"]["api_key_set"]["readOnly"] is True
    assert "required" not in _schema(document, bodies[("patch", "/admin/api/models/{model_id}")])
    user_patch = _schema(document, bodies[("patch", "/admin/api/users/{telegram_id}")])
    assert "telegram_id" not in user_patch["properties"]
    settings = _schema(document, bodies[("patch", "/admin/api/settings")])
    assert settings["properties"]["telegram_bot_token"]["writeOnly"] is True
    assert settings["properties"]["registration"]["enum"] == ["open", "approval"]

    def query(path: str) -> set[str]:
        return {p["name"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"}

    assert query("/admin/api/messages") >= {"telegram_id", "dialog_id", "since", "until",
                                            "limit", "offset"}  # fmt: skip
    assert query("/admin/api/users") >= {"status", "q", "limit", "offset"}
    assert query("/admin/api/payments") == {"telegram_id", "status", "limit", "offset"}
    assert query("/admin/api/groups") == {"status", "limit", "offset"}
    group_patch = _schema(document, bodies[("patch", "/admin/api/groups/{group_id}")])
    writable = {k for k, v in group_patch["properties"].items() if not v.get("readOnly")}
    assert writable == {"status"} and "required" not in group_patch
    assert query("/admin/api/stats") == {"since", "until"}
    assert query("/admin/api/audit") == {"kind", "object_id", "actor", "since", "until",
                                         "limit", "offset"}  # fmt: skip
    listing = paths["/admin/api/models"]["get"]["responses"]["200"]["content"]
    assert set(_schema(document, listing["application/json"]["schema"])["properties"]) == {
        "items",
        "total",
    }
    error = document["components"]["schemas"]["Error"]
    assert error["properties"]["error"]


def test_settings_token_is_write_only(api, app: Flask) -> None:
    """The bot token is accepted but only reported as set; the registration is validated."""
    assert api.get("/settings").get_json()["telegram_bot_token_set"] is False
    response = api.patch(
        "/settings",
        json={"telegram_bot_token": "123:ABC", "registration": "approval", "webhook_url": None},
    )
    body = response.get_json()
    assert response.status_code == 200
    assert body["telegram_bot_token_set"] is True and "telegram_bot_token" not in body
    assert body["registration"] == "approval"
    with app.app_context():
        assert "123:ABC" not in db.session.get(Setting, "telegram_bot_token").value
    _error(api.patch("/settings", json={"registration": "everyone"}), 400, "validation_error")
    _error(api.patch("/settings", json={"bogus": 1}), 400)


def test_streaming_setting_is_on_by_default_and_switchable(api, app: Flask) -> None:
    """``streaming``: true by default; PATCH false turns drafts off for every process."""
    assert api.get("/settings").get_json()["streaming"] is True
    assert api.patch("/settings", json={"streaming": False}).get_json()["streaming"] is False
    with app.app_context():
        assert get_setting("streaming") == "false"
    assert api.get("/settings").get_json()["streaming"] is False
    _error(api.patch("/settings", json={"streaming": "sometimes"}), 400, "validation_error")
    _error(api.patch("/settings", data="[]", content_type="application/json"), 400)


def test_models_crud_and_the_active_default(api) -> None:
    """Create, list, switch the active model, update, delete; keys never come back."""
    payload = {"name": "GPT", "model": "gpt-4o-mini", "base_url": "https://api.openai.com/v1",
               "api_key": "sk-secret-9876", "is_default": True, "input_price_per_1m": 0.15,
               "output_price_per_1m": 0.6}  # fmt: skip
    created = api.post("/models", json=payload)
    assert created.status_code == 201
    first = created.get_json()
    assert first["api_key_set"] is True and first["api_key_last4"] == "9876"
    assert "api_key" not in first and first["is_default"] is True
    second = api.post("/models", json={**payload, "name": "Local", "api_key": None}).get_json()
    assert second["api_key_set"] is False

    switched = api.patch(f"/models/{second['id']}", json={"is_default": True})
    assert switched.status_code == 200 and switched.get_json()["is_default"] is True
    listing = api.get("/models").get_json()
    assert listing["total"] == 2
    assert {m["name"]: m["is_default"] for m in listing["items"]} == {"GPT": False, "Local": True}
    assert api.get("/settings").get_json()["default_model_id"] == second["id"]

    updated = api.patch(f"/models/{first['id']}", json={"temperature": 0.3, "max_tokens": 500})
    assert updated.get_json()["temperature"] == 0.3
    assert api.delete(f"/models/{first['id']}").status_code == 204
    _error(api.get(f"/models/{first['id']}"), 404, "not_found")


@pytest.mark.parametrize(
    "bad",
    [
        {"base_url": "ftp://x"},
        {"temperature": 3},
        {"max_tokens": "many"},
        {"enabled": "yes"},
        {"name": ""},
        {"unknown": 1},
    ],
)
def test_model_validation(api, bad: dict) -> None:
    """Bad values are 400 validation errors naming the field."""
    payload = {"name": "M", "model": "m", "base_url": "http://127.0.0.1:1/v1", **bad}
    error = _error(api.post("/models", json=payload), 400, "validation_error")
    assert next(iter(bad)) in error["message"]
    assert api.get("/models").get_json()["total"] == 0


def test_model_name_conflict(api) -> None:
    """A second model with the same name is a 409."""
    payload = {"name": "Same", "model": "m", "base_url": "http://127.0.0.1:1/v1"}
    assert api.post("/models", json=payload).status_code == 201
    _error(api.post("/models", json=payload), 409, "conflict")
    _error(api.post("/models", json={"model": "m"}), 400)


def test_modes_crud(api) -> None:
    """Seeded modes are listed; a new one can become the default and be deleted."""
    names = [m["name"] for m in api.get("/modes").get_json()["items"]]
    assert names == ["Краткий ответ", "Развёрнутый ответ"]
    created = api.post("/modes", json={"name": "Переводчик", "system_prompt": "Translate."})
    assert created.status_code == 201
    mode = created.get_json()
    assert api.patch(f"/modes/{mode['id']}", json={"is_default": True}).get_json()["is_default"]
    defaults = [m["name"] for m in api.get("/modes").get_json()["items"] if m["is_default"]]
    assert defaults == ["Переводчик"]
    assert api.delete(f"/modes/{mode['id']}").status_code == 204
    _error(api.patch(f"/modes/{mode['id']}", json={"name": "x"}), 404)


def test_users_create_block_and_list(api) -> None:
    """Pre-authorize by Telegram id, block, filter by status; conflicts and 404s."""
    created = api.post("/users", json={"telegram_id": 111, "username": "ann", "status": "active"})
    assert created.status_code == 201
    assert created.get_json()["telegram_id"] == 111
    assert created.get_json()["reachable"] is True
    _error(api.patch("/users/111", json={"reachable": False}), 400)  # Telegram's to say
    _error(api.post("/users", json={"telegram_id": 111}), 409)
    api.post("/users", json={"telegram_id": 222, "status": "pending"})
    blocked = api.patch("/users/111", json={"status": "blocked", "daily_request_limit": 5})
    assert blocked.get_json()["status"] == "blocked"
    assert blocked.get_json()["daily_request_limit"] == 5
    listing = api.get("/users?status=blocked").get_json()
    assert listing["total"] == 1 and listing["items"][0]["telegram_id"] == 111
    assert api.get("/users").get_json()["total"] == 2
    _error(api.get("/users/999"), 404)
    _error(api.patch("/users/111", json={"status": "vip"}), 400)
    _error(api.patch("/users/111", json={"telegram_id": 5}), 400)


def _log(app: Flask, rows: list[tuple[int, str, RequestStatus, int]]) -> None:
    """Write log rows: (telegram id, text, status, days ago)."""
    with app.app_context():
        now = datetime.now(UTC)
        users: dict[int, User] = {}
        for number, (telegram_id, text, status, days_ago) in enumerate(rows, start=1):
            user = users.get(telegram_id)
            if user is None:
                user = users[telegram_id] = User(telegram_id=telegram_id)
                db.session.add(user)
                db.session.flush()
            dialog = Dialog(user_id=user.id, ended_at=now)  # one dialog per row
            db.session.add(dialog)
            db.session.flush()
            db.session.add(
                Request(
                    dialog_id=dialog.id, number=1, user_id=user.id, update_id=number,
                    request_text=text, request_at=now - timedelta(days=days_ago),
                    response_text=f"re: {text}", status=status, model_name="GPT",
                    prompt_tokens=10, completion_tokens=5, cost_usd=Decimal("0.001"),
                )
            )  # fmt: skip
        db.session.commit()


def test_messages_filters(api, app: Flask) -> None:
    """The log is newest first and filters by user, status, text and period."""
    ok, denied, error = RequestStatus.OK, RequestStatus.DENIED, RequestStatus.ERROR
    _log(app, [(1, "old question", ok, 10), (1, "new question", ok, 0),
               (2, "refused", denied, 0), (2, "failed", error, 1)])  # fmt: skip
    everything = api.get("/messages").get_json()
    assert everything["total"] == 4
    # Newest first; "new question" and "refused" share a timestamp: the later row comes first.
    assert [m["request_text"] for m in everything["items"]] == [
        "refused", "new question", "failed", "old question"
    ]  # fmt: skip
    item = everything["items"][0]
    for key in ("dialog_id", "message_number", "telegram_id", "request_text", "request_at",
                "response_text", "response_at", "model", "mode", "prompt_tokens",
                "completion_tokens", "status", "error"):  # fmt: skip
        assert key in item
    assert api.get("/messages?telegram_id=1").get_json()["total"] == 2
    assert api.get("/messages?status=denied").get_json()["items"][0]["request_text"] == "refused"
    assert api.get("/messages?q=QUESTION").get_json()["total"] == 2
    since = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    assert api.get(f"/messages?since={since}").get_json()["total"] == 3
    page = api.get("/messages?limit=1&offset=1").get_json()
    assert page["total"] == 4 and len(page["items"]) == 1
    _error(api.get("/messages?status=maybe"), 400)
    _error(api.get("/messages?since=yesterday"), 400)
    _error(api.get("/messages?limit=x"), 400)


def test_stats_for_a_period(api, app: Flask) -> None:
    """Requests (denied and failed included), active users, tokens, cost, errors, per day."""
    _log(app, [(1, "a", RequestStatus.OK, 0), (1, "b", RequestStatus.OK, 0),
               (2, "c", RequestStatus.DENIED, 0), (2, "d", RequestStatus.ERROR, 1),
               (3, "e", RequestStatus.OK, 30)])  # fmt: skip
    stats = api.get("/stats").get_json()
    assert stats["requests"] == 4 and stats["active_users"] == 2 and stats["errors"] == 1
    assert stats["prompt_tokens"] == 40 and stats["completion_tokens"] == 20
    assert stats["total_tokens"] == 60
    assert stats["cost_usd"] == pytest.approx(0.004)
    assert len(stats["daily"]) == 7
    assert sum(day["requests"] for day in stats["daily"]) == 4
    assert stats["daily"][-1]["requests"] == 3
    assert stats["by_model"][0]["model"] == "GPT"
    assert (stats["stars_revenue"], stats["paying_users"]) == (0, 0)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.telegram_id == 1))
        db.session.add(
            Payment(
                user_id=user.id, telegram_id=1, plan_name="Paid", stars=250, period_days=30,
                telegram_payment_charge_id="charge-1", invoice_payload="plan:1:250:1",
            )
        )  # fmt: skip
        db.session.commit()
    paid = api.get("/stats").get_json()
    assert (paid["stars_revenue"], paid["paying_users"]) == (250, 1)
    assert (paid["daily"][-1]["stars_revenue"], paid["daily"][-1]["paying_users"]) == (250, 1)
    today = datetime.now(UTC).date()
    month = api.get(f"/stats?since={(today - timedelta(days=40)).isoformat()}&until={today}")
    assert month.get_json()["requests"] == 5 and len(month.get_json()["daily"]) == 41
    _error(api.get(f"/stats?since={today}&until={today - timedelta(days=3)}"), 400)
    _error(api.get("/stats?since=2020-01-01&until=2026-01-01"), 400)


def test_bot_control(api) -> None:
    """Start needs a token (and a URL for webhook); the desired state follows the buttons."""
    status = api.get("/bot").get_json()
    assert status["desired"] == "stopped" and status["state"] == "stopped"
    assert set(status) >= {"since", "last_update_at", "last_error", "webhook_url", "queue_depth"}
    _error(api.post("/bot/start", json={"mode": "polling"}), 409, "conflict")
    api.patch("/settings", json={"telegram_bot_token": "1:T"})
    _error(api.post("/bot/start", json={"mode": "webhook"}), 409, "conflict")
    _error(api.post("/bot/start", json={"mode": "turbo"}), 400)
    started = api.post("/bot/start", json={"mode": "polling"})
    assert started.status_code == 200 and started.get_json()["desired"] == "polling"
    api.patch("/settings", json={"webhook_url": "https://bot.example.com/telegram/webhook"})
    switched = api.post("/bot/start", json={"mode": "webhook"}).get_json()
    assert switched["desired"] == "webhook"
    assert switched["webhook_url"] == "https://bot.example.com/telegram/webhook"
    assert api.post("/bot/stop").get_json()["desired"] == "stopped"


def test_unknown_api_path_is_json(api, client) -> None:
    """Inside the API a wrong method or path answers the JSON error; the admin UI keeps HTML."""
    _error(api.put("/settings", json={}), 405, "method_not_allowed")
    _error(api.get("/no-such-resource"), 404, "not_found")
    page = client.get("/admin/no-such-page/")
    assert page.status_code == 404 and not page.is_json


def test_bodies_must_be_json_objects(api) -> None:
    """A missing, malformed or non-object body is a validation error, not an empty change."""
    _error(api.patch("/settings"), 400, "validation_error")
    _error(api.patch("/settings", data="{bad", content_type="application/json"), 400)
    _error(api.post("/bot/start", data="mode=polling"), 400, "validation_error")
    _error(api.patch("/settings", json={"telegram_bot_token_set": True}), 400)


def test_strict_json_types(api) -> None:
    """Numbers and booleans are not guessed from strings or each other."""
    base = {"name": "M", "model": "m", "base_url": "http://127.0.0.1:1/v1"}
    for bad in ({"max_tokens": True}, {"max_tokens": "5"}, {"temperature": "0.5"},
                {"enabled": 1}, {"is_default": "true"}):  # fmt: skip
        _error(api.post("/models", json={**base, **bad}), 400, "validation_error")
    created = api.post("/models", json={**base, "input_price_per_1m": "0.25", "enabled": False})
    assert created.status_code == 201
    assert created.get_json()["input_price_per_1m"] == 0.25
    assert created.get_json()["enabled"] is False


def test_a_model_cannot_be_its_own_fallback(api) -> None:
    """Self-fallback is a 400; an unknown fallback a 404; another model is accepted."""
    base = {"model": "m", "base_url": "http://127.0.0.1:1/v1"}
    main = api.post("/models", json={"name": "main", **base}).get_json()
    spare = api.post("/models", json={"name": "spare", **base}).get_json()
    _error(api.patch(f"/models/{main['id']}", json={"fallback_model_id": main["id"]}), 400)
    _error(api.patch(f"/models/{main['id']}", json={"fallback_model_id": 99999}), 404)
    changed = api.patch(f"/models/{main['id']}", json={"fallback_model_id": spare["id"]})
    assert changed.status_code == 200 and changed.get_json()["fallback_model_id"] == spare["id"]


def test_ids_beyond_the_database_range_are_404_or_400_never_500(api) -> None:
    """Fuzzed ids: an id no row can have is a 404 in the path and a 400 in a body or query."""
    huge = 1119361751920641
    for path in (f"/modes/{huge}", f"/models/{huge}", f"/users/{2**64}"):
        _error(api.get(path), 404)
    for path in (f"/modes/{huge}", f"/models/{huge}"):
        _error(api.delete(path), 404)
    _error(api.patch(f"/modes/{huge}", json={"name": "x"}), 404)
    _error(api.patch("/settings", json={"default_model_id": huge}), 400, "validation_error")
    _error(api.get(f"/messages?telegram_id={2**64}"), 400)
    _error(api.get(f"/messages?dialog_id={huge}"), 400)
    _error(api.get(f"/users?offset={10**12}"), 400)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/messages?q=%00", None),
        ("get", "/messages?model=a%00", None),
        ("get", "/users?q=%00", None),
        ("post", "/modes", {"name": "a\x00b"}),
        ("post", "/modes", {"name": "ok", "system_prompt": "x\x00"}),
        ("post", "/users", {"telegram_id": 5, "note": "n\x00"}),
        ("patch", "/settings", {"telegram_bot_token": "1:\x00"}),
    ],
)
def test_nul_characters_are_refused_not_a_database_error(api, method, path, body) -> None:
    """PostgreSQL refuses NUL in strings: the API says 400 first, on every database."""
    response = getattr(api, method)(path, **({"json": body} if body is not None else {}))
    _error(response, 400, "validation_error")
