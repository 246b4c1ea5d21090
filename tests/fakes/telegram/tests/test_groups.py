"""Groups, forum topics, mention entities and replies to the bot's messages."""

from __future__ import annotations

import pytest
import requests
import telebot
from telebot import types

from tests.fakes.telegram import FakeTelegram, utf16_length
from tests.fakes.telegram.tests.support import CHAT, HANG_GUARD

GROUP = -4001
SUPERGROUP = -1009876543210


# ------------------------------------------------------------------------------ groups


def test_group_chat_objects(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """Registered groups carry their title and type; forums say is_forum; others keep defaults."""
    assert fake_telegram.add_group(GROUP, "Friends") == {
        "id": GROUP,
        "title": "Friends",
        "type": "group",
    }
    fake_telegram.add_group(SUPERGROUP, "Big")
    fake_telegram.add_group(-1001, "Forum", forum=True)
    fake_telegram.add_group(-5, "Upgraded", kind="supergroup")

    chats = {
        chat_id: fake_telegram.inject_message(CHAT, "hi", chat_id=chat_id)["message"]["chat"]
        for chat_id in (GROUP, SUPERGROUP, -1001, -5, -77, -1005550000)
    }
    sent = bot.send_message(-1001, "hello forum")

    assert chats[SUPERGROUP] == {"id": SUPERGROUP, "title": "Big", "type": "supergroup"}
    assert chats[-1001] == {"id": -1001, "title": "Forum", "type": "supergroup", "is_forum": True}
    assert chats[-5]["type"] == "supergroup"
    assert chats[-77] == {"id": -77, "title": "Test group", "type": "group"}
    assert chats[-1005550000] == {"id": -1005550000, "title": "Test group", "type": "supergroup"}
    assert (sent.chat.title, sent.chat.type, sent.chat.is_forum) == ("Forum", "supergroup", True)
    assert fake_telegram.messages(-1001)[0]["chat"]["is_forum"] is True
    assert fake_telegram.inject_message(CHAT, "private")["message"]["chat"]["type"] == "private"


def test_add_group_refuses_impossible_groups(fake_telegram: FakeTelegram) -> None:
    """Positive ids, unknown kinds and forums that are not supergroups are test mistakes."""
    with pytest.raises(ValueError):
        fake_telegram.add_group(42, "Not a group")
    with pytest.raises(ValueError):
        fake_telegram.add_group(GROUP, "Channel", kind="channel")
    with pytest.raises(ValueError):
        fake_telegram.add_group(GROUP, "Small forum", forum=True)


def test_reset_forgets_groups(fake_telegram: FakeTelegram) -> None:
    """After a reset an id is the default test group again."""
    fake_telegram.add_group(GROUP, "Friends")

    fake_telegram.reset()

    chat = fake_telegram.inject_message(CHAT, "hi", chat_id=GROUP)["message"]["chat"]
    assert chat["title"] == "Test group"


# ------------------------------------------------------------------------------ topics


def test_thread_ids_on_injected_and_sent_messages(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """Topic messages carry message_thread_id; the bot's keep the one they were sent with."""
    fake_telegram.add_group(SUPERGROUP, "Forum", forum=True)

    update = fake_telegram.inject_message(CHAT, "in a topic", chat_id=SUPERGROUP, thread_id=12)
    in_topic = bot.send_message(SUPERGROUP, "answer", message_thread_id=12)
    general = bot.send_message(SUPERGROUP, "general")
    in_group = bot.send_message(GROUP, "thread in a plain group", message_thread_id=3)
    bot.send_chat_action(SUPERGROUP, "typing", message_thread_id=12)
    draft = requests.post(
        fake_telegram.api_url_template.format(fake_telegram.token, "sendMessageDraft"),
        json={"chat_id": SUPERGROUP, "draft_id": 1, "text": "typing…", "message_thread_id": 12},
        timeout=HANG_GUARD,
    )
    bad = requests.post(
        fake_telegram.api_url_template.format(fake_telegram.token, "sendChatAction"),
        json={"chat_id": SUPERGROUP, "action": "typing", "message_thread_id": "general"},
        timeout=HANG_GUARD,
    )

    message = update["message"]
    assert (message["message_thread_id"], message["is_topic_message"]) == (12, True)
    assert (in_topic.message_thread_id, in_topic.is_topic_message) == (12, True)
    assert general.message_thread_id is None and general.is_topic_message is None
    assert (in_group.message_thread_id, in_group.is_topic_message) == (3, None)
    stored = {m["text"]: m for m in fake_telegram.messages(SUPERGROUP)}
    assert stored["answer"]["message_thread_id"] == 12
    assert "message_thread_id" not in stored["general"]
    assert fake_telegram.calls("sendChatAction")[0].params["message_thread_id"] == 12
    assert draft.json() == {"ok": True, "result": True}
    assert [(d["message_thread_id"], d["text"]) for d in fake_telegram.drafts()] == [
        (12, "typing…")
    ]
    assert bad.status_code == 400
    assert (
        fake_telegram.inject_message(CHAT, "no topic")["message"]
        .keys()
        .isdisjoint({"message_thread_id", "is_topic_message"})
    )


# ------------------------------------------------------------------------------ entities


def test_mentions_get_entities_in_utf16_units(fake_telegram: FakeTelegram) -> None:
    """Every @username is a mention entity, offsets counted in UTF-16 code units."""
    text = "👋 @alice_bot, ask @bob_the_builder (not @bob, me@example.com or @@double)"

    entities = fake_telegram.inject_message(CHAT, text)["message"]["entities"]

    assert entities == [
        {"offset": 3, "length": 10, "type": "mention"},
        {"offset": utf16_length("👋 @alice_bot, ask "), "length": 16, "type": "mention"},
    ]
    assert entities[1]["offset"] == len("👋 @alice_bot, ask ") + 1  # the emoji is two units
    for entity in entities:
        encoded = text.encode("utf-16-le")
        start, length = 2 * entity["offset"], 2 * entity["length"]
        assert encoded[start : start + length].decode("utf-16-le").startswith("@")


def test_commands_and_mentions_together(fake_telegram: FakeTelegram) -> None:
    """A leading /cmd@bot stays one bot_command; mentions after it follow, sorted by offset."""
    addressed = fake_telegram.inject_message(CHAT, "/ask@ai_router_test_bot what is 2+2?")
    mixed = fake_telegram.inject_message(CHAT, "/ask @someone what?")
    plain = fake_telegram.inject_message(CHAT, "no entities here")
    too_long = fake_telegram.inject_message(CHAT, "@" + "a" * 33)

    assert addressed["message"]["entities"] == [{"offset": 0, "length": 23, "type": "bot_command"}]
    assert mixed["message"]["entities"] == [
        {"offset": 0, "length": 4, "type": "bot_command"},
        {"offset": 5, "length": 8, "type": "mention"},
    ]
    assert "entities" not in plain["message"]
    assert "entities" not in too_long["message"]


def test_entities_parse_with_the_real_client(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """Telebot reads the mention back with the same text slice."""
    fake_telegram.inject_message(CHAT, "🙂🙂 hey @ai_router_test_bot")

    [update] = bot.get_updates()

    [entity] = update.message.entities
    assert entity.type == "mention"
    assert (entity.offset, entity.length) == (9, 19)


# ------------------------------------------------------------------------------ replies


def test_reply_to_a_bot_message(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """A user's reply embeds the bot's message, from the bot user, without nesting replies."""
    question = fake_telegram.inject_message(CHAT, "question")["message"]
    answer = bot.send_message(
        CHAT, "answer", reply_parameters=types.ReplyParameters(question["message_id"])
    )

    update = fake_telegram.inject_message(CHAT, "follow-up", reply_to_message_id=answer.message_id)
    to_user = fake_telegram.inject_message(
        CHAT, "quoting myself", reply_to_message_id=question["message_id"]
    )

    replied = update["message"]["reply_to_message"]
    assert replied["message_id"] == answer.message_id
    assert replied["text"] == "answer"
    assert replied["from"]["is_bot"] is True
    assert replied["from"]["id"] == fake_telegram.bot_user["id"] == answer.from_user.id
    assert "reply_to_message" not in replied
    assert to_user["message"]["reply_to_message"]["from"]["is_bot"] is False
    stored = fake_telegram.history(CHAT)[-2]
    assert stored["reply_to_message"]["message_id"] == answer.message_id
    with pytest.raises(LookupError):
        fake_telegram.inject_message(CHAT, "x", reply_to_message_id=999)
    parsed = bot.get_updates()[-2]
    assert parsed.message.reply_to_message.from_user.is_bot is True


def test_reply_in_a_group_topic(bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """In a group, the reply comes from the group's chat and its thread."""
    fake_telegram.add_group(SUPERGROUP, "Forum", forum=True)
    sent = bot.send_message(SUPERGROUP, "bot says", message_thread_id=7)

    message = fake_telegram.inject_message(
        CHAT,
        "@ai_router_test_bot thanks",
        chat_id=SUPERGROUP,
        thread_id=7,
        reply_to_message_id=sent.message_id,
        username="grateful_user",
    )["message"]

    assert message["chat"]["id"] == SUPERGROUP
    assert message["from"] == {
        "id": CHAT,
        "is_bot": False,
        "first_name": "Test",
        "username": "grateful_user",
        "language_code": "ru",
    }
    assert message["reply_to_message"]["message_thread_id"] == 7
    assert message["reply_to_message"]["from"]["username"] == fake_telegram.bot_username
    assert message["entities"] == [{"offset": 0, "length": 19, "type": "mention"}]
    with pytest.raises(LookupError):  # the bot's message is in the group, not the private chat
        fake_telegram.inject_message(CHAT, "x", reply_to_message_id=sent.message_id)
