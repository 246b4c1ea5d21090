"""The admin JSON API at ``/admin/api``: bearer-token auth, JSON errors, OpenAPI document.

Built with flask-smorest: marshmallow schemas (``web.api.schemas``) validate every request and
describe it in the OpenAPI 3 document, served at ``GET /admin/api/openapi.json`` (no token
needed: it holds no data). Every other route needs ``Authorization: Bearer <token>``
(``ADMIN_API_TOKEN`` or a token issued in the admin). Resources live in ``web.api.resources``,
one nested blueprint each; see ``docs/admin-api.md``.
"""

from __future__ import annotations

import logging

from flask import Response, current_app, jsonify, request

from shared.db import db
from shared.services import audit
from shared.services.api_tokens import token_owner
from web.api.errors import ApiError
from web.api.openapi import API_PREFIX, ApiBlueprint, document
from web.api.resources import RESOURCES
from web.extensions import csrf

logger = logging.getLogger(__name__)

bp = ApiBlueprint("api", __name__, url_prefix=API_PREFIX)
csrf.exempt(bp)

PUBLIC_ENDPOINTS = {"api.openapi"}


@bp.before_request
def require_token() -> tuple[Response, int] | None:
    """Refuse requests without a valid bearer token (401), except the OpenAPI document.

    A valid token names the request's actor in the audit log (the token's name, or
    ``ADMIN_API_TOKEN``); the web app forgets it when the request ends.
    """
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    owner = token_owner(token.strip()) if scheme.lower() == "bearer" else None
    if owner is None:
        return ApiError(
            401,
            "unauthorized",
            "a valid bearer token is required",
            {"WWW-Authenticate": 'Bearer realm="ai_router admin API"'},
        ).response()
    db.session.commit()  # records last_used_at of an issued token
    audit.set_actor(owner)
    return None


@bp.errorhandler(ApiError)
def api_error(error: ApiError) -> tuple[Response, int]:
    """Answer an :class:`ApiError` as JSON (and drop the request's unsaved changes)."""
    db.session.rollback()
    return error.response()


@bp.route("/openapi.json", tags=["meta"])
@bp.doc(security=[], summary="This OpenAPI 3 document (no token needed)")
@bp.response(200, description="The OpenAPI 3 document")
def openapi() -> Response:
    """The OpenAPI 3 document, generated from the schemas of every route."""
    return jsonify(document(current_app.extensions["admin_api"]))


for _resource in RESOURCES:
    csrf.exempt(_resource)  # Flask-WTF checks exemptions per (nested) blueprint
    bp.add_resource(_resource)
