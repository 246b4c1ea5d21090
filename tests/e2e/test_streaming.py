"""Streaming answers with sendMessageDraft, and /stop, end to end (real worker, fake Bot API).

The model streams (llmock, or the slow fake that sends timed chunks and counts the streams a
client hung up on); the fake Bot API records every draft the bot showed.
"""

from __future__ import annotations

import pytest
from flask import Flask

from shared.db import db
from shared.models import LLMModel, Request, RequestStatus
from shared.services.catalog import make_default, set_api_key
from shared.services.settings import set_setting
from tests.e2e.conftest import Conversation
from tests.fakes.slow_llm import SlowLLM
from tests.support import wait_until

pytestmark = pytest.mark.e2e

BOB = 601


def _use(app: Flask, slow: SlowLLM) -> None:
    """Make the slow streaming fake the active model."""
    with app.app_context():
        model = LLMModel(name="Slow", model="slow", base_url=slow.base_url, enabled=True)
        set_api_key(model, "sk-slow")
        db.session.add(model)
        make_default(model)
        db.session.commit()


def test_streamed_and_plain_answers_end_with_the_same_text(
    app: Flask, conversation: Conversation
) -> None:
    """Streaming on: drafts grow, then the same final message as with streaming off."""
    with SlowLLM(delay=0.1, chunks=12, chunk_delay=0.1) as slow:
        _use(app, slow)
        conversation.say(BOB, "stream it", language_code="en")
        conversation.sent(BOB)
        drafts = conversation.telegram.drafts(BOB)
        assert drafts, "the answer was shown growing"
        assert all("slow answer to stream it".startswith(d["text"]) for d in drafts)
        assert len({d["draft_id"] for d in drafts}) == 1

        with app.app_context():
            set_setting("streaming", "false")
            db.session.commit()
        conversation.say(BOB, "stream it", language_code="en")
        calls = conversation.sent(BOB, 2)
    assert len(conversation.telegram.drafts(BOB)) == len(drafts), "no draft with streaming off"
    finals = [m["text"] for m in conversation.telegram.messages(BOB) if m.get("reply_markup")]
    assert finals == ["slow answer to stream it"] * 2
    assert calls[0].params["parse_mode"] == calls[1].params["parse_mode"] == "HTML"


def test_an_answer_that_comes_at_once_costs_no_draft(conversation: Conversation) -> None:
    """A fast model's short answer arrives in one burst: the final message, and no draft."""
    conversation.llm.script({"type": "reply", "text": "Short."})
    conversation.say(BOB, "quick", language_code="en")
    conversation.sent(BOB)
    assert conversation.telegram.drafts(BOB) == []
    assert conversation.telegram.messages(BOB)[-1]["text"] == "Short."
    body = conversation.llm.chat_requests()[-1]["body"]
    assert body["stream"] is True  # always streamed upstream: /stop works either way


def test_stop_ends_the_generation_and_delivers_what_was_written(
    app: Flask, conversation: Conversation
) -> None:
    """/stop mid-answer: the upstream stream is closed, the partial text arrives, row stopped."""
    with SlowLLM(delay=0.2, chunks=40, chunk_delay=0.25) as slow:
        _use(app, slow)
        conversation.say(BOB, "a long story please", language_code="en")
        wait_until(
            lambda: len(conversation.telegram.drafts(BOB)) >= 1, timeout=20, what="a first draft"
        )
        conversation.say(BOB, "/stop", language_code="en")
        (answer,) = conversation.sent(BOB)
        wait_until(lambda: slow.cancelled == 1, timeout=10, what="the model to see the stop")
    text = conversation.telegram.messages(BOB)[-1]["text"]
    assert text.endswith("⏹ Stopped")
    written = text.removesuffix("⏹ Stopped").strip()
    assert written and "slow answer to a long story please".startswith(written)
    assert written != "slow answer to a long story please", "the answer was cut short"
    assert answer.params.get("reply_markup"), "the new-dialog button is under it"
    (row,) = conversation.rows(BOB)
    assert row.status == RequestStatus.STOPPED and row.response_text == written
    assert row.delivered_at is not None


def test_stop_with_nothing_running_says_so(conversation: Conversation) -> None:
    """/stop when no answer is being written: a short note, nothing logged."""
    conversation.say(BOB, "/stop", language_code="en")
    (reply,) = conversation.sent(BOB)
    assert "nothing to stop" in reply.params["text"]
    assert conversation.rows(BOB) == []
    with conversation.app.app_context():
        assert db.session.query(Request).count() == 0
