"""Files the bot received: fetched from the Bot API, and signed URLs that serve photos.

Kept apart from the answering pipeline (``conversation.attachments`` uses it) so the web app's
``/media`` route imports this and not the whole pipeline.
"""

from __future__ import annotations

import base64
import logging

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from shared.config import Config
from shared.extensions import telegram
from shared.models import ErrorKind

logger = logging.getLogger(__name__)

#: Seconds a signed media URL (``IMAGE_URLS``) stays valid: the model fetches it at once.
MEDIA_SECONDS = 3600
MEDIA_SALT = "ai_router.media"


class AttachmentFailed(RuntimeError):
    """The file could not be fetched, read or transcribed; the row fails with ``kind``.

    Args:
        kind: ``transcription``, ``file`` or ``unsupported_file``.
        detail: For the admin (never shown to the user).
    """

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def fetch(file_id: str, max_bytes: int) -> bytes:
    """Download a file the bot received (``getFile``, then the file server).

    Args:
        file_id: Telegram's file id.
        max_bytes: The most accepted (a longer file is refused unread).

    Returns:
        The bytes.

    Raises:
        AttachmentFailed: ``file``, whatever failed (Telegram refused, the file is too
            large, the network).
    """
    try:
        file = telegram.get_file(file_id)
        path = file.get("file_path") if isinstance(file, dict) else None
        if not path:
            raise AttachmentFailed(ErrorKind.FILE, "getFile gave no file_path")
        return telegram.download(path, max_bytes)
    except AttachmentFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the fetch fails the row the same way
        raise AttachmentFailed(ErrorKind.FILE, f"{type(exc).__name__}: {exc}"[:500]) from exc


def data_url(data: bytes, mime_type: str = "image/jpeg") -> str:
    """The bytes as a ``data:`` URL (how an image part carries a photo inline)."""
    return f"data:{mime_type};base64,{base64.b64encode(data).decode()}"


def _media_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=MEDIA_SALT)


def media_url(file_id: str, config: Config) -> str:
    """A signed URL of this web app serving a photo for :data:`MEDIA_SECONDS` (``IMAGE_URLS``).

    The Bot API's own file URL holds the bot token; this one holds only the signed file id.

    Args:
        file_id: The photo size's Telegram file id.
        config: Its ``public_url`` is the base.

    Returns:
        ``{PUBLIC_URL}/media/<token>``.
    """
    return f"{config.public_url}/media/{_media_signer().dumps(file_id)}"


def media_file_id(token: str) -> str | None:
    """The file id a :func:`media_url` token names, or None when forged or expired."""
    try:
        file_id = _media_signer().loads(token, max_age=MEDIA_SECONDS)
    except BadSignature:  # SignatureExpired is one
        return None
    return file_id if isinstance(file_id, str) else None


def fetch_image(file_id: str, config: Config) -> bytes:
    """A photo's bytes (``getFile`` and the download, at most ``IMAGE_MAX_BYTES``).

    Raises:
        AttachmentFailed: When it cannot be fetched.
    """
    return fetch(file_id, config.image_max_bytes)
