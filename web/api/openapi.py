"""flask-smorest glue: the API blueprint that brings its own ``Api``, and the OpenAPI document.

``web.create_app`` registers ``web.api.bp`` like any blueprint; :meth:`ApiBlueprint.register`
then builds the flask-smorest :class:`AdminApi` for that app and documents every route of the
blueprint and of its nested resource blueprints from their marshmallow schemas. The document is
served at ``GET /admin/api/openapi.json`` (``web.api``) and checked against the routes by the
tests.

Only ``/admin/api`` answers JSON errors: :class:`AdminApi` keeps flask-smorest's app-wide error
handler out of the admin UI and the webhook (see :meth:`AdminApi.handle_http_exception`).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Flask, request
from flask_smorest import Api, Blueprint
from webargs import core
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from web.api.errors import ApiError, ErrorSchema, describe

API_PREFIX = "/admin/api"
SECURITY_SCHEME = "bearer"


class AdminApi(Api):
    """The flask-smorest ``Api`` of the admin API (one per app, built by :class:`ApiBlueprint`).

    Errors are documented with :class:`web.api.errors.ErrorSchema`, the contract's error shape.
    """

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> Any:
        """Answer 400/404/405/… under ``/admin/api`` as JSON; elsewhere keep Flask's pages.

        flask-smorest registers this app-wide; outside the API the exception is handed back to
        Flask unchanged, so the admin UI's pages (and CSRF's 400) stay as they are.

        Args:
            error: The HTTP exception (webargs' validation errors carry ``data["messages"]``).

        Returns:
            The JSON error response, or the exception itself outside the API.
        """
        if not request.path.startswith(API_PREFIX):
            return error
        return http_error(error).response()


def http_error(error: HTTPException) -> ApiError:
    """The :class:`ApiError` for a Werkzeug HTTP exception raised inside the API.

    Args:
        error: The exception; a 400 from webargs carries the validation messages.

    Returns:
        ``validation_error`` for a rejected request, else a code from the status name
        (``not_found``, ``method_not_allowed``, …).
    """
    data = getattr(error, "data", None) or {}
    status = error.code or 500
    if status in (400, 422) and "messages" in data:
        return ApiError(400, "validation_error", describe(data["messages"]), data.get("headers"))
    code = (error.name or "error").lower().replace(" ", "_")
    return ApiError(status, code, error.description or error.name, data.get("headers"))


class ApiParser(FlaskParser):
    """webargs' Flask parser as the contract wants it: 400 on a bad request, bodies are objects.

    A body that is missing, or not JSON, is refused like a malformed one (webargs would read it
    as ``{}``); the schema then refuses anything but a JSON object.
    """

    DEFAULT_VALIDATION_STATUS = 400

    def load_json(self, req: Any, schema: ma.Schema) -> Any:
        """The JSON body; a missing or non-JSON body is a validation error.

        Args:
            req: The request.
            schema: The schema it is loaded with.

        Returns:
            The decoded JSON value.

        Raises:
            marshmallow.ValidationError: When there is no JSON body.
        """
        body = super().load_json(req, schema)
        if body is core.missing:
            raise ma.ValidationError("the body must be a JSON object")
        return body


class ResourceBlueprint(Blueprint):
    """A resource of the admin API: operations tagged with its name, requests read by ApiParser."""

    ARGUMENTS_PARSER = ApiParser()

    def route(self, rule: str, *, parameters: Any = None, tags: Any = None, **options: Any) -> Any:
        """``flask_smorest.Blueprint.route``, tagging the operations with the blueprint's name.

        Args:
            rule: URL rule, relative to ``/admin/api``.
            parameters: Path parameters' documentation.
            tags: OpenAPI tags; default ``[<blueprint name>]``.
            **options: Werkzeug rule options.

        Returns:
            The decorator.
        """
        return super().route(rule, parameters=parameters, tags=tags or [self.name], **options)


class ApiBlueprint(ResourceBlueprint):
    """The ``/admin/api`` blueprint: resource blueprints nest in it; registering it builds the API.

    Args:
        *args: As for ``flask_smorest.Blueprint``.
        **kwargs: As for ``flask_smorest.Blueprint``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.resources: list[ResourceBlueprint] = []

    def add_resource(self, resource: ResourceBlueprint) -> None:
        """Nest a resource blueprint; its operations are tagged with its name in the document.

        Args:
            resource: A :class:`ResourceBlueprint`, routes relative to ``/admin/api``.
        """
        self.resources.append(resource)
        self.register_blueprint(resource)

    def register(self, app: Flask, options: dict[str, Any]) -> None:
        """Register the routes (Flask), then build the app's :class:`AdminApi` and document them.

        Args:
            app: The Flask app.
            options: Flask's registration options.
        """
        super().register(app, options)
        name = options.get("name", self.name)
        api = AdminApi(
            app,
            spec_kwargs={
                "title": "ai_router admin API",
                "version": "1.0.0",
                "openapi_version": "3.0.3",
                "info": {
                    "description": "Everything the admin UI manages. Authorization: Bearer "
                    "<token> (ADMIN_API_TOKEN, or a token issued in the admin). Errors: "
                    '{"error": {"code": "...", "message": "..."}}.'
                },
                "servers": [{"url": "/"}],
                "security": [{SECURITY_SCHEME: []}],
            },
        )
        api.spec.components.security_scheme(SECURITY_SCHEME, {"type": "http", "scheme": "bearer"})
        app.extensions["flask-smorest"]["blp_name_to_api"][name] = api
        self.register_views_in_doc(api, app, api.spec, name=name, parameters=None)
        for resource in self.resources:
            api.spec.tag({"name": resource.name, "description": resource.description})
        app.extensions["admin_api"] = api


#: How the document says "an empty query parameter counts as absent" (``QuerySchema``).
EMPTY_QUERY_VALUE = {"type": "string", "maxLength": 0}


def document(api: AdminApi) -> dict[str, Any]:
    """The OpenAPI 3 document, with the 401 answer on every operation that needs a token.

    Query parameters also admit the empty string: ``?status=`` counts as absent
    (``web.api.schemas.QuerySchema``), and the document says so.

    Args:
        api: The app's :class:`AdminApi`.

    Returns:
        The document as a dict.
    """
    unauthorized = api.spec.components.get_ref("response", "UNAUTHORIZED")
    spec = api.spec.to_dict()
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            if operation.get("security") != []:
                operation.setdefault("responses", {}).setdefault("401", unauthorized)
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and "schema" in parameter:
                    parameter["schema"] = {"anyOf": [parameter["schema"], EMPTY_QUERY_VALUE]}
    return spec
