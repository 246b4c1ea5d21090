"""The file store: files users sent (photos, voice, audio, documents), ``getFile`` paths, downloads.

A stored file has a ``file_id`` (what messages carry), a ``file_unique_id``, the bytes served on
download and a ``file_size`` (the byte count, or a size a test declares so that a big file can be
simulated without its bytes). Its ``file_path`` (``photos/file_3.jpg``, ``voice/file_4.oga``,
``documents/file_5.txt``...) is fixed when it is stored but only becomes downloadable once
``getFile`` handed it out, as on Telegram: ``GET /file/bot<token>/<file_path>`` then answers
the bytes (:meth:`_FileStore._handle_download`).
"""

from __future__ import annotations

import logging
import mimetypes
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.fakes.telegram.answers import _DEFAULT_DESCRIPTIONS, _ApiError
from tests.fakes.telegram.state import _FakeState

logger = logging.getLogger(__name__)

#: The largest file a bot may download (``getFile`` refuses bigger ones: "file is too big").
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024

#: The kinds of stored files and the folder of their ``file_path``.
FILE_FOLDERS = {
    "photo": "photos",
    "voice": "voice",
    "audio": "music",
    "document": "documents",
    "video": "videos",
    "video_note": "video_notes",
    "animation": "animations",
    "sticker": "stickers",
}

# Extensions Telegram gives whatever the upload was (photos are re-encoded to JPEG).
_FIXED_EXTENSIONS = {"photo": ".jpg", "voice": ".oga", "video_note": ".mp4"}
# mimetypes' guesses that differ from the usual extension.
_MIME_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "text/plain": ".txt",
}
_DOWNLOAD_PREFIX = "/file/bot"


@dataclass
class _StoredFile:
    """One file of the store (the bytes and the size announced in messages and getFile)."""

    file_id: str
    file_unique_id: str
    data: bytes
    file_size: int
    file_path: str

    def file_object(self) -> dict[str, Any]:
        """The ``File`` object ``getFile`` answers."""
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.file_size,
            "file_path": self.file_path,
        }


class _FileStore(_FakeState):
    """Storing files for the injectors and serving their downloads."""

    def _store_file(
        self,
        data: bytes,
        kind: str,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        declared_size: int | None = None,
    ) -> _StoredFile:
        """Store a file (lock held); returns it with fresh, unique ids."""
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"file data must be bytes, not {type(data).__name__}")
        if kind not in FILE_FOLDERS:
            raise ValueError(f"unknown file kind {kind!r}; known: {sorted(FILE_FOLDERS)}")
        if declared_size is not None and declared_size < 0:
            raise ValueError("declared_size must not be negative")
        number = next(self._file_numbers)
        stored = _StoredFile(
            file_id=f"{kind}-{number}-{uuid.uuid4().hex[:16]}",
            file_unique_id=f"AQAD{number}{uuid.uuid4().hex[:6]}",
            data=bytes(data),
            file_size=len(data) if declared_size is None else declared_size,
            file_path=_file_path(kind, number, file_name, mime_type),
        )
        self._files[stored.file_id] = stored
        return stored

    def _handle_download(self, target: str) -> tuple[int, dict[str, Any] | bytes]:
        """Answer ``GET /file/bot<token>/<file_path>``: the bytes, or an error payload.

        Returns:
            (status, the file's bytes) on success, else (status, the Bot API's error object).
        """
        path = unquote(urlsplit(target).path)
        token, _, file_path = path.removeprefix(_DOWNLOAD_PREFIX).partition("/")
        if not path.startswith(_DOWNLOAD_PREFIX) or not file_path:
            return 404, _ApiError(404, "Not Found").payload()
        if token != self.token:
            logger.warning("FakeTelegram: download of %s with a wrong token", file_path)
            return 401, _ApiError(401, "Unauthorized").payload()
        with self._cond:
            if self._download_failures:
                status = self._download_failures.pop(0)
                description = _DEFAULT_DESCRIPTIONS.get(status, "Error")
                logger.info("FakeTelegram: download of %s fails with %s", file_path, status)
                return status, _ApiError(status, description).payload()
            stored = self._files.get(self._file_paths.get(file_path, ""))
            if stored is None:
                logger.warning("FakeTelegram: download of unknown file_path %s", file_path)
                return 404, _ApiError(404, "Not Found").payload()
            self._downloads.append(
                {
                    "file_path": file_path,
                    "file_id": stored.file_id,
                    "size": len(stored.data),
                    "at": time.time(),
                }
            )
            self._cond.notify_all()
            return 200, stored.data


def _file_path(kind: str, number: int, file_name: str | None, mime_type: str | None) -> str:
    """The ``file_path`` Telegram would give: ``<folder>/file_<n><extension>``."""
    extension = _FIXED_EXTENSIONS.get(kind)
    if extension is None and file_name:
        extension = PurePosixPath(file_name).suffix.lower() or None
    if extension is None and mime_type:
        mime = mime_type.split(";", 1)[0].strip().lower()
        extension = _MIME_EXTENSIONS.get(mime) or mimetypes.guess_extension(mime)
    if extension is None and kind == "audio":
        extension = ".mp3"
    return f"{FILE_FOLDERS[kind]}/file_{number}{extension or ''}"


def _photo_sizes(data_size: int, sizes: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(width, height, file_size) of each size, smallest first, the largest of ``data_size``."""
    if not sizes:
        raise ValueError("a photo needs at least one size")
    ordered = sorted(((int(w), int(h)) for w, h in sizes), key=lambda wh: wh[0] * wh[1])
    if any(w <= 0 or h <= 0 for w, h in ordered):
        raise ValueError(f"photo sizes must be positive: {sizes!r}")
    largest = ordered[-1][0] * ordered[-1][1]
    result = []
    for width, height in ordered:
        size = round(data_size * width * height / largest)
        result.append((width, height, max(size, 1) if data_size else 0))
    return result
