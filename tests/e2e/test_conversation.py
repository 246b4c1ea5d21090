"""The conversation end to end: update → Celery → LLM (llmock) → reply (fake Telegram).

Every test goes through the real broker and worker, the real pyTelegramBotAPI and openai
clients, and real HTTP servers standing in for Telegram and the LLM.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask

from shared.db import db
from shared.models import Mode, Request, User, UserStatus
from shared.services.settings import set_setting
from tests.e2e.conftest import Conversation
from tests.support import wait_until

pytestmark = pytest.mark.e2e

ALICE = 501


def _text(call) -> str:
    return call.params["text"]


def _bodies(conversation: Conversation) -> list[dict]:
    return [r["body"] for r in conversation.llm.chat_requests()]


def test_start_registers_and_greets_in_russian(conversation: Conversation) -> None:
    """/start registers the Telegram id as active and greets in Russian by default."""
    conversation.say(ALICE, "/start", first_name="Алиса")
    (greeting,) = conversation.sent(ALICE)
    assert "Здравствуйте, Алиса" in _text(greeting)
    user = conversation.user(ALICE)
    assert user.status == UserStatus.ACTIVE and user.first_name == "Алиса"
    assert user.last_seen_at is not None
    assert conversation.rows(ALICE) == [], "commands are not dialog messages"


def test_help_lists_commands_in_english(conversation: Conversation) -> None:
    """/help lists /start, /help, /settings, /new, /stop in the user's language."""
    conversation.say(ALICE, "/help", language_code="en")
    (reply,) = conversation.sent(ALICE)
    for command in ("/start", "/help", "/settings", "/new", "/stop"):
        assert command in _text(reply)
    assert "Commands" in _text(reply)


def test_two_turns_keep_context(conversation: Conversation) -> None:
    """The second request carries the system prompt, the first turn and its answer."""
    conversation.llm.script(
        {"type": "reply", "text": "Nice to meet you, Alice."},
        {"type": "reply", "text": "Your name is Alice."},
    )
    conversation.say(ALICE, "My name is Alice")
    first = conversation.sent(ALICE)[0]
    assert "Nice to meet you" in _text(first)
    conversation.say(ALICE, "What is my name?")
    second = conversation.sent(ALICE, 2)[1]
    assert "Your name is Alice" in _text(second)

    messages = _bodies(conversation)[1]["messages"]
    assert messages[0]["role"] == "system" and "кратко" in messages[0]["content"]
    assert messages[1:] == [
        {"role": "user", "content": "My name is Alice"},
        {"role": "assistant", "content": "Nice to meet you, Alice."},
        {"role": "user", "content": "What is my name?"},
    ]
    markup = second.params["reply_markup"]
    assert markup["inline_keyboard"][0][0]["text"] == "Начать новый диалог"

    rows = conversation.rows(ALICE)
    assert [r.number for r in rows] == [1, 2]
    assert rows[0].dialog_id == rows[1].dialog_id
    assert rows[1].request_text == "What is my name?"
    assert rows[1].response_text == "Your name is Alice."
    assert rows[1].status == "ok" and rows[1].model_name == "Mock GPT"
    assert rows[1].prompt_tokens and rows[1].completion_tokens
    assert rows[1].request_at <= rows[1].response_at
    assert rows[1].cost_usd > 0


def test_new_dialog_button_resets_context(conversation: Conversation) -> None:
    """After «Начать новый диалог» the LLM sees no earlier turn and numbering restarts at 1."""
    conversation.say(ALICE, "Remember the number 42")
    answer = conversation.sent(ALICE)[0]
    conversation.press(ALICE, answer.result["message_id"], "new")
    conversation.telegram.wait_for_call("answerCallbackQuery")
    confirmation = conversation.sent(ALICE, 2)[1]
    assert "новый диалог" in _text(confirmation).lower()

    conversation.say(ALICE, "Which number?")
    conversation.sent(ALICE, 3)
    messages = _bodies(conversation)[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["content"] == "Which number?"

    first, second = conversation.rows(ALICE)
    assert first.dialog_id != second.dialog_id
    assert (first.number, second.number) == (1, 1)
    dialogs = conversation.dialogs(ALICE)
    assert dialogs[0].ended_at is not None and dialogs[1].ended_at is None


def test_new_command_resets_context(conversation: Conversation) -> None:
    """/new ends the dialog just like the button."""
    conversation.say(ALICE, "one")
    conversation.sent(ALICE)
    conversation.say(ALICE, "/new")
    conversation.sent(ALICE, 2)
    conversation.say(ALICE, "two")
    conversation.sent(ALICE, 3)
    first, second = conversation.rows(ALICE)
    assert first.dialog_id != second.dialog_id and second.number == 1


def test_switching_mode_changes_the_system_prompt(conversation: Conversation) -> None:
    """/settings offers the modes; choosing «Развёрнутый ответ» changes the system prompt."""
    conversation.say(ALICE, "/settings")
    settings = conversation.sent(ALICE)[0]
    assert "Краткий ответ" in _text(settings)
    buttons = [b for row in settings.params["reply_markup"]["inline_keyboard"] for b in row]
    detailed = next(b for b in buttons if "Развёрнутый ответ" in b["text"])
    conversation.press(ALICE, settings.result["message_id"], detailed["callback_data"])
    toast = conversation.telegram.wait_for_call("answerCallbackQuery")
    assert "Развёрнутый ответ" in toast.params["text"]
    edited = conversation.telegram.wait_for_call("editMessageText")
    assert "Режим ответа: Развёрнутый ответ" in edited.params["text"]

    conversation.say(ALICE, "Explain recursion")
    conversation.sent(ALICE, 2)
    with conversation.app.app_context():
        prompt = db.session.query(Mode).filter_by(name="Развёрнутый ответ").one().system_prompt
    assert _bodies(conversation)[-1]["messages"][0] == {"role": "system", "content": prompt}
    assert conversation.rows(ALICE)[0].mode_name == "Развёрнутый ответ"


@pytest.mark.parametrize(
    ("status", "refusal"),
    [(UserStatus.BLOCKED, "Доступ к боту закрыт"), (UserStatus.PENDING, "ещё не одобрена")],
)
def test_users_without_access_are_refused_and_logged(
    conversation: Conversation, status: UserStatus, refusal: str
) -> None:
    """Blocked and pending users get a short refusal, no LLM call, and a ``denied`` row."""
    with conversation.app.app_context():
        db.session.add(User(telegram_id=ALICE, status=status))
        db.session.commit()
    conversation.say(ALICE, "hello?")
    (reply,) = conversation.sent(ALICE)
    assert refusal in _text(reply)
    (row,) = conversation.rows(ALICE)
    assert row.status == "denied" and row.request_text == "hello?"
    assert conversation.llm.chat_requests() == []


def test_approval_registration_makes_new_users_pending(conversation: Conversation) -> None:
    """With registration = approval, /start answers that access awaits approval."""
    with conversation.app.app_context():
        set_setting("registration", "approval")
        db.session.commit()
    conversation.say(ALICE, "/start")
    (reply,) = conversation.sent(ALICE)
    assert "заявка" in _text(reply)
    assert conversation.user(ALICE).status == UserStatus.PENDING


def test_llm_down_gives_an_apology_then_recovers(app: Flask, conversation: Conversation) -> None:
    """500 on every attempt: apology in the user's language, ``error`` row; the next one works."""
    attempts = app.config["AI_ROUTER"].llm_max_attempts
    conversation.llm.script({"type": "fail", "status": 500, "times": attempts})
    conversation.say(ALICE, "Are you there?", language_code="en")
    (apology,) = conversation.sent(ALICE)
    assert _text(apology).startswith("Sorry")
    assert "Traceback" not in _text(apology) and "500" not in _text(apology)
    assert len(conversation.llm.chat_requests()) == attempts, "retried, then gave up"
    (row,) = conversation.rows(ALICE)
    assert row.status == "error" and "500" in row.error

    conversation.llm.script({"type": "reply", "text": "Back online."})
    conversation.say(ALICE, "And now?", language_code="en")
    assert "Back online." in _text(conversation.sent(ALICE, 2)[1])
    assert conversation.rows(ALICE)[1].status == "ok"
    history = _bodies(conversation)[-1]["messages"]
    assert [m["role"] for m in history] == ["system", "user"], "failed turns are not context"


def test_rate_limit_is_retried_honouring_retry_after(conversation: Conversation) -> None:
    """A 429 with Retry-After is retried and the user simply gets the answer."""
    conversation.llm.script(
        {"type": "fail", "status": 429, "retry_after": 0.2, "times": 1},
        {"type": "reply", "text": "Worth the wait."},
    )
    conversation.say(ALICE, "hi")
    assert "Worth the wait." in _text(conversation.sent(ALICE)[0])
    assert [r for r in conversation.llm.chat_requests()][0]["status"] == 429


def test_long_answer_is_split_into_ordered_parts(conversation: Conversation) -> None:
    """A 9,000-character answer arrives as parts of ≤ 4,096 characters adding up to it."""
    paragraphs = [f"Paragraph {i}: " + "word " * 60 for i in range(30)]
    answer = "\n\n".join(p.strip() for p in paragraphs)
    assert len(answer) >= 9000
    conversation.llm.script({"type": "reply", "text": answer})
    conversation.say(ALICE, "Tell me a long story")
    calls = conversation.sent(ALICE, 3)
    conversation.telegram.wait_for_calls("sendMessage", 3)
    texts = [m["text"] for m in conversation.telegram.messages(ALICE)]
    assert len(texts) >= 3 and all(len(text) <= 4096 for text in texts)
    assert re.sub(r"\s+", " ", " ".join(texts)) == re.sub(r"\s+", " ", answer)
    assert [c.params.get("reply_markup") is not None for c in calls][-1]
    assert all(c.params.get("reply_markup") is None for c in calls[:-1])


def test_html_in_input_and_answer_is_delivered_intact(conversation: Conversation) -> None:
    """Text that would break HTML (<b>, &, <script>) reaches the user exactly as written."""
    tricky = "Is <b>this</b> bold? 5 < 6 & 7 > 3 <script>alert('x')</script>"
    conversation.llm.script({"type": "reply", "text": tricky})
    conversation.say(ALICE, tricky)
    conversation.sent(ALICE)
    (delivered,) = conversation.telegram.messages(ALICE)
    assert delivered["text"] == tricky
    assert conversation.rows(ALICE)[0].request_text == tricky
    assert _bodies(conversation)[0]["messages"][-1]["content"] == tricky


def test_same_update_twice_is_answered_once(conversation: Conversation) -> None:
    """A redelivered update gives one LLM call and one reply."""
    update = conversation.say(ALICE, "only once")
    conversation.sent(ALICE)
    conversation.deliver(update)
    conversation.say(ALICE, "/help")  # processed after the duplicate on the same queue
    conversation.sent(ALICE, 2)
    assert len(conversation.llm.chat_requests()) == 1
    assert len(conversation.rows(ALICE)) == 1
    answers = [m for m in conversation.telegram.messages(ALICE) if "/settings" not in m["text"]]
    assert len(answers) == 1


def test_non_text_message_gets_a_polite_reply(conversation: Conversation) -> None:
    """A sticker gets "I cannot read this kind yet" (naming what is read), no LLM call."""
    conversation.deliver(
        conversation.telegram.inject_update(
            {
                "message": {
                    "from": {"id": ALICE, "is_bot": False, "first_name": "A",
                             "language_code": "en"},
                    "chat": {"id": ALICE, "type": "private"},
                    "sticker": {
                        "file_id": "s", "file_unique_id": "s", "type": "regular",
                        "width": 512, "height": 512, "is_animated": False, "is_video": False,
                    },
                }
            }
        )
    )  # fmt: skip
    (reply,) = conversation.sent(ALICE)
    assert "cannot read this kind of message" in _text(reply)
    assert "photos, voice messages" in _text(reply)
    assert conversation.llm.chat_requests() == []


def test_answers_in_a_dialog_keep_their_order(conversation: Conversation) -> None:
    """Two quick messages: answered in order, the second seeing the first answer."""
    conversation.llm.script(
        {"type": "delay", "seconds": 1, "times": 1},
        {"type": "reply", "text": "first answer"},
        {"type": "reply", "text": "second answer"},
    )
    conversation.say(ALICE, "first")
    conversation.say(ALICE, "second")
    first, second = conversation.sent(ALICE, 2)
    assert "first answer" in _text(first) and "second answer" in _text(second)
    second_request = _bodies(conversation)[1]["messages"]
    assert {"role": "assistant", "content": "first answer"} in second_request


def test_model_switch_among_enabled_models(app: Flask, conversation: Conversation) -> None:
    """With two enabled models /settings offers both; choosing one routes requests to it."""
    from shared.models import LLMModel

    with app.app_context():
        other = LLMModel(
            name="Mock Large", model="gpt-mock-large", base_url=conversation.llm.base_url
        )
        db.session.add(other)
        db.session.commit()
        other_id = other.id
    conversation.say(ALICE, "/settings")
    settings = conversation.sent(ALICE)[0]
    conversation.press(ALICE, settings.result["message_id"], f"model:{other_id}")
    conversation.telegram.wait_for_call("editMessageText")
    conversation.say(ALICE, "hi")
    conversation.sent(ALICE, 2)
    assert _bodies(conversation)[-1]["model"] == "gpt-mock-large"
    assert conversation.rows(ALICE)[0].model_name == "Mock Large"


def test_fallback_model_answers_when_the_primary_gives_up(
    app: Flask, conversation: Conversation
) -> None:
    """The primary fails every attempt; its configured fallback answers."""
    from shared.models import LLMModel

    with app.app_context():
        backup = LLMModel(name="Backup", model="gpt-backup", base_url=conversation.llm.base_url)
        db.session.add(backup)
        db.session.flush()
        db.session.get(LLMModel, conversation.model_id).fallback_model_id = backup.id
        db.session.commit()
    attempts = app.config["AI_ROUTER"].llm_max_attempts
    conversation.llm.script(
        {"type": "fail", "status": 503, "times": attempts, "match": {"model": "gpt-mock"}},
        {"type": "reply", "text": "from the backup"},
    )
    conversation.say(ALICE, "hi")
    assert "from the backup" in _text(conversation.sent(ALICE)[0])
    assert conversation.rows(ALICE)[0].model_name == "Backup"


def test_message_rows_are_complete(conversation: Conversation) -> None:
    """The log row has every field the admin API exposes."""
    conversation.say(ALICE, "fields?")
    conversation.sent(ALICE)
    row = wait_until(
        lambda: conversation.rows(ALICE)[0].delivered_at and conversation.rows(ALICE)[0]
    )
    assert isinstance(row, Request)
    assert row.dialog_id and row.number == 1 and row.update_id
    assert row.request_at and row.response_at and row.response_text
    assert row.status == "ok" and row.error is None and row.latency_ms is not None


def test_blocking_through_the_api_takes_effect_at_once(client, conversation: Conversation) -> None:
    """PATCH status=blocked: the user's very next message is refused without an LLM call."""
    from tests.support import ADMIN_API_TOKEN

    conversation.say(ALICE, "before")
    conversation.sent(ALICE)
    response = client.patch(
        f"/admin/api/users/{ALICE}",
        json={"status": "blocked"},
        headers={"Authorization": f"Bearer {ADMIN_API_TOKEN}"},
    )
    assert response.status_code == 200
    conversation.say(ALICE, "after")
    refusal = conversation.sent(ALICE, 2)[1]
    assert "Доступ к боту закрыт" in _text(refusal)
    assert len(conversation.llm.chat_requests()) == 1
    assert [r.status for r in conversation.rows(ALICE)] == ["ok", "denied"]


def test_daily_limit_restricts_then_extends(conversation: Conversation) -> None:
    """A per-user limit of 1: the second request today is refused; raising it lets it through."""
    with conversation.app.app_context():
        db.session.add(User(telegram_id=ALICE, daily_request_limit=1))
        db.session.commit()
    conversation.say(ALICE, "one")
    conversation.sent(ALICE)
    conversation.say(ALICE, "two")
    assert "лимит" in _text(conversation.sent(ALICE, 2)[1])
    with conversation.app.app_context():
        db.session.query(User).filter_by(telegram_id=ALICE).update({"daily_request_limit": 5})
        db.session.commit()
    conversation.say(ALICE, "three")
    conversation.sent(ALICE, 3)
    assert [r.status for r in conversation.rows(ALICE)] == ["ok", "denied", "ok"]


def test_two_copies_in_flight_are_answered_once(conversation: Conversation) -> None:
    """The same update delivered twice at once (both copies queued) gives one LLM call."""
    update = conversation.telegram.inject_message(ALICE, "twice at once")
    conversation.deliver(update)
    conversation.deliver(update)
    conversation.sent(ALICE)
    conversation.say(ALICE, "/help")
    conversation.sent(ALICE, 2)
    assert len(conversation.llm.chat_requests()) == 1
    assert len(conversation.rows(ALICE)) == 1


def test_an_update_claimed_by_a_dead_worker_is_handled_after_the_claim_lapses(
    app: Flask, conversation: Conversation
) -> None:
    """A claim left by a crashed worker expires, so the broker's redelivery is handled."""
    update = conversation.telegram.inject_message(ALICE, "after a crash")
    redis = app.extensions["redis"]
    key = f"ai_router:update:{update['update_id']}"
    redis.set(key, "processing", px=300)  # as a worker that died mid-task left it
    conversation.deliver(update)
    wait_until(lambda: not redis.exists(key) or redis.get(key) == "done")
    conversation.deliver(update)  # the redelivery after the visibility timeout
    conversation.sent(ALICE)
    assert [r.request_text for r in conversation.rows(ALICE)] == ["after a crash"]


def test_a_chat_that_blocked_the_bot_is_settled_not_retried(conversation: Conversation) -> None:
    """Telegram says the user blocked the bot: the answer is kept, marked undeliverable, once."""
    conversation.telegram.fail_next(
        "sendMessage", error_code=403, description="Forbidden: bot was blocked by the user",
        times=20,
    )  # fmt: skip
    conversation.say(ALICE, "are you there?")

    def settled() -> Request | None:
        rows = conversation.rows(ALICE)
        return rows[0] if rows and rows[0].delivered_at is not None else None

    row = wait_until(settled, timeout=60, what="the row to be settled")
    assert row.status == "ok" and row.response_text and "undeliverable" in row.error
    assert row.delivered_parts == 0
    assert len(conversation.telegram.calls("sendMessage")) == 1, "a blocked chat is not retried"
    assert len(conversation.llm.chat_requests()) == 1


def test_a_reply_that_keeps_failing_ends_as_an_error_row(conversation: Conversation) -> None:
    """Telegram fails every send: after the retries the row is ``error``, settled, asked once."""
    conversation.telegram.fail_next("sendMessage", error_code=502, times=100)
    conversation.say(ALICE, "are you there?")

    def settled() -> Request | None:
        rows = conversation.rows(ALICE)
        return rows[0] if rows and rows[0].delivered_at is not None else None

    row = wait_until(settled, timeout=90, what="the row to end as error")
    assert row.status == "error" and row.error_kind == "gave_up"
    assert "gave up" in row.error and "502" in row.error
    assert len(conversation.llm.chat_requests()) == 1, "the answer is not asked for again"


def test_nul_bytes_and_oversized_names_are_cleaned_not_fatal(conversation: Conversation) -> None:
    """Text with NUL bytes is answered without them; a forged over-long name is cut to fit."""
    conversation.say(ALICE, "hel\x00lo", first_name="N" * 500 + "\x00")
    conversation.sent(ALICE)
    (row,) = conversation.rows(ALICE)
    assert row.request_text == "hello" and row.status == "ok"
    assert conversation.user(ALICE).first_name == "N" * 128
