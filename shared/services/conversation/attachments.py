"""Beyond text: what a photo, a voice message, audio or a document becomes for the model.

Three steps, each where it belongs in the pipeline:

1. **At intake** (:func:`describe`, :func:`refusal`): what came with the message is described
   for the log row — kind, Telegram ``file_id``, size and the kind's own fields, never the
   bytes — and refused at once, before anything is downloaded or any quota is spent, when no
   model could take it: a photo for a model that cannot see (the reply names one that can),
   voice without a speech-to-text model or longer than ``VOICE_MAX_SECONDS``, a file that is
   not text or is over its size limit.
2. **Before the LLM call**, with no database session held (:func:`materialize`): the file is
   fetched (``getFile`` and the download, retried like every Bot API call) and turned into
   what the model reads — the photo as an image content part (a data URL; with ``IMAGE_URLS``
   a signed URL of this app's ``/media/…`` that the model fetches), the recording as
   its transcript (``/audio/transcriptions`` of the model's endpoint; recorded as the row's
   request text in a short unit of work, so a retry does not transcribe twice), the document
   as text (UTF-8, else the detected encoding; trimmed to :data:`DOCUMENT_SHARE` of the
   model's context budget, so it stays in the dialog for follow-ups, and recorded as
   ``attachment_text``). History images of a vision model are fetched again (the
   newest :data:`MAX_HISTORY_IMAGES`); other models see ``[image]`` in their place.
3. **In the reply**: a transcript is quoted before the answer (:func:`transcript_parts`), and
   a trimmed document is noted (:func:`preface`).
"""

from __future__ import annotations

import dataclasses
import html
import logging
import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from charset_normalizer import from_bytes
from flask import current_app
from sqlalchemy import update

from shared.config import MAX_DOWNLOAD_BYTES, Config
from shared.db import db
from shared.extensions import llm
from shared.llm import (
    CHARS_PER_TOKEN,
    IMAGE_MARK,
    IMAGE_TOKENS,
    ModelSpec,
    Turn,
    estimate_tokens,
    fit_messages,
)
from shared.models import ErrorKind, Request
from shared.runtime import Snapshot
from shared.services import files
from shared.services.files import AttachmentFailed
from shared.services.plans import PlanSpec, allowed_models
from shared.telegram.client import OutgoingPart
from shared.telegram.texts import t

if TYPE_CHECKING:
    from shared.services.conversation.answering import Prompt

logger = logging.getLogger(__name__)

PHOTO, VOICE, AUDIO, DOCUMENT = "photo", "voice", "audio", "document"
#: Kinds whose words reach the model as a transcript.
SPOKEN = frozenset({VOICE, AUDIO})
#: The newest images of a dialog a vision model sees again on later turns.
MAX_HISTORY_IMAGES = 3
#: Extensions of documents read as text (source code included).
TEXT_EXTENSIONS = frozenset(
    """
    txt text md markdown rst csv tsv json jsonl ndjson xml yaml yml toml ini cfg conf env log
    html htm css scss sql sh bash zsh ps1 bat py pyi ipynb js mjs cjs ts tsx jsx vue java kt kts
    scala groovy gradle c h cc cpp cxx hpp hh cs go rs rb php pl pm lua r m swift dart ex exs
    erl hs ml clj tex bib srt vtt diff patch properties dockerfile makefile
    """.split()
)
#: Content types of documents read as text besides ``text/*``.
TEXT_MIME_TYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/xml",
        "application/x-yaml",
        "application/yaml",
        "application/toml",
        "application/javascript",
        "application/x-javascript",
        "application/x-sh",
        "application/sql",
        "application/x-python",
        "application/x-tex",
    }
)
#: A document's text may use the context left after this many tokens of margin.
DOCUMENT_MARGIN_TOKENS = 64
#: The share of the prompt's budget a document may take: the rest keeps room for the answer
#: to stay in the dialog with it, so follow-up questions still see the file.
DOCUMENT_SHARE = 0.6
#: Characters of a transcript per quoted message (Telegram allows 4,096 with the markup).
TRANSCRIPT_PART = 3_500
#: A trimmed document keeps at least this many characters, however small the context.
MIN_DOCUMENT_CHARS = 1_000


# -- intake: describe and refuse ----------------------------------------------------------------
def _photo(sizes: list[dict[str, Any]], max_bytes: int) -> dict[str, Any]:
    """The largest size of a photo under ``max_bytes`` (else the smallest, refused later)."""
    ordered = sorted(sizes, key=lambda s: (s.get("file_size") or 0, s.get("width", 0)))
    fitting = [s for s in ordered if (s.get("file_size") or 0) <= max_bytes]
    chosen = fitting[-1] if fitting else ordered[0]
    return {
        "kind": PHOTO,
        "file_id": chosen["file_id"],
        "size": chosen.get("file_size"),
        "width": chosen.get("width"),
        "height": chosen.get("height"),
    }


def describe(message: dict[str, Any], config: Config) -> dict[str, Any] | None:
    """What came with a message, as its log row keeps it (no bytes).

    Args:
        message: Telegram's ``Message`` (checked at the door: file ids are strings).
        config: The app's configuration (the image size limit picks the photo size).

    Returns:
        ``{"kind", "file_id", "size", …}`` for a photo, voice message, audio or document;
        None for a text message.
    """
    if "animation" in message:  # a GIF also carries a ``document``: not a text file
        return None
    if isinstance(message.get("photo"), list) and message["photo"]:
        return _photo(message["photo"], config.image_max_bytes)
    for kind in (VOICE, AUDIO, DOCUMENT):
        file = message.get(kind)
        if not isinstance(file, dict):
            continue
        described: dict[str, Any] = {
            "kind": kind,
            "file_id": file["file_id"],
            "size": file.get("file_size"),
            "mime_type": file.get("mime_type"),
        }
        if kind in SPOKEN:
            described["duration"] = file.get("duration")
        if kind != VOICE:
            described["file_name"] = file.get("file_name")
        return described
    return None


def is_text_document(file_name: str | None, mime_type: str | None) -> bool:
    """Whether a document is read as text: by its extension, else by its content type."""
    name = (file_name or "").lower()
    suffix = PurePosixPath(name).suffix.lstrip(".")
    if suffix in TEXT_EXTENSIONS or (not suffix and name in TEXT_EXTENSIONS):
        return True
    mime = (mime_type or "").lower().split(";")[0].strip()
    return mime.startswith("text/") or mime in TEXT_MIME_TYPES


def transcriber(snapshot: Snapshot, model: ModelSpec | None) -> ModelSpec | None:
    """The model whose endpoint transcribes voice for a user of ``model``, or None (no voice).

    The user's model when it names a ``transcription_model``; else the model chosen in the
    ``voice_model`` setting, when it is enabled and still has one (the answer still comes
    from the user's model).
    """
    if model is not None and model.transcription_model:
        return model
    chosen = snapshot.setting("voice_model") or ""
    spec = snapshot.models.get(int(chosen)) if chosen.isdigit() else None
    return spec if spec is not None and spec.transcription_model else None


def refusal(
    attachment: dict[str, Any], model: ModelSpec | None, snapshot: Snapshot, config: Config
) -> ErrorKind | None:
    """Why an attachment cannot be answered at all, known before any download; else None.

    Args:
        attachment: From :func:`describe`.
        model: The model that would answer (None: no model; intake refuses that itself).
        snapshot: The runtime settings (the models that can transcribe).
        config: The size and length limits.

    Returns:
        ``no_vision``, ``no_voice``, ``too_long``, ``too_large`` or ``unsupported_file``.
    """
    kind, size = attachment["kind"], attachment.get("size") or 0
    if kind == PHOTO:
        if size > config.image_max_bytes:
            return ErrorKind.TOO_LARGE
        if model is not None and not model.vision:
            return ErrorKind.NO_VISION
        return None
    if kind in SPOKEN:
        if (attachment.get("duration") or 0) > config.voice_max_seconds:
            return ErrorKind.TOO_LONG
        if size > MAX_DOWNLOAD_BYTES:
            return ErrorKind.TOO_LARGE
        if model is not None and transcriber(snapshot, model) is None:
            return ErrorKind.NO_VOICE
        return None
    if not is_text_document(attachment.get("file_name"), attachment.get("mime_type")):
        return ErrorKind.UNSUPPORTED_FILE
    if size > config.document_max_bytes:
        return ErrorKind.TOO_LARGE
    return None


def refusal_detail(
    kind: ErrorKind, attachment: dict[str, Any], snapshot: Snapshot, plan: PlanSpec | None
) -> str:
    """The row's ``error`` for an attachment refusal; a photo's names a model that can see.

    The model is one the user's plan allows (:func:`refusal_text` reads it back), so the
    refusal never suggests a model ``/settings`` would not offer.
    """
    detail = f"{attachment['kind']}: {kind.value}"
    if kind == ErrorKind.NO_VISION:
        seeing = next((m.name for m in allowed_models(snapshot, plan) if m.vision), None)
        if seeing is not None:
            detail += f"; a model that sees: «{seeing}»"
    return detail


def prompt_tokens(attachment: dict[str, Any] | None, model: ModelSpec | None) -> int:
    """What an attachment is expected to add to the prompt (for the quota's reservation).

    A photo counts :data:`IMAGE_TOKENS`; a document its size in characters' tokens, up to the
    share of the model's budget it may take; a recording nothing yet (its transcript is
    counted when the answer settles the reservation).
    """
    if not attachment or model is None:
        return 0
    if attachment["kind"] == PHOTO:
        return IMAGE_TOKENS
    if attachment["kind"] == DOCUMENT:
        size = attachment.get("size") or 0
        return min(size // CHARS_PER_TOKEN, int(model.budget_tokens() * DOCUMENT_SHARE))
    return 0


def _size_text(size: int, lang: str) -> str:
    if size >= 1_000_000:
        return t("megabytes", lang, n=f"{size / 1_000_000:.3g}")
    return t("kilobytes", lang, n=max(1, size // 1000))


def _duration_text(seconds: int, lang: str) -> str:
    if seconds % 60 == 0:
        return t("minutes", lang, n=seconds // 60)
    return t("seconds", lang, n=seconds)


def refusal_text(
    kind: ErrorKind,
    attachment: dict[str, Any] | None,
    model_name: str | None,
    error: str | None,
    lang: str,
    config: Config,
) -> str:
    """The user's text for an attachment refusal (it names the limit, or a model that can).

    Args:
        kind: The refusal.
        attachment: The row's attachment.
        model_name: The model that would have answered (named by ``no_vision``).
        error: The row's ``error`` (:func:`refusal_detail`: the model to suggest).
        lang: Text language.
        config: The limits to name.

    Returns:
        The text.
    """
    if kind == ErrorKind.NO_VISION:
        seeing = re.search(r"a model that sees: «(.+)»", error or "")
        if seeing is None:
            return t("no_vision_none", lang)
        return t("no_vision", lang, model=model_name or "—", vision=seeing.group(1))
    if kind == ErrorKind.TOO_LONG:
        return t("too_long", lang, limit=_duration_text(config.voice_max_seconds, lang))
    if kind == ErrorKind.TOO_LARGE:
        photo = (attachment or {}).get("kind") == PHOTO
        document = (attachment or {}).get("kind") == DOCUMENT
        limit = (
            config.image_max_bytes
            if photo
            else config.document_max_bytes
            if document
            else MAX_DOWNLOAD_BYTES
        )
        return t("too_large", lang, limit=_size_text(limit, lang))
    return t(kind.value, lang)


# -- the reply ----------------------------------------------------------------------------------
def preface(attachment: dict[str, Any] | None, lang: str) -> str | None:
    """What the answer starts with (Markdown): a trimmed file's note, or None.

    Args:
        attachment: The row's attachment.
        lang: Text language.

    Returns:
        The note, or None.
    """
    if attachment and attachment["kind"] == DOCUMENT and attachment.get("trimmed"):
        note = t("document_trimmed", lang, read=attachment["chars"], total=attachment["total"])
        return f"_{note}_"
    return None


def transcript_of(attachment: dict[str, Any] | None, request_text: str) -> str | None:
    """The transcript a reply quotes before its answer: a recording's, once made; else None."""
    if attachment and attachment["kind"] in SPOKEN and request_text.strip():
        return request_text.strip()
    return None


def transcript_parts(transcript: str, reply_to: int | None) -> list[OutgoingPart]:
    """The transcript as quoted messages before the answer (exactly as said, never Markdown).

    An expandable ``<blockquote>`` with 🎤, split on whitespace into message-sized parts (a
    five-minute recording is several thousand characters); the first replies to the voice
    message.

    Args:
        transcript: What was said.
        reply_to: The user's voice message.

    Returns:
        One part per piece, each with plain text and HTML.
    """
    pieces: list[str] = []
    rest = transcript
    while len(rest) > TRANSCRIPT_PART:
        cut = rest.rfind(" ", 0, TRANSCRIPT_PART)
        cut = cut if cut > TRANSCRIPT_PART // 2 else TRANSCRIPT_PART
        pieces.append(rest[:cut])
        rest = rest[cut:].lstrip()
    pieces.append(rest)
    return [
        OutgoingPart(
            text=f"🎤 {piece}",
            html=f"<blockquote expandable>🎤 {html.escape(piece, quote=False)}</blockquote>",
            reply_to_message_id=reply_to if index == 0 else None,
        )
        for index, piece in enumerate(pieces)
    ]


# -- what the model reads -----------------------------------------------------------------------
def _document_block(attachment: dict[str, Any], text: str) -> str:
    name = attachment.get("file_name") or "document"
    return f"File «{name}»:\n```\n{text}\n```"


def user_content(
    question: str,
    attachment: dict[str, Any] | None,
    attachment_text: str | None,
    *,
    vision: bool,
) -> str | list[dict[str, Any]]:
    """A user turn as the model reads it (images as ``tg-file:`` references to fetch).

    Args:
        question: The text, caption or transcript (a recording's caption, if any, is kept in
            its attachment and put before the transcript).
        attachment: The row's attachment.
        attachment_text: A document's text.
        vision: Whether the model sees images (else a photo becomes ``[image]``).

    Returns:
        A string, or content parts (text and an image) for a photo to a vision model.
    """
    if not attachment:
        return question
    if attachment["kind"] == DOCUMENT and attachment_text is not None:
        block = _document_block(attachment, attachment_text)
        return f"{block}\n\n{question}" if question else block
    if attachment["kind"] in SPOKEN and attachment.get("caption"):
        return f"{attachment['caption']}\n\n{question}"
    if attachment["kind"] == PHOTO:
        if not vision:
            return f"{IMAGE_MARK} {question}".strip()
        parts: list[dict[str, Any]] = [{"type": "text", "text": question}] if question else []
        image = {"url": f"tg-file:{attachment['file_id']}"}
        return [*parts, {"type": "image_url", "image_url": image}]
    return question


def history_turns(turns: list[Turn], *, vision: bool) -> list[Turn]:
    """Earlier turns with their attachments as the model reads them.

    Only the newest :data:`MAX_HISTORY_IMAGES` images stay images (for a vision model); older
    ones, and every image for a model that cannot see, become ``[image]``.

    Args:
        turns: From ``dialogs.history`` (requests still plain, attachments beside them).
        vision: Whether the model sees images.

    Returns:
        The turns with ``request`` as the model's content.
    """
    images_left = MAX_HISTORY_IMAGES if vision else 0
    shaped: list[Turn] = []
    for turn in reversed(turns):
        photo = bool(turn.attachment) and turn.attachment["kind"] == PHOTO
        sees = photo and images_left > 0
        images_left -= 1 if sees else 0
        content = user_content(turn.request, turn.attachment, turn.attachment_text, vision=sees)
        shaped.append(dataclasses.replace(turn, request=content))
    shaped.reverse()
    return shaped


def decode_text(data: bytes) -> str:
    """A document's bytes as text: UTF-8 (a BOM allowed), else the detected encoding.

    Raises:
        AttachmentFailed: ``unsupported_file`` for binary content (NUL bytes, no encoding).
    """
    if b"\x00" in data[:8192]:
        raise AttachmentFailed(ErrorKind.UNSUPPORTED_FILE, "binary content")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    best = from_bytes(data).best()
    if best is None:
        raise AttachmentFailed(ErrorKind.UNSUPPORTED_FILE, "no text encoding fits")
    return str(best)


def _record(request_id: int, **values: Any) -> None:
    """Write what the file became to the row, in its own short unit of work."""
    try:
        db.session.execute(update(Request).where(Request.id == request_id).values(**values))
        db.session.commit()
    finally:
        db.session.close()


def materialize(prompt: Prompt, snapshot: Snapshot) -> Prompt:
    """Fetch what the prompt's files hold and give the model its final messages.

    Network only: no session is open except the short unit of work that records a
    transcript or a document's text. A row retried after that record skips the work.

    Args:
        prompt: A prompt whose last message may still wait for its attachment, or whose
            history holds ``tg-file:`` images.
        snapshot: The runtime settings (the transcribing model).

    Returns:
        The prompt with final messages (and, for voice, ``question`` the transcript;
        for a document, ``attachment`` updated with what was read).

    Raises:
        AttachmentFailed: When the file cannot be fetched, read or transcribed.
    """
    config: Config = current_app.config["AI_ROUTER"]
    attachment = prompt.attachment
    question, attachment_text = prompt.question, prompt.attachment_text
    if attachment and attachment["kind"] in SPOKEN and not attachment.get("transcribed"):
        question = _speech_to_text(prompt, snapshot)
        attachment = {**attachment, "transcribed": True}
        _record(prompt.request_id, request_text=question, attachment=attachment)
    elif attachment and attachment["kind"] == DOCUMENT and attachment_text is None:
        attachment, attachment_text = _read_document(prompt, attachment, config)
        _record(prompt.request_id, attachment=attachment, attachment_text=attachment_text)
    last = user_content(question, attachment, attachment_text, vision=prompt.spec.vision)
    messages = [*prompt.messages[:-1], {"role": "user", "content": last}]
    messages = fit_messages(messages, prompt.spec)
    messages = _with_images(messages, config)
    return dataclasses.replace(
        prompt,
        messages=messages,
        question=question,
        attachment=attachment,
        attachment_text=attachment_text,
    )


def _speech_to_text(prompt: Prompt, snapshot: Snapshot) -> str:
    """Download the recording and transcribe it with the endpoint that can."""
    attachment = prompt.attachment or {}
    spec = transcriber(snapshot, prompt.spec)
    if spec is None:
        raise AttachmentFailed(ErrorKind.TRANSCRIPTION, "no model has a transcription model")
    audio = files.fetch(attachment["file_id"], MAX_DOWNLOAD_BYTES)
    name = attachment.get("file_name") or (
        "voice.ogg" if attachment["kind"] == VOICE else "audio.mp3"
    )
    mime = attachment.get("mime_type") or "application/octet-stream"
    try:
        text = llm.transcribe(spec, audio, name, mime)
    except Exception as exc:  # noqa: BLE001 - LLMError, or the endpoint's own surprise
        raise AttachmentFailed(ErrorKind.TRANSCRIPTION, str(exc)[:500]) from exc
    if not text:
        raise AttachmentFailed(ErrorKind.TRANSCRIPTION, "the transcript is empty")
    logger.info("transcribed request_id=%s chars=%s", prompt.request_id, len(text))
    return text


def _read_document(
    prompt: Prompt, attachment: dict[str, Any], config: Config
) -> tuple[dict[str, Any], str]:
    """Download and decode a document, trimmed to what the model's context leaves for it."""
    data = files.fetch(attachment["file_id"], config.document_max_bytes)
    text = decode_text(data).replace("\x00", "")
    spec = prompt.spec
    system = prompt.messages[0]["content"] if prompt.messages[0]["role"] == "system" else ""
    budget = spec.budget_tokens() - estimate_tokens(str(system))
    budget -= estimate_tokens(prompt.question) + DOCUMENT_MARGIN_TOKENS
    limit = max(MIN_DOCUMENT_CHARS, int(budget * DOCUMENT_SHARE) * CHARS_PER_TOKEN)
    total = len(text)
    read = text[:limit]
    described = {**attachment, "chars": len(read), "total": total, "trimmed": total > limit}
    return described, read


def _with_images(messages: list[dict[str, Any]], config: Config) -> list[dict[str, Any]]:
    """Replace ``tg-file:`` image references with data URLs (each file fetched once).

    An earlier turn's image that cannot be fetched any more becomes ``[image]``; the new
    question's own image must arrive (its failure fails the row).
    """
    fetched: dict[str, str | None] = {}
    result = []
    for index, message in enumerate(messages):
        content = message["content"]
        if not isinstance(content, list):
            result.append(message)
            continue
        parts = []
        for part in content:
            url = (part.get("image_url") or {}).get("url", "")
            if part.get("type") == "image_url" and url.startswith("tg-file:"):
                file_id = url.removeprefix("tg-file:")
                if file_id not in fetched and config.image_urls and config.public_url:
                    fetched[file_id] = files.media_url(file_id, config)  # the model fetches it
                if file_id not in fetched:
                    try:
                        fetched[file_id] = files.data_url(files.fetch_image(file_id, config))
                    except AttachmentFailed as exc:
                        if index == len(messages) - 1:
                            raise
                        logger.info("an earlier image is gone file_id=%s: %s", file_id, exc)
                        fetched[file_id] = None
                data_url = fetched[file_id]
                if data_url is None:
                    part = {"type": "text", "text": IMAGE_MARK}
                else:
                    part = {"type": "image_url", "image_url": {"url": data_url}}
            parts.append(part)
        result.append({**message, "content": parts})
    return result
