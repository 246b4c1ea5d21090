"""The admin in a real browser: headless Chromium (Debian's package) driven by Playwright.

Logs in, saves the bot token, creates a model and makes it active, starts the bot, opens the
logs and the statistics, creates a plan, lists the payments, changes a user's plan and blocks
a group. A screenshot of each page is saved under ``test-artifacts/screenshots`` (some are
copied into ``docs/screenshots`` for the README). Skipped, with the reason, on a machine without
``/usr/bin/chromium``; ``.ci/run`` installs it, so CI always runs this test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from shared.config import PROJECT_ROOT
from shared.db import db
from shared.models import (
    Dialog,
    Group,
    GroupStatus,
    Payment,
    PaymentStatus,
    PlanChange,
    Request,
    RequestStatus,
    User,
)
from shared.services import bot_control, plans
from shared.services.catalog import seed_catalog
from tests.support import ADMIN_PASSWORD, ADMIN_USERNAME, free_port

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
#: Without these flags Chromium keeps dialing out (no network here) and needs a sandbox.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]  # fmt: skip


@pytest.fixture()
def served(app: Flask) -> Iterator[str]:
    """The app on a real HTTP port: seeded modes and plans, a little traffic, two payments."""
    with app.app_context():
        seed_catalog(app.config["AI_ROUTER"])
        plans.seed_plans()
        user = User(telegram_id=1001, username="alice", first_name="Alice")
        bob = User(telegram_id=1002, username="bob", first_name="Bob")
        db.session.add_all([user, bob])
        db.session.flush()
        now = datetime.now(UTC)
        db.session.add_all(
            [
                Payment(user_id=bob.id, telegram_id=1002, plan_name="Paid", stars=250,
                        period_days=30, telegram_payment_charge_id="stxBROWSER-refunded",
                        invoice_payload="plan:2:250:1002", created_at=now - timedelta(days=3),
                        status=PaymentStatus.REFUNDED, refunded_at=now - timedelta(days=2),
                        refunded_by="admin"),
                Payment(user_id=user.id, telegram_id=1001, plan_name="Paid", stars=250,
                        period_days=30, telegram_payment_charge_id="stxBROWSER-paid",
                        invoice_payload="plan:2:250:1001", created_at=now),
            ]
        )  # fmt: skip
        dialog = Dialog(user_id=user.id)
        db.session.add(dialog)
        db.session.flush()
        for number, (text, answer) in enumerate(
            [("Привет! Что такое Celery?", "Celery — очередь задач для Python."),
             ("А Redis зачем?", "Redis служит брокером сообщений.")], start=1
        ):  # fmt: skip
            db.session.add(
                Request(dialog_id=dialog.id, number=number, user_id=user.id, request_text=text,
                        request_at=datetime.now(UTC), response_text=answer,
                        response_at=datetime.now(UTC), status=RequestStatus.OK,
                        prompt_tokens=40 * number, completion_tokens=25 * number,
                        cost_usd=Decimal("0.0004") * number, model_name="GPT-4o mini",
                        mode_name="Краткий ответ")
            )  # fmt: skip
        # A forum supergroup the bot was asked in, with a photo asked about in a topic.
        db.session.add(Group(chat_id=-1001234, title="Python club", kind="supergroup",
                             is_forum=True))  # fmt: skip
        group_dialog = Dialog(user_id=bob.id, chat_id=-1001234, thread_id=5)
        db.session.add(group_dialog)
        db.session.flush()
        db.session.add(
            Request(dialog_id=group_dialog.id, number=1, user_id=bob.id, chat_id=-1001234,
                    thread_id=5, request_text="What is on this slide?",
                    request_at=datetime.now(UTC), response_text="A Celery architecture diagram.",
                    response_at=datetime.now(UTC), status=RequestStatus.OK, prompt_tokens=300,
                    completion_tokens=20, cost_usd=Decimal("0.0002"), model_name="GPT-4o mini",
                    mode_name="Краткий ответ",
                    attachment={"kind": "photo", "size": 122_880, "width": 1280, "height": 720})
        )  # fmt: skip
        db.session.commit()
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


@pytest.fixture()
def page() -> Iterator[object]:
    """A Playwright page in Debian's headless Chromium (never a downloaded browser)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); .ci/run does")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        yield context.new_page()
        browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_admin_walkthrough_in_chromium(served: str, page, app: Flask, telegram) -> None:
    """Log in, configure, create and activate a model, start the bot, open logs and stats."""
    page.goto(f"{served}/admin/")
    assert "/admin/login/" in page.url
    _shot(page, "01-login")
    page.fill("input[name=username]", ADMIN_USERNAME)
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{served}/admin/")

    page.goto(f"{served}/admin/settings/")
    page.fill("input[name=telegram_bot_token]", telegram.token)
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Settings saved.")
    _shot(page, "02-settings")

    page.goto(f"{served}/admin/llm_model/new/")
    page.fill("input[name=name]", "GPT-4o mini")
    page.fill("input[name=model]", "gpt-4o-mini")
    page.fill("input[name=base_url]", "https://api.openai.com/v1")
    page.fill("input[name=api_key]", "sk-browser-test-7777")
    page.fill("input[name=input_price_per_1m]", "0.15")
    page.fill("input[name=output_price_per_1m]", "0.60")
    page.click("input[type=submit][value='Save']")
    page.wait_for_selector("text=••••7777")
    page.click("button:has-text('Make active')")
    page.wait_for_selector("text=GPT-4o mini is now the active model.")
    assert "sk-browser-test" not in page.content()
    _shot(page, "03-models")

    page.goto(f"{served}/admin/bot/")
    page.click("button:has-text('Запустить бота'):not(:has-text('webhook'))")
    page.wait_for_selector("text=Desired state: polling")
    assert page.inner_text("[data-field=desired]") == "polling"
    with app.app_context():
        assert bot_control.get_desired()["mode"] == "polling"
    page.wait_for_selector("text=Pending updates")  # Telegram's getWebhookInfo, from the fake
    _shot(page, "04-bot")
    # The page refreshes itself (GET /admin/status every 5 s): a change made elsewhere (here
    # through the service, as the API would) shows up without a reload.
    with app.app_context():
        bot_control.control("stop")
    page.wait_for_selector("[data-field=desired]:text-is('stopped')", timeout=15_000)
    assert "Refreshed at" in page.inner_text("[data-live-note]")

    page.goto(f"{served}/admin/message/")
    page.wait_for_selector("text=Что такое Celery")
    assert page.locator("td.col-attachment:text-is('photo 120 KB')").count() == 1
    _shot(page, "05-logs")

    page.goto(f"{served}/admin/stats/?period=7d")
    assert page.inner_text("[data-stat=requests]") == "3"
    assert page.locator("svg").count() >= 4
    _shot(page, "06-stats")

    page.goto(f"{served}/admin/user/")
    page.wait_for_selector("text=alice")
    _shot(page, "07-users")

    # Plans: a new plan through the form (limits, a model, a price), listed with the seeded ones.
    page.goto(f"{served}/admin/plan/new/")
    page.fill("input[name=name]", "Pro")
    page.fill("textarea[name=description]", "Every model, more tokens")
    page.fill("input[name=requests_per_day]", "2000")
    page.fill("input[name=tokens_per_month]", "50000000")
    page.select_option("select[name=model_ids]", label="GPT-4o mini")
    page.fill("input[name=price_stars]", "900")
    page.click("input[type=submit][value='Save']")
    page.wait_for_selector("text=Record was successfully created.")
    for cell in ("Free", "Paid", "Pro", "900 ⭐", "GPT-4o mini", "all enabled"):
        assert page.locator(f"td:text-is('{cell}')").count() >= 1, cell
    _shot(page, "08-plans")

    # Payments: newest first, the paid one with «Refund», the refunded one without.
    page.goto(f"{served}/admin/payment/")
    rows = page.locator("table.model-list tbody tr")
    assert rows.count() == 2
    assert "stxBROWSER-paid" in rows.nth(0).inner_text()
    assert rows.nth(0).locator("button:has-text('Refund')").count() == 1
    assert rows.nth(1).locator("button:has-text('Refund')").count() == 0
    _shot(page, "09-payments")

    # The user page's Plan section: use against the limits, a plan change, the history.
    page.click("a:text-is('1001')")
    page.wait_for_selector("#plan-section")
    page.select_option("select[name=plan_id]", label="Pro")
    page.fill("input[name=plan_expires_at]", "2031-01-31T12:00")
    page.click("button:has-text('Change plan')")
    page.wait_for_selector("text=Plan of 1001: Pro until 2031-01-31 12:00 UTC.")
    assert "admin" in page.inner_text("#plan-history")
    assert page.inner_text("[data-plan-name]") == "Pro"
    with app.app_context():
        [change] = db.session.query(PlanChange).all()
        assert (change.actor, change.to_plan_name) == (ADMIN_USERNAME, "Pro")
    _shot(page, "10-user-plan")

    # Groups: listed after Users with their activity; «Block» (confirmed) refuses the group.
    page.click("nav a:text-is('Groups')")
    page.wait_for_url(f"{served}/admin/group/")
    row = page.locator("table.model-list tbody tr", has_text="Python club")
    assert row.locator("td.col-requests").inner_text().strip() == "1"
    assert row.locator("td.col-members").inner_text().strip() == "1"
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button:has-text('Block')").click()
    page.wait_for_selector("text=Group «Python club» blocked.")
    assert row.locator("td.col-status").inner_text().strip() == "blocked"
    assert row.locator("button:has-text('Unblock')").count() == 1
    with app.app_context():
        assert db.session.query(Group).one().status == GroupStatus.BLOCKED
    _shot(page, "11-groups")

    page.goto(f"{served}/admin/")
    _shot(page, "00-dashboard")
    for name in ("01-login", "02-settings", "03-models", "04-bot", "05-logs", "06-stats",
                 "07-users", "08-plans", "09-payments", "10-user-plan", "11-groups"):  # fmt: skip
        assert (SHOTS / f"{name}.png").stat().st_size > 5000
