"""``GET /media/<token>``: a photo for a vision model that fetches images by URL (``IMAGE_URLS``).

The token is signed with the app's secret and names one Telegram file id for an hour
(``shared.services.files.media_url``); the bytes are fetched from the Bot API on each
request and never stored. The Bot API's own file URL would hand the provider the bot token.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app

from shared.services.files import AttachmentFailed, fetch_image, media_file_id

logger = logging.getLogger(__name__)

bp = Blueprint("media", __name__)


@bp.get("/media/<token>")
def media(token: str) -> Response:
    """Serve the photo a signed token names.

    Returns:
        The image (``image/jpeg``, Telegram's photo format); 404 for a forged or expired token
        (or with ``IMAGE_URLS`` off); 502 when Telegram cannot give the file.
    """
    config = current_app.config["AI_ROUTER"]
    file_id = media_file_id(token) if config.image_urls else None
    if file_id is None:
        abort(404)
    try:
        data = fetch_image(file_id, config)
    except AttachmentFailed as exc:
        logger.warning("media: cannot fetch a photo: %s", exc)
        abort(502)
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
