"""Photos, voice, audio and documents, end to end: fake Bot API → worker → llmock (+ speech).

The model receives what the issue promises (content parts asserted as llmock recorded them),
the files are fetched through ``getFile`` and the file server of the fake, and everything that
can be refused before a download is refused without one.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from shared.db import db
from shared.models import ErrorKind, LLMModel, RequestStatus
from shared.services.catalog import set_api_key
from shared.services.settings import set_setting
from tests.e2e.conftest import Conversation
from tests.fakes.openai_front import OpenAIFront
from tests.support import wait_until

ALICE = 5101
#: A JPEG's first bytes and some payload: the fake does not decode images.
PICTURE = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


def _text(call: Any) -> str:
    return call.params.get("text", "")


def _last_user_content(conversation: Conversation, index: int = -1) -> Any:
    """The content of the last user message of a Chat Completions request llmock served."""
    request = conversation.llm.chat_requests()[index]
    body = request.get("body") or json.loads(request.get("raw_body") or "{}")
    return body["messages"][-1]["content"]


def _messages(conversation: Conversation, index: int = -1) -> list[dict[str, Any]]:
    request = conversation.llm.chat_requests()[index]
    body = request.get("body") or json.loads(request.get("raw_body") or "{}")
    return body["messages"]


def _set_model(conversation: Conversation, **values: Any) -> None:
    with conversation.app.app_context():
        db.session.execute(
            update(LLMModel).where(LLMModel.id == conversation.model_id).values(**values)
        )
        db.session.commit()  # the runtime snapshot reloads (shared.runtime)


def _add_model(conversation: Conversation, name: str, **values: Any) -> int:
    with conversation.app.app_context():
        model = LLMModel(
            name=name,
            model=name.lower(),
            base_url=conversation.llm.base_url,
            enabled=True,
            **values,
        )
        set_api_key(model, "sk-other")
        db.session.add(model)
        db.session.commit()  # the runtime snapshot reloads (shared.runtime)
        return model.id


@pytest.fixture()
def front(conversation: Conversation) -> Iterator[OpenAIFront]:
    """Speech-to-text in front of llmock: the model's endpoint for voice tests."""
    with OpenAIFront(conversation.llm.base_url) as server:
        yield server


def _limits(conversation: Conversation, monkeypatch: pytest.MonkeyPatch, **values: Any) -> None:
    """Change the app's limits for this test (the worker runs in this process, on this app)."""
    config = conversation.app.config["AI_ROUTER"]
    monkeypatch.setitem(conversation.app.config, "AI_ROUTER", dataclasses.replace(config, **values))


# -- photos ---------------------------------------------------------------------------------------
def test_a_photo_reaches_a_vision_model_as_an_image_part(conversation: Conversation) -> None:
    """The caption is the question; the largest size arrives as a data URL.

    The log row keeps the size (not the bytes); a later turn shows the image again.
    """
    _set_model(conversation, vision=True)
    update_ = conversation.telegram.inject_photo(ALICE, PICTURE, caption="What is on it?")
    conversation.deliver(update_)
    (reply,) = conversation.sent(ALICE)
    largest = update_["message"]["photo"][-1]
    (get_file,) = conversation.telegram.calls("getFile")
    assert get_file.params["file_id"] == largest["file_id"]
    expected_url = "data:image/jpeg;base64," + base64.b64encode(PICTURE).decode()
    assert _last_user_content(conversation) == [
        {"type": "text", "text": "What is on it?"},
        {"type": "image_url", "image_url": {"url": expected_url}},
    ]
    (row,) = conversation.rows(ALICE)
    assert row.status == RequestStatus.OK and row.request_text == "What is on it?"
    assert row.attachment["kind"] == "photo"
    assert row.attachment["size"] == len(PICTURE) and row.attachment["width"] == largest["width"]
    assert "base64" not in json.dumps(row.attachment)
    assert _text(reply)

    conversation.say(ALICE, "And the colours?")
    conversation.sent(ALICE, 2)
    history = _messages(conversation)
    assert history[-3]["content"][1]["image_url"]["url"] == expected_url
    assert history[-1]["content"] == "And the colours?"


def test_the_largest_photo_size_under_the_limit_is_sent(
    conversation: Conversation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 6 KB image limit, the 1280 px size (10 KB) is skipped for the 320 px one."""
    _set_model(conversation, vision=True)
    _limits(conversation, monkeypatch, image_max_bytes=6_000)
    update_ = conversation.telegram.inject_photo(ALICE, PICTURE)
    conversation.deliver(update_)
    conversation.sent(ALICE)
    sizes = update_["message"]["photo"]
    chosen = max((s for s in sizes if s["file_size"] <= 6_000), key=lambda s: s["file_size"])
    assert chosen["file_id"] != sizes[-1]["file_id"]
    (get_file,) = conversation.telegram.calls("getFile")
    assert get_file.params["file_id"] == chosen["file_id"]
    (row,) = conversation.rows(ALICE)
    assert row.attachment["width"] == chosen["width"]
    assert _last_user_content(conversation)[0]["type"] == "image_url"  # no caption: image only


def test_a_model_that_cannot_see_names_one_that_can(conversation: Conversation) -> None:
    """No download, no LLM call; the refusal names the vision model to choose in /settings."""
    _add_model(conversation, "Seeing Eye", vision=True)
    conversation.deliver(conversation.telegram.inject_photo(ALICE, PICTURE, caption="Hi"))
    (reply,) = conversation.sent(ALICE)
    assert "«Seeing Eye»" in _text(reply) and "«Mock GPT»" in _text(reply)
    (row,) = conversation.rows(ALICE)
    assert row.status == RequestStatus.DENIED and row.error_kind == ErrorKind.NO_VISION
    assert conversation.telegram.calls("getFile") == []
    assert conversation.llm.chat_requests() == []


def test_images_stay_out_of_a_blind_models_history(conversation: Conversation) -> None:
    """A photo answered by a vision model becomes "[image]" for a model that cannot see."""
    _set_model(conversation, vision=True)
    conversation.deliver(conversation.telegram.inject_photo(ALICE, PICTURE, caption="A cat?"))
    conversation.sent(ALICE)
    _set_model(conversation, vision=False)
    conversation.say(ALICE, "Tell me more")
    conversation.sent(ALICE, 2)
    history = _messages(conversation)
    assert history[-3]["content"] == "[image] A cat?"
    assert len(conversation.telegram.calls("getFile")) == 1  # not fetched again


# -- voice and audio ------------------------------------------------------------------------------
def _voice_model(conversation: Conversation, front: OpenAIFront) -> None:
    _set_model(conversation, base_url=front.base_url, transcription_model="whisper-test")


def test_voice_is_transcribed_shown_logged_and_answered(
    conversation: Conversation, front: OpenAIFront
) -> None:
    """The transcript is the question, quoted before the answer, and the row's request.

    The quote is a message of its own, replying to the voice message; the answer follows.
    """
    _voice_model(conversation, front)
    voice = "SPEECH:Сколько будет два плюс два?".encode()
    update_ = conversation.telegram.inject_voice(ALICE, voice, duration=3)
    conversation.deliver(update_)
    quote, answer = conversation.sent(ALICE, 2)
    (call,) = front.transcriptions()
    assert call["model"] == "whisper-test" and call["data"] == voice
    assert call["authorization"] == "Bearer sk-test-key-1234"
    assert _last_user_content(conversation) == "Сколько будет два плюс два?"
    assert _text(quote) == "<blockquote expandable>🎤 Сколько будет два плюс два?</blockquote>"
    assert quote.params["reply_parameters"]["message_id"] == update_["message"]["message_id"]
    assert "reply_parameters" not in answer.params and "reply_markup" in answer.params
    (row,) = conversation.rows(ALICE)
    assert row.request_text == "Сколько будет два плюс два?" and row.status == RequestStatus.OK
    assert row.attachment == {
        "kind": "voice",
        "file_id": row.attachment["file_id"],
        "size": len(voice),
        "mime_type": "audio/ogg",
        "duration": 3,
        "transcribed": True,
    }


def test_audio_uses_another_models_transcriber(
    conversation: Conversation, front: OpenAIFront
) -> None:
    """The user's model has no speech-to-text: the ``voice_model`` setting's endpoint does.

    The caption goes to the model before the transcript; the transcript is the request.
    """
    ears = _add_model(conversation, "Ears", transcription_model="whisper-ears")
    with conversation.app.app_context():
        db.session.execute(
            update(LLMModel).where(LLMModel.name == "Ears").values(base_url=front.base_url)
        )
        set_setting("voice_model", str(ears))
        db.session.commit()
    _set_model(conversation, transcription_model=None)
    audio = b"SPEECH:play it again"
    conversation.deliver(
        conversation.telegram.inject_audio(
            ALICE, audio, duration=20, file_name="memo.mp3", caption="Translate to French"
        )
    )
    quote, _answer = conversation.sent(ALICE, 2)
    (call,) = front.transcriptions()
    assert call["model"] == "whisper-ears" and call["filename"] == "memo.mp3"
    assert _last_user_content(conversation) == "Translate to French\n\nplay it again"
    assert _text(quote) == "<blockquote expandable>🎤 play it again</blockquote>"
    (row,) = conversation.rows(ALICE)
    assert row.request_text == "play it again"
    assert row.attachment["caption"] == "Translate to French"


def test_long_audio_is_refused_before_download(
    conversation: Conversation, front: OpenAIFront
) -> None:
    """Over ``VOICE_MAX_SECONDS`` (300 s): the limit is named, nothing is fetched."""
    _voice_model(conversation, front)
    conversation.deliver(
        conversation.telegram.inject_voice(ALICE, b"SPEECH:long", duration=301, language_code="en")
    )
    (reply,) = conversation.sent(ALICE)
    assert "up to 5 min" in _text(reply)
    (row,) = conversation.rows(ALICE)
    assert row.status == RequestStatus.DENIED and row.error_kind == ErrorKind.TOO_LONG
    assert conversation.telegram.calls("getFile") == [] and front.transcriptions() == []


def test_voice_without_a_transcription_model_is_refused(conversation: Conversation) -> None:
    """Neither the user's model nor the setting transcribes: a short explanation, no download.

    Another model that could transcribe is not used unless the ``voice_model`` setting names it
    (a model's ``transcription_model`` null means that model takes no voice).
    """
    _add_model(conversation, "Ears", transcription_model="whisper-ears")
    conversation.deliver(
        conversation.telegram.inject_voice(ALICE, b"SPEECH:hi", duration=2, language_code="en")
    )
    (reply,) = conversation.sent(ALICE)
    assert "cannot be transcribed" in _text(reply)
    (row,) = conversation.rows(ALICE)
    assert row.error_kind == ErrorKind.NO_VOICE
    assert conversation.telegram.calls("getFile") == []


def test_a_failing_transcription_gets_an_apology(
    conversation: Conversation, front: OpenAIFront
) -> None:
    """Speech-to-text keeps failing: retried, then the row is ``error``/``transcription``."""
    _voice_model(conversation, front)
    front.fail_next(500, times=100)
    conversation.deliver(
        conversation.telegram.inject_voice(ALICE, b"SPEECH:hi", duration=2, language_code="en")
    )
    (reply,) = conversation.sent(ALICE)
    assert "could not make out the speech" in _text(reply)
    (row,) = conversation.rows(ALICE)
    assert row.status == RequestStatus.ERROR and row.error_kind == ErrorKind.TRANSCRIPTION
    assert len(front.transcriptions()) >= 2  # retried
    assert conversation.llm.chat_requests() == []


# -- documents ------------------------------------------------------------------------------------
def test_a_text_document_is_read_and_answered_with_its_caption(
    conversation: Conversation,
) -> None:
    """The file's text and the caption reach the model; the row keeps the text read."""
    data = "name,total\nalpha,3\nbeta,4\n".encode()
    conversation.deliver(
        conversation.telegram.inject_document(
            ALICE, data, file_name="totals.csv", mime_type="text/csv", caption="Sum the totals"
        )
    )
    conversation.sent(ALICE)
    content = _last_user_content(conversation)
    assert (
        content == "File «totals.csv»:\n```\nname,total\nalpha,3\nbeta,4\n\n```\n\nSum the totals"
    )
    (row,) = conversation.rows(ALICE)
    assert row.request_text == "Sum the totals"
    assert row.attachment_text == data.decode()
    assert row.attachment["trimmed"] is False and row.attachment["total"] == len(data.decode())

    conversation.say(ALICE, "And the average?")
    conversation.sent(ALICE, 2)
    assert "alpha,3" in _messages(conversation)[-3]["content"]  # the file stays in the dialog
    assert len(conversation.telegram.calls("getFile")) == 1


def test_a_document_in_another_encoding_is_decoded(conversation: Conversation) -> None:
    """Not UTF-8 (Windows-1251 Russian): the detected encoding reads it."""
    text = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 20
    conversation.deliver(
        conversation.telegram.inject_document(
            ALICE, text.encode("cp1251"), file_name="note.txt", caption="О чём это?"
        )
    )
    conversation.sent(ALICE)
    assert text.strip() in _last_user_content(conversation)


def test_a_long_document_is_trimmed_to_the_context_and_the_user_told(
    conversation: Conversation,
) -> None:
    """A 4,000-token context: the file is cut to what fits, and the reply says so."""
    _set_model(conversation, context_window=4_000, max_tokens=1_000)
    data = ("0123456789" * 10 + "\n") * 200  # 20,200 characters
    conversation.deliver(
        conversation.telegram.inject_document(
            ALICE, data.encode(), file_name="big.log", caption="Any errors?", language_code="en"
        )
    )
    (reply,) = conversation.sent(ALICE)
    (row,) = conversation.rows(ALICE)
    assert row.attachment["trimmed"] is True and row.attachment["total"] == len(data)
    read = row.attachment["chars"]
    assert 1_000 <= read < 9_000 and len(row.attachment_text) == read
    assert f"I read the first {read} of its {len(data)} characters" in _text(reply)
    assert len(_last_user_content(conversation)) < 9_200

    conversation.say(ALICE, "And warnings?", language_code="en")
    conversation.sent(ALICE, 2)
    follow_up = _messages(conversation)
    assert follow_up[-1]["content"] == "And warnings?"
    assert "File «big.log»" in follow_up[-3]["content"]  # the trimmed file stays in the dialog


def test_documents_that_cannot_be_read_are_refused_before_download(
    conversation: Conversation,
) -> None:
    """A PDF (not text) and a text file over 1 MB: refused, nothing fetched, no LLM call."""
    conversation.deliver(
        conversation.telegram.inject_document(
            ALICE, b"%PDF-1.7", file_name="paper.pdf", mime_type="application/pdf",
            language_code="en",
        )
    )  # fmt: skip
    (reply,) = conversation.sent(ALICE)
    assert "I read text files only" in _text(reply)
    conversation.deliver(
        conversation.telegram.inject_document(
            ALICE, b"x", file_name="huge.txt", declared_size=2_000_000, language_code="en"
        )
    )
    _first, second = conversation.sent(ALICE, 2)
    assert "up to 1 MB" in _text(second)
    kinds = [row.error_kind for row in conversation.rows(ALICE)]
    assert kinds == [ErrorKind.UNSUPPORTED_FILE, ErrorKind.TOO_LARGE]
    assert conversation.telegram.calls("getFile") == []
    assert conversation.llm.chat_requests() == []


def test_a_binary_file_with_a_text_name_fails_politely(conversation: Conversation) -> None:
    """Named .txt but binary: downloaded, found unreadable, the user is told."""
    conversation.deliver(
        conversation.telegram.inject_document(
            ALICE, b"\x00\x01\x02binary", file_name="x.txt", language_code="en"
        )
    )
    (reply,) = conversation.sent(ALICE)
    assert "I read text files only" in _text(reply)
    (row,) = conversation.rows(ALICE)
    assert row.status == RequestStatus.ERROR and row.error_kind == ErrorKind.UNSUPPORTED_FILE
    wait_until(lambda: conversation.rows(ALICE)[0].delivered_at is not None, what="settled")
    assert conversation.llm.chat_requests() == []


def test_with_image_urls_the_model_fetches_a_signed_url(
    conversation: Conversation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``IMAGE_URLS``: the model gets ``{PUBLIC_URL}/media/<token>``.

    The worker downloads nothing; the URL serves the photo, a forged token nothing.
    """
    _set_model(conversation, vision=True)
    public = "https://bot.example.org"
    _limits(conversation, monkeypatch, image_urls=True, public_url=public)
    conversation.deliver(conversation.telegram.inject_photo(ALICE, PICTURE, caption="Look"))
    conversation.sent(ALICE)
    url = _last_user_content(conversation)[1]["image_url"]["url"]
    assert url.startswith(f"{public}/media/")
    assert conversation.telegram.calls("getFile") == []
    client = conversation.app.test_client()
    served = client.get(url.removeprefix(public))
    assert served.status_code == 200 and served.data == PICTURE
    assert served.mimetype == "image/jpeg"
    assert client.get("/media/" + url.rsplit("/", 1)[1][:-2] + "xx").status_code == 404


def test_a_fallback_that_cannot_see_reads_image_marks(conversation: Conversation) -> None:
    """The vision model gives up; its fallback without vision gets "[image]", not image parts."""
    _set_model(conversation, vision=True)
    blind = _add_model(conversation, "Blind")
    _set_model(conversation, fallback_model_id=blind)
    attempts = conversation.app.config["AI_ROUTER"].llm_max_attempts
    conversation.llm.script(
        {"type": "fail", "status": 503, "times": attempts, "match": {"model": "gpt-mock"}},
        {"type": "reply", "text": "from the blind one"},
    )
    conversation.deliver(conversation.telegram.inject_photo(ALICE, PICTURE, caption="What?"))
    (reply,) = conversation.sent(ALICE)
    assert "from the blind one" in _text(reply)
    requests = conversation.llm.chat_requests()
    assert isinstance(requests[0]["body"]["messages"][-1]["content"], list)  # the vision model
    assert requests[-1]["body"]["model"] == "blind"
    assert requests[-1]["body"]["messages"][-1]["content"] == "What? [image]"


def test_a_redelivered_voice_message_is_transcribed_and_answered_once(
    conversation: Conversation, front: OpenAIFront
) -> None:
    """Telegram delivers the same voice update twice: one transcription, one LLM call."""
    _voice_model(conversation, front)
    update_ = conversation.telegram.inject_voice(ALICE, b"SPEECH:once", duration=1)
    conversation.deliver(update_)
    conversation.sent(ALICE, 2)
    conversation.deliver(update_)
    wait_until(lambda: conversation.rows(ALICE)[0].delivered_at is not None, what="settled")
    conversation.say(ALICE, "next")  # a later message is answered after the redelivery
    conversation.sent(ALICE, 3)
    assert len(front.transcriptions()) == 1
    assert len(conversation.llm.chat_requests()) == 2
    assert len(conversation.rows(ALICE)) == 2


def test_a_gif_is_not_a_text_file(conversation: Conversation) -> None:
    """An animation carries a ``document`` too: it gets the "cannot read this kind" reply."""
    gif = conversation.telegram.add_file(b"GIF89a", file_name="fun.gif", mime_type="image/gif")
    file = {"file_id": gif["file_id"], "file_unique_id": gif["file_unique_id"]}
    conversation.deliver(
        conversation.telegram.inject_update(
            {
                "message": {
                    "from": {"id": ALICE, "is_bot": False, "first_name": "A",
                             "language_code": "en"},
                    "chat": {"id": ALICE, "type": "private"},
                    "animation": {**file, "width": 1, "height": 1, "duration": 1},
                    "document": {**file, "file_name": "fun.gif", "mime_type": "image/gif"},
                }
            }
        )
    )  # fmt: skip
    (reply,) = conversation.sent(ALICE)
    assert "cannot read this kind of message" in _text(reply)
    assert conversation.rows(ALICE) == []
