"""The OpenAPI 3 document of the admin API, served at ``GET /admin/api/openapi.json``.

The operations table below is the single description of the API surface; a test checks that
every route of the blueprint is documented here and every documented operation exists.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify

from web.api import bp
from web.api.resources import MODE_FIELDS, MODEL_FIELDS, SETTINGS_FIELDS, USER_FIELDS
from web.api.validation import Field

_TYPES = {
    "str": {"type": "string"},
    "url": {"type": "string", "format": "uri"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "decimal": {"type": "number"},
    "bool": {"type": "boolean"},
}


def _schema(fields: dict[str, Field]) -> dict[str, Any]:
    """A JSON schema of a writable field table."""
    properties = {}
    for name, field in fields.items():
        schema = dict(_TYPES.get(field.kind, {"type": "string"}))
        if field.kind == "choice":
            schema["enum"] = list(field.choices)
        if field.nullable:
            schema["nullable"] = True
        if field.minimum is not None:
            schema["minimum"] = field.minimum
        if field.maximum is not None:
            schema["maximum"] = field.maximum
        if field.max_length:
            schema["maxLength"] = field.max_length
        properties[name] = schema
    required = [name for name, field in fields.items() if field.required]
    return {"type": "object", "properties": properties, "additionalProperties": False} | (
        {"required": required} if required else {}
    )


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _collection(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "total": {"type": "integer"},
        },
    }


def _query(*names: str) -> list[dict[str, Any]]:
    kinds = {
        "telegram_id": "integer",
        "dialog_id": "integer",
        "limit": "integer",
        "offset": "integer",
    }
    return [
        {"name": n, "in": "query", "required": False, "schema": {"type": kinds.get(n, "string")}}
        for n in names
    ]


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


_MODEL, _MODE, _TG = [_path("model_id")], [_path("mode_id")], [_path("telegram_id")]
_LOG_QUERY = _query(
    "telegram_id", "dialog_id", "since", "until", "status", "model", "q", "limit", "offset"
)

#: (method, path, summary, tag, request schema name or None, response, parameters)
OPERATIONS: list[tuple[str, str, str, str, str | None, dict[str, Any] | None, list]] = [
    ("get", "/settings", "Read the settings", "settings", None, _ref("Settings"), []),
    ("patch", "/settings", "Change settings", "settings", "SettingsPatch", _ref("Settings"), []),
    ("get", "/models", "List LLM models", "models", None, _collection("Model"), []),
    ("post", "/models", "Add an LLM model", "models", "ModelWrite", _ref("Model"), []),
    ("get", "/models/{model_id}", "Read a model", "models", None, _ref("Model"), _MODEL),
    ("patch", "/models/{model_id}", "Change a model", "models", "ModelPatch", _ref("Model"),
     _MODEL),
    ("delete", "/models/{model_id}", "Delete a model", "models", None, None, _MODEL),
    ("get", "/modes", "List modes", "modes", None, _collection("Mode"), []),
    ("post", "/modes", "Add a mode", "modes", "ModeWrite", _ref("Mode"), []),
    ("get", "/modes/{mode_id}", "Read a mode", "modes", None, _ref("Mode"), _MODE),
    ("patch", "/modes/{mode_id}", "Change a mode", "modes", "ModePatch", _ref("Mode"), _MODE),
    ("delete", "/modes/{mode_id}", "Delete a mode", "modes", None, None, _MODE),
    ("get", "/users", "List users", "users", None, _collection("User"),
     _query("status", "q", "limit", "offset")),
    ("post", "/users", "Create (pre-authorize) a user", "users", "UserWrite", _ref("User"), []),
    ("get", "/users/{telegram_id}", "Read a user", "users", None, _ref("User"), _TG),
    ("patch", "/users/{telegram_id}", "Change a user (status, limit)", "users", "UserPatch",
     _ref("User"), _TG),
    ("get", "/messages", "The message log, newest first", "messages", None,
     _collection("Message"), _LOG_QUERY),
    ("get", "/stats", "Statistics for a period", "stats", None, _ref("Stats"),
     _query("since", "until")),
    ("get", "/bot", "Bot status", "bot", None, _ref("BotStatus"), []),
    ("post", "/bot/start", "Start the bot (polling or webhook)", "bot", "BotStart",
     _ref("BotStatus"), []),
    ("post", "/bot/stop", "Stop the bot", "bot", None, _ref("BotStatus"), []),
    ("get", "/openapi.json", "This document", "meta", None, {"type": "object"}, []),
]  # fmt: skip

_OBJECTS: dict[str, dict[str, Any]] = {
    "Settings": {
        "telegram_bot_token_set": "boolean", "webhook_url": "string", "registration": "string",
        "default_model_id": "integer", "default_mode_id": "integer",
        "default_daily_limit": "integer",
    },
    "Model": {
        "id": "integer", "name": "string", "model": "string", "base_url": "string",
        "api_key_set": "boolean", "api_key_last4": "string", "temperature": "number",
        "max_tokens": "integer", "context_window": "integer", "enabled": "boolean",
        "is_default": "boolean", "input_price_per_1m": "number", "output_price_per_1m": "number",
        "fallback_model_id": "integer", "created_at": "string",
    },
    "Mode": {"id": "integer", "name": "string", "system_prompt": "string", "is_default": "boolean",
             "position": "integer"},
    "User": {
        "telegram_id": "integer", "username": "string", "first_name": "string",
        "language_code": "string", "status": "string", "daily_request_limit": "integer",
        "note": "string", "created_at": "string", "last_seen_at": "string",
        "requests_total": "integer",
    },
    "Message": {
        "id": "integer", "dialog_id": "integer", "message_number": "integer",
        "telegram_id": "integer", "request_text": "string", "request_at": "string",
        "response_text": "string", "response_at": "string", "model": "string", "mode": "string",
        "prompt_tokens": "integer", "completion_tokens": "integer", "cost_usd": "number",
        "status": "string", "error": "string", "latency_ms": "integer",
    },
    "Stats": {
        "requests": "integer", "active_users": "integer", "prompt_tokens": "integer",
        "completion_tokens": "integer", "total_tokens": "integer", "cost_usd": "number",
        "errors": "integer", "daily": "array", "by_model": "array", "top_users": "array",
        "since": "string", "until": "string", "timezone": "string",
    },
    "BotStatus": {
        "desired": "string", "state": "string", "since": "string", "last_update_at": "string",
        "last_error": "string", "webhook_url": "string", "queue_depth": "integer",
    },
}  # fmt: skip


def _object(props: dict[str, str]) -> dict[str, Any]:
    def prop(kind: str) -> dict[str, Any]:
        return {"type": kind, "items": {"type": "object"}} if kind == "array" else {"type": kind}

    return {"type": "object", "properties": {name: prop(kind) for name, kind in props.items()}}


def _patch(fields: dict[str, Field]) -> dict[str, Any]:
    schema = _schema(fields)
    schema.pop("required", None)
    return schema


def build_document() -> dict[str, Any]:
    """Assemble the OpenAPI 3 document from :data:`OPERATIONS` and the field tables."""
    error = {
        "description": "Error",
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, tag, body, response, params in OPERATIONS:
        status = "201" if method == "post" and path in ("/models", "/modes", "/users") else "200"
        operation: dict[str, Any] = {"summary": summary, "tags": [tag], "parameters": params}
        if method == "delete":
            operation["responses"] = {"204": {"description": "Deleted"}, "404": error}
        else:
            operation["responses"] = {
                status: {
                    "description": "OK",
                    "content": {"application/json": {"schema": response}},
                },
                "400": error,
                "401": error,
                "404": error,
            }
        if body:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(body)}},
            }
        if path == "/openapi.json":
            operation["security"] = []
        paths.setdefault(f"/admin/api{path}", {})[method] = operation
    schemas = {name: _object(props) for name, props in _OBJECTS.items()}
    schemas.update(
        SettingsPatch=_patch(SETTINGS_FIELDS),
        ModelWrite=_schema(MODEL_FIELDS),
        ModelPatch=_patch(MODEL_FIELDS),
        ModeWrite=_schema(MODE_FIELDS),
        ModePatch=_patch(MODE_FIELDS),
        UserWrite=_schema(USER_FIELDS),
        UserPatch=_patch({k: v for k, v in USER_FIELDS.items() if k != "telegram_id"}),
        BotStart={
            "type": "object",
            "required": ["mode"],
            "properties": {"mode": {"type": "string", "enum": ["polling", "webhook"]}},
        },
        Error={
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
    )
    return {
        "openapi": "3.0.3",
        "info": {"title": "ai_router admin API", "version": "1.0.0"},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
    }


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3 document (no token needed: it holds no data)."""
    return jsonify(build_document())
