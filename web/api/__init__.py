"""The admin JSON API at ``/admin/api``: bearer-token auth, JSON errors, OpenAPI document.

Every route but ``/admin/api/openapi.json`` needs ``Authorization: Bearer <token>``
(``ADMIN_API_TOKEN`` or a token issued in the admin). Resources live in
``web.api.resources``; the OpenAPI document in ``web.api.openapi`` is checked against the routes
by the tests.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from shared.db import db
from shared.services.api_tokens import verify_token
from web.api.validation import ApiError
from web.extensions import csrf

logger = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/admin/api")
csrf.exempt(bp)

PUBLIC_ENDPOINTS = {"api.openapi"}


@bp.before_request
def require_token() -> tuple[Response, int] | None:
    """Refuse requests without a valid bearer token (401), except the OpenAPI document."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not verify_token(token.strip()):
        error = ApiError(401, "unauthorized", "a valid bearer token is required")
        response = jsonify(error.body())
        response.headers["WWW-Authenticate"] = 'Bearer realm="ai_router admin API"'
        return response, 401
    db.session.commit()  # records last_used_at of an issued token
    return None


@bp.errorhandler(ApiError)
def api_error(error: ApiError) -> tuple[Response, int]:
    """Answer an :class:`ApiError` as JSON."""
    db.session.rollback()
    return jsonify(error.body()), error.status


@bp.app_errorhandler(HTTPException)
def http_error(error: HTTPException) -> tuple[Response, int] | HTTPException:
    """Answer 404/405/… under ``/admin/api`` as JSON; elsewhere keep Flask's own pages."""
    if not request.path.startswith(bp.url_prefix):
        return error
    code = (error.name or "error").lower().replace(" ", "_")
    return jsonify({"error": {"code": code, "message": error.description}}), error.code or 500


from web.api import openapi, resources  # noqa: E402,F401  (routes register on bp)
