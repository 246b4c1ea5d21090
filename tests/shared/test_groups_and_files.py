"""The pure rules of groups and attachments: who is addressed, what a file becomes."""

from __future__ import annotations

import pytest

from shared.config import Config
from shared.models import ErrorKind
from shared.services.conversation import attachments
from shared.services.groups import BotIdentity, addressed, command_target, strip_address
from shared.telegram import updates

BOT = BotIdentity(id=777, username="Helper_Bot", first_name="Helper")
COMMANDS = frozenset({"new", "start", "help"})


def _message(text: str, **extra: object) -> dict:
    return {"message_id": 1, "date": 1, "chat": {"id": -5, "type": "group"}, "text": text, **extra}


@pytest.mark.parametrize(
    ("text", "extra", "expected"),
    [
        ("hello all", {}, False),
        ("@helper_bot hi", {"entities": [{"type": "mention", "offset": 0, "length": 11}]}, True),
        ("👋 @Helper_Bot hi", {"entities": [{"type": "mention", "offset": 3, "length": 11}]}, True),
        ("@other_bot hi", {"entities": [{"type": "mention", "offset": 0, "length": 10}]}, False),
        ("hi @helper_bot", {}, True),  # a client that sent no entities
        ("Helper, what time is it?", {}, True),
        ("Helpers are nice", {}, False),
        ("/new", {}, True),
        ("/new@helper_bot", {}, True),
        ("/new@other_bot", {}, False),
        ("/weather Moscow", {}, False),  # a bare command that is not ours
        ("ask @helper_bot_fan please", {}, False),  # a longer handle
        ("ask @helper_bot_fan", {"entities": [{"type": "mention", "offset": 4, "length": 15}]},
         False),
        ("hi @helper_bot", {"entities": "forged"}, True),
        ("yes", {"reply_to_message": {"message_id": 3, "from": "forged"}}, False),
        ("hey", {"entities": [{"type": "text_mention", "offset": 0, "length": 3,
                               "user": "forged"}]}, False),
        ("yes", {"reply_to_message": {"message_id": 3, "from": {"id": 777}}}, True),
        ("yes", {"reply_to_message": {"message_id": 3, "from": {"id": 5}}}, False),
        ("hey", {"entities": [{"type": "text_mention", "offset": 0, "length": 3,
                               "user": {"id": 777}}]}, True),
    ],
)  # fmt: skip
def test_addressed(text: str, extra: dict, expected: bool) -> None:
    """Mentions (UTF-16 offsets), replies, the name first, commands for this bot only."""
    assert addressed(_message(text, **extra), BOT, COMMANDS) is expected


def test_a_caption_can_address_the_bot() -> None:
    """A photo's caption is read like text, with its caption entities."""
    message = {
        "chat": {"id": -5, "type": "supergroup"},
        "photo": [{"file_id": "p", "width": 1, "height": 1}],
        "caption": "@helper_bot look",
        "caption_entities": [{"type": "mention", "offset": 0, "length": 11}],
    }
    assert addressed(message, BOT, COMMANDS)


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("@helper_bot what is 2+2?", "what is 2+2?"),
        ("what is @Helper_Bot doing", "what is doing"),
        ("@helper_bot_fan said hi", "@helper_bot_fan said hi"),
        ("Helper, translate this", "translate this"),
        ("plain", "plain"),
    ],
)
def test_strip_address(text: str, question: str) -> None:
    """The model reads the question, not the address."""
    assert strip_address(text, BOT) == question


def test_command_target() -> None:
    """``/cmd@bot`` names its bot, lower-case; a plain command names none."""
    assert command_target("/start@Helper_Bot now") == "helper_bot"
    assert command_target("/start") is None and command_target("hi") is None


def test_describe_picks_the_largest_photo_under_the_limit() -> None:
    """Sizes over ``IMAGE_MAX_BYTES`` are skipped; all over: the smallest (refused later)."""
    config = Config(image_max_bytes=5_000)
    photo = [
        {"file_id": "s", "width": 90, "height": 60, "file_size": 1_000},
        {"file_id": "m", "width": 320, "height": 240, "file_size": 4_000},
        {"file_id": "l", "width": 1280, "height": 960, "file_size": 90_000},
    ]
    described = attachments.describe({"photo": photo}, config)
    assert described == {"kind": "photo", "file_id": "m", "size": 4_000, "width": 320,
                         "height": 240}  # fmt: skip
    tiny = attachments.describe({"photo": photo}, Config(image_max_bytes=10))
    assert tiny["file_id"] == "s"
    assert attachments.refusal(tiny, None, _snapshot(), Config(image_max_bytes=10)) == (
        ErrorKind.TOO_LARGE
    )


def _snapshot():
    from shared.runtime import Snapshot

    return Snapshot(version=0)


@pytest.mark.parametrize(
    ("name", "mime", "text"),
    [
        ("notes.TXT", None, True),
        ("main.py", "application/octet-stream", True),
        ("Makefile", None, True),
        ("data", "application/json", True),
        ("page", "text/html; charset=utf-8", True),
        ("paper.pdf", "application/pdf", False),
        ("photo.jpg", "image/jpeg", False),
        (None, None, False),
    ],
)
def test_is_text_document(name: str | None, mime: str | None, text: bool) -> None:
    """By extension first, then by content type."""
    assert attachments.is_text_document(name, mime) is text


def test_decode_text() -> None:
    """UTF-8 (with a BOM), another encoding detected, binary refused."""
    assert attachments.decode_text("\ufeffпривет".encode()) == "привет"
    russian = (
        "Широкая электрификация южных губерний даст мощный толчок подъёму сельского хозяйства."
    )
    assert attachments.decode_text(russian.encode("cp1251")) == russian
    with pytest.raises(attachments.AttachmentFailed) as failed:
        attachments.decode_text(b"PK\x03\x04\x00\x00binary")
    assert failed.value.kind == ErrorKind.UNSUPPORTED_FILE


def test_a_transcript_is_quoted_as_said_and_a_trimmed_file_noted() -> None:
    """Expandable blockquotes, escaped (never Markdown), split on spaces; the note's counts."""
    voice = {"kind": "voice", "file_id": "v"}
    assert attachments.transcript_of(voice, "  ") is None
    said = attachments.transcript_of(voice, " **not bold** <b>&")
    (part,) = attachments.transcript_parts(said, reply_to=9)
    assert part.html == "<blockquote expandable>🎤 **not bold** &lt;b&gt;&amp;</blockquote>"
    assert part.reply_to_message_id == 9
    long = " ".join(["слово"] * 1500)  # 8,999 characters
    parts = attachments.transcript_parts(long, reply_to=9)
    assert len(parts) == 3 and [p.reply_to_message_id for p in parts] == [9, None, None]
    assert " ".join(p.text.removeprefix("🎤 ") for p in parts) == long
    assert all(len(p.text) <= attachments.TRANSCRIPT_PART + 2 for p in parts)
    document = {"kind": "document", "trimmed": True, "chars": 10, "total": 99}
    assert "first 10 of its 99" in attachments.preface(document, "en")
    assert attachments.preface(voice, "en") is None


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"photo": []}, "message: photo"),
        ({"photo": [{"file_id": 5}]}, "message: photo"),
        ({"voice": {"file_id": "v", "duration": "long"}}, "message: voice"),
        ({"document": {"file_id": "d", "file_name": 3}}, "message: document"),
        ({"caption": 7}, "message: caption"),
        ({"message_thread_id": "7"}, "message: message_thread_id"),
        ({"document": {"file_id": "d", "file_name": "a.txt", "file_size": 10}}, None),
        ({"document": {"file_id": "d", "mime_type": ["text/plain"]}}, "message: document"),
        ({"audio": {"file_id": "a", "file_name": 1}}, "message: audio"),
        ({"text": "hi", "entities": "x"}, "message: entities"),
        ({"caption": "hi", "caption_entities": [3]}, "message: caption_entities"),
        ({"text": "hi", "entities": [{"type": "text_mention", "user": 5}]}, "message: entities"),
        ({"text": "hi", "reply_to_message": {"from": "bot"}}, "message: reply_to_message"),
        ({"text": "hi", "reply_to_message": {"message_id": 2, "from": {"id": 1}}}, None),
    ],
)
def test_the_door_checks_attachments(extra: dict, reason: str | None) -> None:
    """What the pipeline reads of a file is checked before a task is queued."""
    update = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 1,
            "chat": {"id": 1, "type": "private"},
            "from": {"id": 1, "is_bot": False, "first_name": "A"},
            **extra,
        },
    }
    assert updates.problem(update) == reason
