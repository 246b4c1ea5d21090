"""The admin UI: every page behind login, CRUD through the real forms, bot buttons, stats."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import select

from shared.db import db
from shared.models import Dialog, LLMModel, Mode, Request, RequestStatus, User, UserStatus
from shared.services import bot_control
from shared.services.catalog import make_default, seed_catalog
from shared.services.crypto import decrypt
from shared.services.settings import get_setting, set_setting
from tests.shared.support import add_request, add_user, count_queries
from tests.web.test_admin_login import login

PAGES = [
    "/admin/", "/admin/user/", "/admin/user/new/", "/admin/llm_model/", "/admin/llm_model/new/",
    "/admin/mode/", "/admin/message/", "/admin/stats/", "/admin/bot/", "/admin/settings/",
    "/admin/tokens/", "/admin/message/dialog/1", "/admin/audit/", "/admin/group/",
]  # fmt: skip


@pytest.fixture()
def admin(client, app: Flask):
    """A logged-in admin browser session, with the default modes seeded."""
    with app.app_context():
        seed_catalog(app.config["AI_ROUTER"])
        db.session.commit()
    assert login(client).status_code == 302
    return client


def _text(page: str) -> str:
    """A page's visible text (tags dropped, spaces collapsed)."""
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def _csrf(client, path: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', client.get(path).text)
    assert match, f"{path} has a CSRF token"
    return match.group(1)


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_gets_no_page(client, path: str) -> None:
    """Every admin page redirects anonymous visitors to the login form."""
    response = client.get(path)
    assert response.status_code == 302
    assert "/admin/login/" in response.headers["Location"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_for_an_admin(admin, path: str) -> None:
    """Logged in, every page renders."""
    assert admin.get(path).status_code == 200


def test_create_model_through_the_form_then_activate(admin, app: Flask) -> None:
    """The key is stored encrypted and never shown; «Make active» switches the default."""
    token = _csrf(admin, "/admin/llm_model/new/")
    for name in ("First", "Second"):
        response = admin.post(
            "/admin/llm_model/new/",
            data={"csrf_token": token, "name": name, "model": "gpt-x",
                  "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-form-secret-4321",
                  "enabled": "y", "input_price_per_1m": "0.5", "output_price_per_1m": "1.5"},
        )  # fmt: skip
        assert response.status_code == 302, response.text
    listing = admin.get("/admin/llm_model/").text
    assert "sk-form-secret" not in listing and "••••4321" in listing
    with app.app_context():
        first, second = db.session.scalars(select(LLMModel).order_by(LLMModel.id)).all()
        assert decrypt(first.api_key_encrypted) == "sk-form-secret-4321"
        ids = first.id, second.id
    for model_id in ids:
        token = _csrf(admin, "/admin/llm_model/")
        assert (
            admin.post(
                f"/admin/llm_model/activate/{model_id}", data={"csrf_token": token}
            ).status_code
            == 302
        )
    with app.app_context():
        defaults = db.session.scalars(select(LLMModel.name).where(LLMModel.is_default)).all()
    assert defaults == ["Second"]


@pytest.mark.parametrize(
    "path, form",
    [("/admin/mode/new/", {"name": "Sneaky", "system_prompt": "x"}), ("/admin/bot/polling", {})],
)
def test_forms_without_csrf_are_rejected(admin, app: Flask, path: str, form: dict) -> None:
    """A logged-in admin's POST without its CSRF token is refused (400) and changes nothing."""
    with app.app_context():
        set_setting("telegram_bot_token", "1:TOKEN")  # so the start would work if it got through
        db.session.commit()
    assert admin.post(path, data=form).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(Mode).where(Mode.name == "Sneaky")) is None
        assert bot_control.get_desired()["mode"] == "stopped"


def test_settings_form_and_bot_buttons(admin, app: Flask) -> None:
    """Saving the token enables «Запустить бота»; webhook start without a URL explains why."""
    page = admin.get("/admin/bot/").text
    assert "No bot token is set" in page
    assert "Bot token: not set" in _text(admin.get("/admin/settings/").text)
    for label in ("Запустить бота", "Запустить бота в webhook", "Остановить бота"):
        assert label in page
    token = _csrf(admin, "/admin/bot/")
    admin.post("/admin/bot/polling", data={"csrf_token": token})
    with app.app_context():
        assert bot_control.get_desired()["mode"] == "stopped", "no token: no start"

    token = _csrf(admin, "/admin/settings/")
    response = admin.post(
        "/admin/settings/",
        data={"csrf_token": token, "telegram_bot_token": "42:SECRET", "registration": "approval",
              "default_model_id": "0", "default_mode_id": "0", "webhook_url": ""},
    )  # fmt: skip
    assert response.status_code == 302
    settings_page = admin.get("/admin/settings/").text
    assert "42:SECRET" not in settings_page
    assert "Bot token: set" in _text(settings_page)
    with app.app_context():
        assert get_setting("telegram_bot_token") == "42:SECRET"
        assert get_setting("registration") == "approval"
        assert get_setting("streaming") == "false", "the unticked box turns streaming off"

    token = _csrf(admin, "/admin/bot/")
    page = admin.post("/admin/bot/webhook", data={"csrf_token": token}, follow_redirects=True).text
    assert "webhook URL" in page
    with app.app_context():
        assert bot_control.get_desired()["mode"] == "stopped", "no webhook URL: no start"
    admin.post("/admin/bot/polling", data={"csrf_token": token})
    with app.app_context():
        assert bot_control.get_desired()["mode"] == "polling"
    admin.post("/admin/bot/stop", data={"csrf_token": token})
    with app.app_context():
        assert bot_control.get_desired()["mode"] == "stopped"


def test_bulk_block_takes_access_away(admin, app: Flask) -> None:
    """The «Block» action of the users list blocks the selected users."""
    with app.app_context():
        users = [User(telegram_id=t) for t in (1, 2, 3)]
        db.session.add_all(users)
        db.session.commit()
        ids = [str(u.id) for u in users[:2]]
    token = _csrf(admin, "/admin/user/")
    response = admin.post(
        "/admin/user/action/",
        data={"csrf_token": token, "action": "block", "rowid": ids},
    )
    assert response.status_code == 302
    with app.app_context():
        statuses = dict(db.session.execute(select(User.telegram_id, User.status)).all())
    assert statuses == {1: UserStatus.BLOCKED, 2: UserStatus.BLOCKED, 3: UserStatus.ACTIVE}


def test_logs_dialog_view_csv_and_stats(admin, app: Flask) -> None:
    """The log lists rows, shows a dialog as a thread, exports CSV; stats show the totals."""
    with app.app_context():
        user = User(telegram_id=77, username="neo")
        db.session.add(user)
        db.session.flush()
        dialog = Dialog(user_id=user.id)
        db.session.add(dialog)
        db.session.flush()
        for number, text in enumerate(["первый вопрос", "second <question>"], start=1):
            db.session.add(
                Request(dialog_id=dialog.id, number=number, user_id=user.id, request_text=text,
                        request_at=datetime.now(UTC), response_text=f"answer {number}",
                        status=RequestStatus.OK, prompt_tokens=3, completion_tokens=4,
                        cost_usd=Decimal("0.5"), model_name="GPT")
            )  # fmt: skip
        db.session.commit()
        dialog_id = dialog.id
    assert "первый вопрос" in admin.get("/admin/message/").text
    found = admin.get("/admin/message/?search=первый").text
    assert "первый вопрос" in found and "second &lt;question&gt;" not in found
    found = admin.get("/admin/message/?search=second").text
    assert "second &lt;question&gt;" in found and "первый вопрос" not in found
    thread = admin.get(f"/admin/message/dialog/{dialog_id}").text
    assert thread.index("первый вопрос") < thread.index("second &lt;question&gt;")
    csv = admin.get("/admin/message/export/csv/")
    assert csv.status_code == 200 and "первый вопрос" in csv.get_data(as_text=True)
    stats = admin.get("/admin/stats/?period=today").text
    assert re.search(r'data-stat="requests">2<', stats)
    assert re.search(r'data-stat="total_tokens">14<', stats)
    assert re.search(r'data-stat="stars_revenue">0<', stats)
    assert re.search(r'data-stat="paying_users">0<', stats)
    assert "Telegram Stars per day" in stats
    assert "<svg" in stats and "neo" in stats
    assert "must be before" in admin.get("/admin/stats/?since=2026-02-01&until=2026-01-01").text


def test_user_page_shows_dialogs_and_messages(admin, app: Flask) -> None:
    """The user page lists the user's dialogs and recent messages."""
    with app.app_context():
        user = User(telegram_id=88, username="trinity", daily_request_limit=3)
        db.session.add(user)
        db.session.flush()
        dialog = Dialog(user_id=user.id)
        db.session.add(dialog)
        db.session.flush()
        db.session.add(
            Request(dialog_id=dialog.id, number=1, user_id=user.id, request_text="hello there",
                    status=RequestStatus.OK, response_text="general kenobi")
        )  # fmt: skip
        db.session.commit()
        user_id, dialog_id = user.id, dialog.id
    assert f"/admin/user/activity/{user_id}" in admin.get("/admin/user/").text
    page = admin.get(f"/admin/user/activity/{user_id}").text
    assert "@trinity" in page and "hello there" in page and "general kenobi" in page
    assert f"/admin/message/dialog/{dialog_id}" in page


def test_model_test_button_reports_answer_or_error(admin, app: Flask, llm_server: str) -> None:
    """«Test» sends one request: the answer with latency and usage, or the error."""
    from tests.fakes.llm import LLMock

    LLMock(llm_server).reset()
    with app.app_context():
        good = LLMModel(name="Good", model="gpt-mock", base_url=llm_server)
        bad = LLMModel(name="Bad", model="gpt-mock", base_url="http://127.0.0.1:9/v1")
        db.session.add_all([good, bad])
        db.session.commit()
        good_id, bad_id = good.id, bad.id
    token = _csrf(admin, "/admin/llm_model/")
    page = admin.post(
        f"/admin/llm_model/test/{good_id}", data={"csrf_token": token}, follow_redirects=True
    ).text
    assert re.search(r"Good answered in \d+ ms: .+ \(tokens \d+ in / \d+ out\)", page)
    page = admin.post(
        f"/admin/llm_model/test/{bad_id}", data={"csrf_token": token}, follow_redirects=True
    ).text
    assert "Test failed" in page and "LLMConnectionError" in page


@pytest.mark.parametrize("endpoint", ["llm_model", "mode"])
def test_ticking_default_in_the_form_moves_the_flag(admin, app: Flask, endpoint: str) -> None:
    """Creating and editing with «default» ticked keeps exactly one default, no error."""
    kind = LLMModel if endpoint == "llm_model" else Mode
    flag = "is_default"
    extra = {"model": "m", "base_url": "http://127.0.0.1:9/v1"} if kind is LLMModel else {}
    with app.app_context():
        make_default(kind(name="Old default", **extra))  # seeded defaults exist already
        db.session.commit()
    token = _csrf(admin, f"/admin/{endpoint}/new/")
    response = admin.post(
        f"/admin/{endpoint}/new/",
        data={"csrf_token": token, "name": "New default", flag: "y", "system_prompt": "p",
              "input_price_per_1m": "0", "output_price_per_1m": "0", **extra},
    )  # fmt: skip
    assert response.status_code == 302, response.text
    with app.app_context():
        defaults = db.session.scalars(select(kind.name).where(kind.is_default)).all()
        old_id = db.session.scalar(select(kind.id).where(kind.name == "Old default"))
    assert defaults == ["New default"]
    token = _csrf(admin, f"/admin/{endpoint}/edit/?id={old_id}")
    response = admin.post(
        f"/admin/{endpoint}/edit/?id={old_id}",
        data={"csrf_token": token, "name": "Old default", flag: "y", "system_prompt": "p",
              "input_price_per_1m": "0", "output_price_per_1m": "0", **extra},
    )  # fmt: skip
    assert response.status_code == 302, response.text
    with app.app_context():
        defaults = db.session.scalars(select(kind.name).where(kind.is_default)).all()
    assert defaults == ["Old default"]


ANONYMOUS_POSTS = [
    ("/admin/bot/polling", {}),
    ("/admin/llm_model/activate/{model}", {}),
    ("/admin/llm_model/test/{model}", {}),
    ("/admin/user/action/", {"action": "block", "rowid": "{user}"}),
    ("/admin/settings/", {"registration": "approval", "default_model_id": "0",
                          "default_mode_id": "0"}),
    ("/admin/mode/new/", {"name": "Sneaky", "system_prompt": "x"}),
]  # fmt: skip


@pytest.mark.parametrize("path, form", ANONYMOUS_POSTS)
def test_anonymous_posts_are_refused(client, app: Flask, path: str, form: dict) -> None:
    """Anonymous POSTs with a valid CSRF token reach the login check, which refuses them.

    The token comes from the anonymous session's login page, so CSRF lets the request through
    and only the login check stands between it and the action; everything the action would
    change is checked unchanged afterwards.
    """
    with app.app_context():
        set_setting("telegram_bot_token", "1:TOKEN")
        model = LLMModel(name="Idle", model="m", base_url="http://127.0.0.1:9/v1")
        user = User(telegram_id=4242)
        db.session.add_all([model, user])
        db.session.commit()
        ids = {"model": model.id, "user": user.id}
    data = {key: value.format(**ids) for key, value in form.items()}
    data["csrf_token"] = _csrf(client, "/admin/login/")
    response = client.post(path.format(**ids), data=data)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/admin/login/"
    with app.app_context():
        assert bot_control.get_desired()["mode"] == "stopped"
        assert db.session.get(LLMModel, ids["model"]).is_default is False
        assert db.session.get(User, ids["user"]).status == UserStatus.ACTIVE
        assert get_setting("registration") == "open"
        assert db.session.scalar(select(Mode).where(Mode.name == "Sneaky")) is None


def test_csv_export_is_login_protected(client) -> None:
    """The CSV export is not readable anonymously."""
    response = client.get("/admin/message/export/csv/")
    assert response.status_code == 302 and "/admin/login/" in response.headers["Location"]


def test_csv_export_neutralizes_formulas() -> None:
    """Text a spreadsheet would run as a formula is exported inert."""
    from web.admin.views import csv_safe

    assert csv_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_safe("@SUM(A1)") == "'@SUM(A1)"
    assert csv_safe("plain") == "plain" and csv_safe(None) == ""


def _user_counts(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<td class="col-(requests|today|tokens)">\s*([^<]*?)\s*</td>', page)


def test_users_list_counts_in_a_batch(admin, app: Flask) -> None:
    """Requests (all, today) and tokens per user; the page's queries do not grow with rows."""
    now = datetime.now(UTC)
    with app.app_context():
        user = add_user(1)
        add_request(user, now)
        add_request(user, now, RequestStatus.DENIED)  # counted in total, not toward the limit
        db.session.commit()
    assert _user_counts(admin.get("/admin/user/").text) == [
        ("requests", "2"), ("today", "1"), ("tokens", "30")
    ]  # fmt: skip
    with app.app_context(), count_queries() as one_row:
        admin.get("/admin/user/")
    with app.app_context():
        for telegram_id in range(2, 22):
            add_request(add_user(telegram_id), now)
        db.session.commit()
    with app.app_context(), count_queries() as many_rows:
        page = admin.get("/admin/user/").text
    assert len(_user_counts(page)) == 21 * 3
    assert len(many_rows) == len(one_row)


def test_a_model_cannot_be_its_own_fallback_in_the_form(admin, app: Flask) -> None:
    """Choosing the model itself as fallback is refused with an error; nothing is saved."""
    with app.app_context():
        model = LLMModel(name="Loop", model="m", base_url="http://127.0.0.1:9/v1")
        db.session.add(model)
        db.session.commit()
        model_id = model.id
    edit = f"/admin/llm_model/edit/?id={model_id}"
    page = admin.post(
        edit,
        data={"csrf_token": _csrf(admin, edit), "name": "Loop", "model": "m",
              "base_url": "http://127.0.0.1:9/v1", "fallback": str(model_id),
              "input_price_per_1m": "0", "output_price_per_1m": "0"},
        follow_redirects=True,
    ).text  # fmt: skip
    assert "a model cannot be its own fallback" in page
    with app.app_context():
        assert db.session.get(LLMModel, model_id).fallback_model_id is None


def test_a_nul_character_in_a_form_is_an_error_not_a_crash(admin, app: Flask) -> None:
    """PostgreSQL cannot store NUL: the form says so (200, the error shown), nothing is saved."""
    token = _csrf(admin, "/admin/mode/new/")
    response = admin.post(
        "/admin/mode/new/",
        data={"csrf_token": token, "name": "bad\x00name", "system_prompt": "x", "position": "5"},
    )
    assert response.status_code == 200, response.status_code
    assert "Must not hold NUL characters." in response.text
    with app.app_context():
        assert db.session.scalar(select(Mode).where(Mode.name.contains("bad"))) is None
