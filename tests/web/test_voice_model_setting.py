"""The ``voice_model`` setting: the model that transcribes voice for models without their own.

Set through the admin API and the Settings page alike (one rule, ``settings.check_voice_model``):
only the id of a model that has a ``transcription_model``; null / «—» clears it. Deleting that
model, or clearing its transcription model, leaves the setting stored but unused.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from shared.db import db
from shared.extensions import runtime
from shared.services.catalog import seed_catalog
from shared.services.settings import get_setting
from tests.web.test_admin_login import login
from tests.web.test_api import _error as error_of
from tests.web.test_api_plans import ApiClient

ENDPOINT = {"model": "gpt-x", "base_url": "http://127.0.0.1:9/v1"}


@pytest.fixture()
def api(client: FlaskClient, app: Flask) -> ApiClient:
    """An API client, with the default modes seeded."""
    with app.app_context():
        seed_catalog(app.config["AI_ROUTER"])
        db.session.commit()
    return ApiClient(client)


def _model(api: ApiClient, name: str, transcription_model: str | None = None, **extra) -> int:
    body = {"name": name, **ENDPOINT, "transcription_model": transcription_model, **extra}
    response = api.post("/models", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["id"]


def _stored(app: Flask) -> str | None:
    with app.app_context():
        return get_setting("voice_model")


def test_api_sets_checks_and_clears_the_voice_model(api: ApiClient, app: Flask) -> None:
    """A transcribing model's id is kept; a model without one or no model is a 400."""
    ears = _model(api, "Ears", "whisper-1")
    deaf = _model(api, "Deaf")
    assert api.get("/settings").get_json()["voice_model"] is None, "unset by default"

    answer = api.patch("/settings", json={"voice_model": ears})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["voice_model"] == ears
    assert api.get("/settings").get_json()["voice_model"] == ears
    assert _stored(app) == str(ears)
    with app.app_context():
        assert runtime.get().setting("voice_model") == str(ears), "the bot sees it"

    error = error_of(api.patch("/settings", json={"voice_model": deaf}), 400, "validation_error")
    assert "voice_model" in error["message"] and "no transcription model" in error["message"]
    error = error_of(api.patch("/settings", json={"voice_model": 999_999}), 400, "validation_error")
    assert "voice_model" in error["message"] and "no such object" in error["message"]
    for bad in (0, -1, "1", 1.5, True, 2**31):
        error_of(api.patch("/settings", json={"voice_model": bad}), 400, "validation_error")
    refused = api.patch("/settings", json={"streaming": False, "voice_model": deaf})
    error_of(refused, 400, "validation_error")
    assert api.get("/settings").get_json()["streaming"] is True, "a refused PATCH changes nothing"
    assert _stored(app) == str(ears), "the refusals kept the stored model"

    cleared = api.patch("/settings", json={"voice_model": None})
    assert cleared.status_code == 200 and cleared.get_json()["voice_model"] is None
    assert _stored(app) is None
    with app.app_context():
        assert runtime.get().setting("voice_model") is None


def test_the_voice_model_stops_applying_when_its_model_changes(api: ApiClient, app: Flask) -> None:
    """Clearing its transcription model or deleting it needs no cascade and breaks nothing."""
    ears = _model(api, "Ears", "whisper-1")
    assert api.patch("/settings", json={"voice_model": ears}).status_code == 200
    assert api.patch(f"/models/{ears}", json={"transcription_model": None}).status_code == 200
    assert api.get("/settings").get_json()["voice_model"] == ears, "stored as it was"
    error_of(api.patch("/settings", json={"voice_model": ears}), 400, "validation_error")
    assert api.patch("/settings", json={"streaming": False}).status_code == 200, "others still save"

    assert api.delete(f"/models/{ears}").status_code == 204
    assert api.get("/settings").status_code == 200
    with app.app_context():
        assert runtime.get().setting("voice_model") == str(ears)
        assert ears not in runtime.get().models, "the bot finds no model by that id: not used"


def test_the_change_is_in_the_audit_log(api: ApiClient) -> None:
    """Set and cleared, recorded under the setting's key with its old and new id."""
    ears = _model(api, "Ears", "whisper-1")
    api.patch("/settings", json={"voice_model": ears})
    api.patch("/settings", json={"voice_model": None})
    items = api.get("/audit?kind=setting&object_id=voice_model").get_json()["items"]
    assert [(item["action"], item["changes"]) for item in items] == [
        ("update", {"value": [str(ears), None]}),
        ("create", {"value": [None, str(ears)]}),
    ]


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, "the page has a CSRF token"
    return match.group(1)


def _options(page: str) -> dict[str, str]:
    select = re.search(r'<select[^>]*name="voice_model".*?</select>', page, re.S)
    assert select, "the Settings page has the voice_model select"
    return dict(re.findall(r'<option[^>]*value="([^"]*)"[^>]*>([^<]*)</option>', select.group(0)))


def test_the_settings_page_offers_and_saves_the_voice_model(
    client: FlaskClient, app: Flask, api: ApiClient
) -> None:
    """Only transcribing models are offered; saving goes through the service's rule."""
    ears = _model(api, "Ears", "whisper-1")
    quiet = _model(api, "Quiet ears", "whisper-2", enabled=False)
    deaf = _model(api, "Deaf")
    assert login(client).status_code == 302
    page = client.get("/admin/settings/").text
    assert "Voice messages: transcribe with" in page
    assert _options(page) == {
        "0": "— (only a model&#39;s own transcription model)",
        str(ears): "Ears (whisper-1)",
        str(quiet): "Quiet ears (whisper-2; disabled)",
    }

    def save(voice_model: str) -> TestResponse:
        page = client.get("/admin/settings/").text
        return client.post(
            "/admin/settings/",
            data={"csrf_token": _csrf(page), "registration": "open", "default_model_id": "0",
                  "default_mode_id": "0", "webhook_url": "", "voice_model": voice_model,
                  "streaming": "y"},
        )  # fmt: skip

    assert save(str(ears)).status_code == 302
    assert _stored(app) == str(ears)
    assert re.search(rf'<option selected value="{ears}"', client.get("/admin/settings/").text)

    for bad, message in ((deaf, "no transcription model"), (999_999, "no such object")):
        response = save(str(bad))
        assert response.status_code == 200, "shown again with the error"
        assert re.search(rf'invalid-feedback">voice_model: [^<]*{message}', response.text)
        assert _stored(app) == str(ears), "nothing saved"
    assert save("not-a-number").status_code == 200

    assert save("0").status_code == 302
    assert _stored(app) is None, "«—» clears it"
