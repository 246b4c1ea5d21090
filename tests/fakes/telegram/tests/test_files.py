"""Files: the store, getFile, downloads, and the photo, voice, audio and document injectors."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import telebot
from telebot import apihelper

from tests.fakes.telegram import MAX_DOWNLOAD_SIZE, FakeTelegram
from tests.fakes.telegram.tests.support import CHAT, HANG_GUARD, api_error

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4  # 1028 bytes


@pytest.fixture
def files_bot(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> telebot.TeleBot:
    """The telebot client with its downloads pointed at the fake too."""
    monkeypatch.setattr(apihelper, "FILE_URL", fake_telegram.file_url_template)
    return bot


def get_file(fake: FakeTelegram, file_id: Any) -> requests.Response:
    """Call getFile with a JSON body, the way the product's own client does."""
    return requests.post(
        fake.api_url_template.format(fake.token, "getFile"),
        json={"file_id": file_id},
        timeout=HANG_GUARD,
    )


def download(fake: FakeTelegram, file_path: str, token: str | None = None) -> requests.Response:
    """GET a file the way Telegram serves it: ``/file/bot<token>/<file_path>``."""
    return requests.get(
        fake.file_url_template.format(token or fake.token, file_path), timeout=HANG_GUARD
    )


# ------------------------------------------------------------------------------ getFile, download


def test_get_file_and_download_round_trip(
    files_bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """GetFile hands out a file_path; downloading it with the bot's token answers the bytes."""
    data = b"hello, file\n" * 100
    added = fake_telegram.add_file(data, file_name="notes.txt", mime_type="text/plain")

    info = files_bot.get_file(added["file_id"])
    downloaded = files_bot.download_file(info.file_path)
    raw = download(fake_telegram, info.file_path)

    assert set(added) == {"file_id", "file_unique_id", "file_size"}
    assert added["file_size"] == len(data)
    assert (info.file_id, info.file_unique_id) == (added["file_id"], added["file_unique_id"])
    assert info.file_size == len(data)
    assert info.file_path.startswith("documents/file_") and info.file_path.endswith(".txt")
    assert downloaded == data
    assert raw.status_code == 200
    assert raw.headers["Content-Type"] == "application/octet-stream"
    assert raw.headers["Content-Length"] == str(len(data))
    assert raw.content == data
    assert [(d["file_path"], d["file_id"], d["size"]) for d in fake_telegram.downloads()] == [
        (info.file_path, added["file_id"], len(data))
    ] * 2
    [call] = fake_telegram.calls("getFile")
    assert call.params == {"file_id": added["file_id"]}
    assert call.result == {**added, "file_path": info.file_path}


def test_file_ids_are_unique_and_paths_follow_the_kind(fake_telegram: FakeTelegram) -> None:
    """Every stored file gets new ids; its file_path's folder and extension follow its kind."""
    added = [
        fake_telegram.add_file(b"a", kind="photo", file_name="x.png"),
        fake_telegram.add_file(b"b", kind="voice"),
        fake_telegram.add_file(b"c", kind="audio", mime_type="audio/mpeg"),
        fake_telegram.add_file(b"d", file_name="report.PDF"),
        fake_telegram.add_file(b"e", mime_type="text/plain"),
        fake_telegram.add_file(b"f"),
    ]

    paths = [get_file(fake_telegram, a["file_id"]).json()["result"]["file_path"] for a in added]

    assert len({a["file_id"] for a in added}) == len({a["file_unique_id"] for a in added}) == 6
    folders = [(p.split("/")[0], "." + p.rsplit(".", 1)[-1] if "." in p else "") for p in paths]
    assert folders == [
        ("photos", ".jpg"),
        ("voice", ".oga"),
        ("music", ".mp3"),
        ("documents", ".pdf"),
        ("documents", ".txt"),
        ("documents", ""),
    ]
    with pytest.raises(ValueError, match="unknown file kind"):
        fake_telegram.add_file(b"x", kind="hologram")


def test_download_refusals(fake_telegram: FakeTelegram) -> None:
    """A wrong token is 401, an unknown path or one getFile has not handed out yet is 404."""
    added = fake_telegram.add_file(b"secret", file_name="a.txt")
    url_path = "documents/file_1.txt"
    before = download(fake_telegram, url_path)
    path = get_file(fake_telegram, added["file_id"]).json()["result"]["file_path"]

    wrong_token = download(fake_telegram, path, token="1:WRONG")
    unknown = download(fake_telegram, "documents/file_999.txt")
    no_path = requests.get(f"{fake_telegram.url}/file/bot{fake_telegram.token}/", timeout=5)

    assert path == url_path
    assert before.status_code == 404
    assert wrong_token.status_code == 401
    assert wrong_token.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert unknown.status_code == 404
    assert unknown.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert no_path.status_code == 404
    assert fake_telegram.downloads() == []


def test_get_file_refusals(files_bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """Unknown ids and files over 20 MB are refused; fail_next works for getFile too."""
    big = fake_telegram.add_file(b"tiny", file_name="big.bin", declared_size=MAX_DOWNLOAD_SIZE + 1)
    limit = fake_telegram.add_file(b"ok", file_name="ok.bin", declared_size=MAX_DOWNLOAD_SIZE)

    unknown = api_error(files_bot.get_file, "no-such-file")
    too_big = api_error(files_bot.get_file, big["file_id"])
    missing = get_file(fake_telegram, None)
    fake_telegram.fail_next("getFile", error_code=500)
    failed = api_error(files_bot.get_file, limit["file_id"])
    at_limit = files_bot.get_file(limit["file_id"])

    assert big["file_size"] == MAX_DOWNLOAD_SIZE + 1
    assert (unknown.error_code, unknown.description) == (400, "Bad Request: invalid file_id")
    assert (too_big.error_code, too_big.description) == (400, "Bad Request: file is too big")
    assert missing.status_code == 400
    assert (failed.error_code, failed.description) == (500, "Internal Server Error")
    assert at_limit.file_size == MAX_DOWNLOAD_SIZE
    assert [c.status for c in fake_telegram.calls("getFile")] == [400, 400, 400, 500, 200]


def test_fail_next_download(fake_telegram: FakeTelegram) -> None:
    """Injected download failures answer first (the bot's retry then gets the file)."""
    added = fake_telegram.add_file(b"retry me", file_name="a.txt")
    path = get_file(fake_telegram, added["file_id"]).json()["result"]["file_path"]
    fake_telegram.fail_next_download(error_code=502, times=2)

    answers = [download(fake_telegram, path) for _ in range(3)]

    assert [a.status_code for a in answers] == [502, 502, 200]
    assert answers[0].json() == {"ok": False, "error_code": 502, "description": "Bad Gateway"}
    assert answers[2].content == b"retry me"
    assert [d["file_path"] for d in fake_telegram.downloads()] == [path]


def test_reset_forgets_files(fake_telegram: FakeTelegram) -> None:
    """After a reset the stored files, their paths and the downloads are gone."""
    added = fake_telegram.add_file(b"x", file_name="a.txt")
    path = get_file(fake_telegram, added["file_id"]).json()["result"]["file_path"]
    assert download(fake_telegram, path).status_code == 200

    fake_telegram.reset()

    assert get_file(fake_telegram, added["file_id"]).status_code == 400
    assert download(fake_telegram, path).status_code == 404
    assert fake_telegram.downloads() == []


# ------------------------------------------------------------------------------ injectors


def test_inject_photo(files_bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """A photo is PhotoSizes smallest first, each a file; the caption gets mention entities."""
    update = fake_telegram.inject_photo(
        CHAT,
        JPEG,
        sizes=((1280, 960), (90, 67), (320, 240)),
        caption="look @someone_else",
        username="photographer",
    )

    message = update["message"]
    photo = message["photo"]
    assert [(p["width"], p["height"]) for p in photo] == [(90, 67), (320, 240), (1280, 960)]
    assert [p["file_size"] for p in photo] == [
        round(len(JPEG) * 90 * 67 / (1280 * 960)),
        round(len(JPEG) * 320 * 240 / (1280 * 960)),
        len(JPEG),
    ]
    assert all(
        set(p) == {"file_id", "file_unique_id", "width", "height", "file_size"} for p in photo
    )
    assert len({p["file_id"] for p in photo}) == 3
    assert message["caption"] == "look @someone_else"
    assert message["caption_entities"] == [{"offset": 5, "length": 13, "type": "mention"}]
    assert message["from"]["username"] == "photographer"
    assert "text" not in message and "entities" not in message
    info = files_bot.get_file(photo[-1]["file_id"])
    assert info.file_path.startswith("photos/") and info.file_path.endswith(".jpg")
    assert files_bot.download_file(info.file_path) == JPEG
    [parsed] = files_bot.get_updates()
    assert parsed.message.content_type == "photo"
    assert [p.width for p in parsed.message.photo] == [90, 320, 1280]
    assert parsed.message.caption_entities[0].type == "mention"


def test_inject_photo_without_caption_and_with_one_size(fake_telegram: FakeTelegram) -> None:
    """No caption means no caption fields; a single size carries the whole byte count."""
    message = fake_telegram.inject_photo(CHAT, b"12345", sizes=((10, 10),))["message"]

    assert "caption" not in message and "caption_entities" not in message
    assert [(p["width"], p["file_size"]) for p in message["photo"]] == [(10, 5)]
    with pytest.raises(ValueError):
        fake_telegram.inject_photo(CHAT, b"x", sizes=())


def test_inject_voice(files_bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """A voice message: Voice with duration and MIME type, stored as voice/file_N.oga."""
    data = b"OggS" + b"\x00" * 60

    message = fake_telegram.inject_voice(CHAT, data, duration=7)["message"]

    voice = message["voice"]
    assert set(voice) == {"file_id", "file_unique_id", "duration", "mime_type", "file_size"}
    assert (voice["duration"], voice["mime_type"], voice["file_size"]) == (7, "audio/ogg", 64)
    info = files_bot.get_file(voice["file_id"])
    assert info.file_path.startswith("voice/") and info.file_path.endswith(".oga")
    assert files_bot.download_file(info.file_path) == data
    [parsed] = files_bot.get_updates()
    assert (parsed.message.content_type, parsed.message.voice.duration) == ("voice", 7)


def test_inject_audio(files_bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """An audio file: Audio with name, MIME type and duration, stored under music/."""
    message = fake_telegram.inject_audio(
        CHAT, b"ID3" + b"\x01" * 97, duration=185, caption="lyrics?"
    )["message"]

    audio = message["audio"]
    assert set(audio) == {
        "file_id",
        "file_unique_id",
        "duration",
        "file_name",
        "mime_type",
        "file_size",
    }
    assert (audio["file_name"], audio["mime_type"]) == ("song.mp3", "audio/mpeg")
    assert (audio["duration"], audio["file_size"]) == (185, 100)
    assert message["caption"] == "lyrics?" and "caption_entities" not in message
    assert files_bot.get_file(audio["file_id"]).file_path.startswith("music/")
    [parsed] = files_bot.get_updates()
    assert (parsed.message.content_type, parsed.message.audio.file_name) == ("audio", "song.mp3")


def test_inject_document(files_bot: telebot.TeleBot, fake_telegram: FakeTelegram) -> None:
    """A document: Document with name, MIME type (guessed from the name) and size."""
    text = fake_telegram.inject_document(
        CHAT, b"a,b\n1,2\n", file_name="table.csv", caption="/summarize this"
    )["message"]
    unknown = fake_telegram.inject_document(CHAT, b"\x00\x01", file_name="blob")["message"]
    huge = fake_telegram.inject_document(
        CHAT, b"%PDF", file_name="book.pdf", mime_type="application/pdf", declared_size=25 << 20
    )["message"]

    document = text["document"]
    assert set(document) == {"file_id", "file_unique_id", "file_name", "mime_type", "file_size"}
    assert (document["file_name"], document["mime_type"], document["file_size"]) == (
        "table.csv",
        "text/csv",
        8,
    )
    assert text["caption_entities"] == [{"offset": 0, "length": 10, "type": "bot_command"}]
    assert unknown["document"]["mime_type"] == "application/octet-stream"
    assert huge["document"]["file_size"] == 25 << 20
    info = files_bot.get_file(document["file_id"])
    assert info.file_path.startswith("documents/") and info.file_path.endswith(".csv")
    assert files_bot.download_file(info.file_path) == b"a,b\n1,2\n"
    too_big = api_error(files_bot.get_file, huge["document"]["file_id"])
    assert too_big.description == "Bad Request: file is too big"
    parsed = files_bot.get_updates()
    assert [u.message.content_type for u in parsed] == ["document"] * 3


def test_media_in_a_forum_topic_replying_to_the_bot(
    bot: telebot.TeleBot, fake_telegram: FakeTelegram
) -> None:
    """Every injector takes chat_id, thread_id and reply_to_message_id like inject_message."""
    group = -1001234567890
    fake_telegram.add_group(group, "Forum", forum=True)
    sent = bot.send_message(group, "send me a voice message", message_thread_id=5)

    updates = [
        fake_telegram.inject_voice(
            CHAT, b"v", duration=1, chat_id=group, thread_id=5, reply_to_message_id=sent.message_id
        ),
        fake_telegram.inject_photo(
            CHAT, b"p", chat_id=group, thread_id=5, reply_to_message_id=sent.message_id
        ),
        fake_telegram.inject_audio(
            CHAT, b"a", duration=1, chat_id=group, thread_id=5, reply_to_message_id=sent.message_id
        ),
        fake_telegram.inject_document(
            CHAT,
            b"d",
            file_name="d.txt",
            chat_id=group,
            thread_id=5,
            reply_to_message_id=sent.message_id,
        ),
    ]

    for update in updates:
        message = update["message"]
        assert message["chat"] == {
            "id": group,
            "title": "Forum",
            "type": "supergroup",
            "is_forum": True,
        }
        assert (message["message_thread_id"], message["is_topic_message"]) == (5, True)
        assert message["reply_to_message"]["message_id"] == sent.message_id
        assert message["reply_to_message"]["from"]["id"] == fake_telegram.bot_user["id"]
