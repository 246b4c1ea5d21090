"""The Bot API methods: messages, replies, buttons, edits, drafts, commands, failures."""

from __future__ import annotations

import pytest
import telebot
from telebot import types

from tests.fakes.telegram import NOT_MODIFIED, QUERY_TOO_OLD, FakeTelegram
from tests.fakes.telegram.tests.support import CHAT, api_error, inline_keyboard

# ------------------------------------------------------------------------------ messages


def test_send_message_returns_a_message(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """SendMessage answers a Message with per-chat ids, the bot as sender and the keyboard."""
    first = bot.send_message(CHAT, "Hello", reply_markup=inline_keyboard("a", "b"))
    second = bot.send_message(CHAT, "World")
    elsewhere = bot.send_message(CHAT + 1, "Other chat")

    assert isinstance(first, types.Message)
    assert (first.message_id, second.message_id, elsewhere.message_id) == (1, 2, 1)
    assert first.chat.id == CHAT
    assert first.chat.type == "private"
    assert first.from_user.is_bot is True
    assert first.text == "Hello"
    assert [b.callback_data for row in first.reply_markup.keyboard for b in row] == ["a", "b"]
    assert [m["text"] for m in fake_telegram.messages(CHAT)] == ["Hello", "World"]
    call = fake_telegram.calls("sendMessage")[0]
    assert call.params["chat_id"] == CHAT
    assert call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "a"


def test_reply_to_a_user_message(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """Replying embeds the replied message; replying to a missing message is a 400."""
    update = fake_telegram.inject_message(CHAT, "question")
    user_message_id = update["message"]["message_id"]

    reply = bot.send_message(
        CHAT, "answer", reply_parameters=types.ReplyParameters(message_id=user_message_id)
    )
    error = api_error(
        bot.send_message, CHAT, "x", reply_parameters=types.ReplyParameters(message_id=999)
    )

    assert reply.reply_to_message.text == "question"
    assert reply.message_id == user_message_id + 1
    assert error.error_code == 400
    assert error.description == "Bad Request: message to be replied not found"


# ------------------------------------------------------------------------------ failures


def test_fail_next_answers_429_with_retry_after(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """fail_next makes the next call answer 429 with parameters.retry_after, then recovers."""
    fake_telegram.fail_next("sendMessage", retry_after=3)

    error = api_error(bot.send_message, CHAT, "x")
    message = bot.send_message(CHAT, "y")

    assert error.error_code == 429
    assert error.description == "Too Many Requests: retry after 3"
    assert error.result_json["parameters"]["retry_after"] == 3
    assert error.result.status_code == 429
    assert message.text == "y"
    assert [m["text"] for m in fake_telegram.messages(CHAT)] == ["y"]
    assert [c.status for c in fake_telegram.calls("sendMessage")] == [429, 200]


def test_fail_next_other_codes_and_times(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """Any error code can be injected for several calls."""
    fake_telegram.fail_next("getme", error_code=403, times=2)

    errors = [api_error(bot.get_me), api_error(bot.get_me)]

    assert [(e.error_code, e.description) for e in errors] == [
        (403, "Forbidden: bot was blocked by the user")
    ] * 2
    assert "parameters" not in errors[0].result_json
    assert bot.get_me().id == 123456
    with pytest.raises(ValueError):
        fake_telegram.fail_next("sendPigeon")


# ------------------------------------------------------------------------------ buttons and edits


def test_answer_callback_query_for_a_pressed_button(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """press_button delivers a callback_query the bot can answer exactly once."""
    fake_telegram.inject_message(7, "hi", first_name="Ann", username="ann")
    sent = bot.send_message(7, "Choose", reply_markup=inline_keyboard("pick:1", "pick:2"))
    fake_telegram.press_button(7, sent.message_id, "pick:2")

    updates = bot.get_updates()
    query = updates[-1].callback_query
    answered = bot.answer_callback_query(query.id, "Done", show_alert=True)
    twice = api_error(bot.answer_callback_query, query.id)
    unknown = api_error(bot.answer_callback_query, "12345")

    assert query.data == "pick:2"
    assert query.message.message_id == sent.message_id
    assert query.message.text == "Choose"
    assert query.from_user.username == "ann"
    assert query.chat_instance
    assert answered is True
    params = fake_telegram.calls("answerCallbackQuery")[0].params
    assert (params["text"], params["show_alert"]) == ("Done", True)
    for error in (twice, unknown):
        assert (error.error_code, error.description) == (400, QUERY_TOO_OLD)


def test_press_button_refuses_missing_buttons(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """Pressing a button that is not on the message (or a missing message) is a test error."""
    sent = bot.send_message(7, "Choose", reply_markup=inline_keyboard("a"))

    with pytest.raises(ValueError, match="no button"):
        fake_telegram.press_button(7, sent.message_id, "b")
    with pytest.raises(LookupError):
        fake_telegram.press_button(7, 999, "a")
    assert fake_telegram.press_button(7, sent.message_id, "b", check_button=False)


def test_edit_message_text(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """EditMessageText edits the stored message; unchanged content and unknown ids are 400."""
    sent = bot.send_message(CHAT, "v1", reply_markup=inline_keyboard("a"))

    edited = bot.edit_message_text(
        "<i>v2</i>", CHAT, sent.message_id, parse_mode="HTML", reply_markup=inline_keyboard("a")
    )
    unchanged = api_error(
        bot.edit_message_text,
        "<i>v2</i>",
        CHAT,
        sent.message_id,
        parse_mode="HTML",
        reply_markup=inline_keyboard("a"),
    )
    plain = bot.edit_message_text("v2", CHAT, sent.message_id)
    missing = api_error(bot.edit_message_text, "x", CHAT, 999)
    bad_html = api_error(bot.edit_message_text, "<b>x", CHAT, sent.message_id, parse_mode="HTML")

    assert edited.text == "v2"
    assert edited.message_id == sent.message_id
    assert edited.edit_date
    assert [e.type for e in edited.entities] == ["italic"]
    assert (unchanged.error_code, unchanged.description) == (400, NOT_MODIFIED)
    assert plain.entities is None
    assert plain.reply_markup is None  # editing without reply_markup drops the keyboard
    assert missing.description == "Bad Request: message to edit not found"
    assert bad_html.description.startswith("Bad Request: can't parse entities: ")
    [stored] = fake_telegram.messages(CHAT)
    assert stored["text"] == "v2"
    assert "reply_markup" not in stored


def test_edit_message_reply_markup(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """EditMessageReplyMarkup replaces or removes the keyboard."""
    sent = bot.send_message(CHAT, "v1", reply_markup=inline_keyboard("a"))

    bot.edit_message_reply_markup(CHAT, sent.message_id, reply_markup=inline_keyboard("b"))
    swapped = fake_telegram.messages(CHAT)[0]["reply_markup"]
    bot.edit_message_reply_markup(CHAT, sent.message_id)
    error = api_error(bot.edit_message_reply_markup, CHAT, sent.message_id)

    assert swapped["inline_keyboard"][0][0]["callback_data"] == "b"
    assert "reply_markup" not in fake_telegram.messages(CHAT)[0]
    assert error.description == NOT_MODIFIED


def test_delete_message_and_chat_action(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """DeleteMessage removes the message once; sendChatAction checks the action."""
    first = bot.send_message(CHAT, "one")
    bot.send_message(CHAT, "two")

    assert bot.delete_message(CHAT, first.message_id) is True
    error = api_error(bot.delete_message, CHAT, first.message_id)
    assert bot.send_chat_action(CHAT, "typing") is True
    bad_action = api_error(bot.send_chat_action, CHAT, "dancing")

    assert [m["text"] for m in fake_telegram.messages(CHAT)] == ["two"]
    assert error.description == "Bad Request: message to delete not found"
    assert bad_action.error_code == 400


def test_send_message_draft(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """SendMessageDraft validates like sendMessage and records the drafts."""
    assert bot.send_message_draft(CHAT, 5, "Thinking <b>hard</b>", parse_mode="HTML") is True
    assert bot.send_message_draft(CHAT, 5, "Thinking hard, done") is True
    bad = api_error(bot.send_message_draft, CHAT, 5, "<b>oops", parse_mode="HTML")
    long = api_error(bot.send_message_draft, CHAT, 5, "x" * 4097)
    zero = api_error(bot.send_message_draft, CHAT, 0, "x")

    drafts = fake_telegram.drafts(CHAT)
    assert [(d["draft_id"], d["text"]) for d in drafts] == [
        (5, "Thinking hard"),
        (5, "Thinking hard, done"),
    ]
    assert drafts[0]["raw_text"] == "Thinking <b>hard</b>"
    assert bad.description.startswith("Bad Request: can't parse entities: ")
    assert long.description == "Bad Request: message is too long"
    assert zero.error_code == 400
    assert fake_telegram.messages(CHAT) == []


def test_set_and_get_my_commands(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """Commands are stored per scope and language; invalid commands are refused."""
    commands = [types.BotCommand("start", "Start"), types.BotCommand("help", "Help")]

    assert bot.set_my_commands(commands) is True
    assert bot.set_my_commands([types.BotCommand("start", "Начать")], language_code="ru") is True
    default = bot.get_my_commands()
    russian = bot.get_my_commands(language_code="ru")
    invalid = api_error(bot.set_my_commands, [types.BotCommand("Bad Command", "x")])
    assert bot.delete_my_commands() is True

    assert [(c.command, c.description) for c in default] == [("start", "Start"), ("help", "Help")]
    assert [(c.command, c.description) for c in russian] == [("start", "Начать")]
    assert invalid.error_code == 400
    assert bot.get_my_commands() == []
    assert fake_telegram.commands(language_code="ru") == [
        {"command": "start", "description": "Начать"}
    ]
