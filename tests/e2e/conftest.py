"""Fixtures for end-to-end conversations: a configured bot, fake Telegram, llmock, a worker."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from shared.app import create_core_app
from shared.celery_setup import enqueue_update
from shared.config import PROJECT_ROOT, Config
from shared.db import db
from shared.embedded_redis import EmbeddedRedis
from shared.models import Dialog, LLMModel, Request, User
from shared.services.catalog import make_default, seed_catalog, set_api_key
from shared.services.settings import set_setting
from tests.fakes.llm import LLMock
from tests.fakes.slow_llm import SlowLLM
from tests.fakes.telegram import Call, FakeTelegram


@pytest.fixture()
def llm(llm_server: str) -> LLMock:
    """The llmock server, with no recorded requests or scripted behaviours left over."""
    mock = LLMock(llm_server)
    mock.reset()
    return mock


@dataclass
class Conversation:
    """Drives the product as Telegram users would, through the task door and the fakes.

    Attributes:
        app: The Flask app.
        telegram: The fake Bot API.
        llm: The llmock server.
        model_id: The default model created for the test.
    """

    app: Flask
    telegram: FakeTelegram
    llm: LLMock
    model_id: int

    def deliver(self, update: dict[str, Any]) -> None:
        """Enqueue an update exactly as the webhook and the listener do."""
        enqueue_update(self.app, update)

    def say(self, user_id: int, text: str, **kwargs: Any) -> dict[str, Any]:
        """A user writes to the bot; returns the update."""
        update = self.telegram.inject_message(user_id, text, **kwargs)
        self.deliver(update)
        return update

    def press(self, user_id: int, message_id: int, data: str, **kwargs: Any) -> dict[str, Any]:
        """A user presses an inline button under a bot message; returns the update."""
        update = self.telegram.press_button(user_id, message_id, data, **kwargs)
        self.deliver(update)
        return update

    def sent(self, user_id: int, count: int = 1, method: str = "sendMessage") -> list[Call]:
        """Wait until the bot made ``count`` calls of ``method`` to this chat; return them all."""
        return self.telegram.wait_for_calls(
            method, count, lambda c: str(c.params.get("chat_id")) == str(user_id), timeout=30
        )

    def rows(self, user_id: int) -> list[Request]:
        """The user's log rows, oldest first."""
        with self.app.app_context():
            rows = db.session.scalars(
                select(Request).join(User).where(User.telegram_id == user_id).order_by(Request.id)
            ).all()
            db.session.expunge_all()
            return list(rows)

    def user(self, user_id: int) -> User | None:
        """The user's row."""
        with self.app.app_context():
            user = db.session.scalar(select(User).where(User.telegram_id == user_id))
            db.session.expunge_all()
            return user

    def dialogs(self, user_id: int) -> list[Dialog]:
        """The user's dialogs, oldest first."""
        with self.app.app_context():
            rows = db.session.scalars(
                select(Dialog).join(User).where(User.telegram_id == user_id).order_by(Dialog.id)
            ).all()
            db.session.expunge_all()
            return list(rows)


@pytest.fixture()
def conversation(app: Flask, celery_worker, telegram: FakeTelegram, llm: LLMock) -> Conversation:
    """A bot ready to talk: token set, modes seeded, a default model on llmock."""
    with app.app_context():
        seed_catalog(app.config["AI_ROUTER"])
        set_setting("telegram_bot_token", telegram.token)
        model = LLMModel(
            name="Mock GPT",
            model="gpt-mock",
            base_url=llm.base_url,
            enabled=True,
            input_price_per_1m=1,
            output_price_per_1m=2,
        )
        set_api_key(model, "sk-test-key-1234")
        db.session.add(model)
        make_default(model)
        db.session.commit()
        model_id = model.id
    return Conversation(app=app, telegram=telegram, llm=llm, model_id=model_id)


@pytest.fixture()
def slow_llm() -> Iterator[SlowLLM]:
    """An OpenAI-compatible server taking 4 s per answer, counting calls in flight."""
    with SlowLLM(delay=4.0) as server:
        yield server


@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis of the test's own, so no other worker of the suite takes its tasks."""
    server = EmbeddedRedis(tmp_path / "r.sock", tmp_path, persist=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def use_slow_model(app: Flask, telegram: FakeTelegram, slow_llm: SlowLLM) -> None:
    """Seed the modes, set the fake's bot token and make the slow LLM the active model."""
    with app.app_context():
        seed_catalog(app.config["AI_ROUTER"])
        set_setting("telegram_bot_token", telegram.token)
        model = LLMModel(name="Slow", model="slow", base_url=slow_llm.base_url, enabled=True)
        set_api_key(model, "sk-slow")
        db.session.add(model)
        make_default(model)
        db.session.commit()


def worker_process(env: dict[str, str], name: str, concurrency: int) -> subprocess.Popen[bytes]:
    """A gevent worker exactly as ``make run`` starts it, in a process group of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "gevent",
         "--concurrency", str(concurrency), "-Q", "updates,llm", "--loglevel", "WARNING",
         "--hostname", f"{name}@%h"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def producer_for(app: Flask, env: dict[str, str]) -> Flask:
    """A core app that enqueues on another broker; the suite's Celery app stays the default."""
    producer = create_core_app(Config.from_env(env))
    celery = app.extensions["celery"]
    celery.set_default()
    celery.set_current()
    return producer
