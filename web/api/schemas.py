"""Marshmallow schemas of the admin API: each one validates requests AND describes OpenAPI.

One schema per resource serves both directions: ``dump_only`` fields are read-only (``id``,
``api_key_set``, …; refused in a request body), ``load_only`` fields are write-only
(``api_key``, ``telegram_bot_token``; never answered). ``…PatchSchema`` variants are loaded with
``partial=True`` (nothing required). Unknown fields in a body are refused (marshmallow's
``RAISE``); unknown query parameters are ignored.

The field classes below are stricter than marshmallow's defaults, as the API has always been:
JSON types are not coerced (``"5"`` is not an integer, ``1`` is not ``true``), and strings are
stripped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from marshmallow import validate

from shared.db import MAX_PAGE
from shared.models import (
    AuditAction,
    GroupStatus,
    PaymentStatus,
    PlanChangeReason,
    RequestStatus,
    UserStatus,
)
from shared.models.types import MAX_ROW_ID
from shared.services import audit, bot_control, cooldowns, stats
from shared.services.catalog import MAX_TRANSCRIPTION_MODEL
from shared.services.plans import MAX_PERIOD_DAYS, MAX_STARS, MIN_STARS
from shared.services.settings import REGISTRATION_APPROVAL, REGISTRATION_OPEN

# -- strict JSON fields ---------------------------------------------------------------------


def _validators(kwargs: dict[str, Any]) -> list[Any]:
    """Pop a field's ``validate`` argument (one validator, a list or none) as a list."""
    extra = kwargs.pop("validate", None)
    return list(extra) if isinstance(extra, list | tuple) else [extra] if extra else []


class Text(ma.fields.String):
    """A string, with surrounding whitespace stripped; never a NUL character.

    Length limits hold for the string as sent (the document's ``maxLength`` means what it
    says) and for the stripped one; a required non-empty text (``Length(min=1)``) must hold a
    non-whitespace character. Both rules are published as the field's ``pattern``.
    """

    def __init__(self, **kwargs: Any) -> None:
        validators = _validators(kwargs)
        if any(isinstance(v, validate.Length) and (v.min or 0) >= 1 for v in validators):
            validators.append(validate.Regexp(NOT_BLANK, error="must not be blank or hold NUL"))
        else:
            validators.append(validate.Regexp(NO_NUL, error="must not hold NUL characters"))
        super().__init__(validate=validators, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        for validator in self.validators:
            if isinstance(validator, validate.Length):
                validator(text)
        return text.strip()


#: Text without a NUL character (PostgreSQL refuses it in a string).
NO_NUL = r"^[^\x00]*$"
#: Text without NUL that holds at least one other non-whitespace character.
NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"


class QueryText(ma.fields.String):
    """A free-text query parameter (a search, a name): anything but a NUL character."""

    def __init__(self, **kwargs: Any) -> None:
        validators = [
            validate.Regexp(NO_NUL, error="must not hold NUL characters"),
            *_validators(kwargs),
        ]
        super().__init__(validate=validators, **kwargs)


#: What :class:`HttpUrl` accepts, as published in the OpenAPI document: an ASCII host name
#: (dotted labels), an optional port and a path of printable ASCII. Marshmallow's URL check runs
#: too; everything this pattern matches passes it, so the document promises nothing false.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HTTP_URL_PATTERN = (
    r"^https?://(?:"
    rf"(?:{_LABEL}\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])"  # last label: 2+ chars
    r"|[0-9]{1,3}(?:\.[0-9]{1,3}){3}"  # or an IPv4 address
    r")(?::[0-9]{1,5})?(?:/[!-~]*)?$"
)


class HttpUrl(ma.fields.Url):
    """An absolute ``http(s)://`` URL (hosts without a TLD, like ``127.0.0.1``, allowed).

    The document publishes :data:`HTTP_URL_PATTERN`, and the field enforces it, so a client
    (or a fuzzer) generating from the document sends only URLs that are accepted.
    """

    def __init__(self, **kwargs: Any) -> None:
        validators = [
            validate.Regexp(HTTP_URL_PATTERN, error="Not a valid URL."),
            *_validators(kwargs),
        ]
        super().__init__(
            schemes={"http", "https"}, require_tld=False, validate=validators, **kwargs
        )


class Moment(ma.fields.String):
    """A period bound in a query: an ISO 8601 date (a whole day) or an ISO 8601 datetime.

    Kept as the string the service parses (``shared.services.stats.make_period``), but checked
    here so a malformed value is refused like any other bad parameter, and documented as
    ``date`` or ``date-time`` so clients generating from the document send valid ones.
    """

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"anyOf": [{"format": "date"}, {"format": "date-time"}]}
        metadata.update(kwargs.pop("metadata", {}))
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            stats.parse_bound(text, "UTC", end=False)
        except stats.PeriodError as exc:
            raise ma.ValidationError(str(exc)) from exc
        return text


class Instant(ma.fields.DateTime):
    """An instant in a body: an ISO 8601 datetime WITH a UTC offset, loaded as aware UTC.

    A naive datetime is refused (a body has no "configured timezone" to guess from; the
    document's ``date-time`` format, RFC 3339, requires the offset anyway). Years outside
    ``stats.MIN_YEAR``–``stats.MAX_YEAR`` are refused like a period bound out of range: they
    would overflow date arithmetic (a refund takes days off an expiry).
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise self.make_error("invalid", obj_type=self.OBJ_TYPE)
        try:
            instant = datetime.fromisoformat(value)
        except ValueError as exc:
            raise self.make_error("invalid", obj_type=self.OBJ_TYPE) from exc
        if instant.tzinfo is None:
            raise ma.ValidationError("must carry a UTC offset (Z or ±hh:mm)")
        try:
            instant = instant.astimezone(UTC)
        except OverflowError:  # year 1 or 9999 pushed over the edge by its offset
            instant = None
        if instant is None or not stats.MIN_YEAR <= instant.year < stats.MAX_YEAR:
            raise ma.ValidationError(
                f"out of range (years {stats.MIN_YEAR}–{stats.MAX_YEAR - 1}): {value!r}"
            )
        return instant


class StrictInteger(ma.fields.Integer):
    """A JSON integer: no strings, no floats, no booleans."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Number(ma.fields.Float):
    """A JSON number: no strings, no booleans."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Price(ma.fields.Decimal):
    """A price: read as an exact decimal (a number or a numeric string), answered as a number."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> float | None:
        return None if value is None else float(value)


class Flag(ma.fields.Boolean):
    """A JSON ``true`` or ``false``, nothing else."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class IsSet(ma.fields.Boolean):
    """Read-only: whether a secret attribute holds a value (the secret itself is never shown)."""

    def __init__(self, attribute: str, **kwargs: Any) -> None:
        super().__init__(attribute=attribute, dump_only=True, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> bool:
        return bool(value)


#: Row ids are 32-bit integers in every database; Telegram ids fit 64 bits.
MAX_ID = MAX_ROW_ID
MAX_TELEGRAM_ID = 2**63 - 1
#: Prices are stored as NUMERIC(12, 6) (``shared.models.llm_model.PRICE``).
MAX_PRICE = 999_999
#: The largest offset a list accepts.
MAX_OFFSET = 10**9
#: Token limits are BIGINT columns.
MAX_TOKENS = 2**63 - 1


def _doc(text: str) -> dict[str, str]:
    return {"description": text}


def collection(item: type[ma.Schema], name: str) -> type[ma.Schema]:
    """The ``{"items": [...], "total": N}`` answer of a collection.

    Args:
        item: The schema of one item.
        name: The OpenAPI component name (``ModelList``, …).

    Returns:
        A schema class.
    """
    return ma.Schema.from_dict(
        {
            "items": ma.fields.List(ma.fields.Nested(item), required=True),
            "total": ma.fields.Integer(required=True, metadata=_doc("All matches, not the page")),
        },
        name=name,
    )


class QuerySchema(ma.Schema):
    """Base of query-string schemas: an empty parameter (``?status=``) counts as absent."""

    @ma.pre_load
    def _drop_empty(self, data: Any, **kwargs: Any) -> dict[str, Any]:
        return {key: value for key, value in data.items() if value != ""}


class PagedQuerySchema(QuerySchema):
    """Base of a list's query string: its page (``limit``, default 50; ``offset``)."""

    limit = ma.fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=MAX_OFFSET),
        metadata=_doc(f"At most {MAX_PAGE} are answered"),
    )
    offset = ma.fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OFFSET))


# -- settings -------------------------------------------------------------------------------


class SettingsSchema(ma.Schema):
    """The settings (``PATCH`` changes any subset)."""

    telegram_bot_token = Text(
        load_only=True,
        allow_none=True,
        validate=validate.Length(max=200),
        metadata=_doc("Write-only; reads back as telegram_bot_token_set"),
    )
    telegram_bot_token_set = ma.fields.Boolean(dump_only=True)
    webhook_url = HttpUrl(
        allow_none=True,
        validate=validate.Length(max=500),
        metadata=_doc("Passed to Telegram as is; null: {PUBLIC_URL}/telegram/webhook"),
    )
    registration = Text(
        validate=validate.OneOf((REGISTRATION_OPEN, REGISTRATION_APPROVAL)),
        metadata=_doc("open: anyone who writes gets access; approval: new users wait as pending"),
    )
    default_model_id = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata=_doc("Makes that model the active one (its is_default)"),
    )
    default_mode_id = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata=_doc("Makes that mode the default one (its is_default)"),
    )
    default_daily_limit = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_ID),
        metadata=_doc("Requests per user per day; null: unlimited"),
    )
    streaming = Flag(
        metadata=_doc(
            "true (default): private-chat users see the answer grow while the LLM writes "
            "(sendMessageDraft)"
        ),
    )
    voice_model = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata=_doc(
            "The id of the model whose endpoint transcribes voice messages and audio for users "
            "whose model has no transcription_model; it must have a transcription_model "
            "(else 400). Not applied while that model is disabled, deleted or without one. "
            "null (default): only a model's own transcription model is used"
        ),
    )


# -- models ---------------------------------------------------------------------------------


class ModelHealthSchema(ma.Schema):
    """A model's recent calls, as every worker sees them (``shared.services.cooldowns``)."""

    state = ma.fields.String(
        validate=validate.OneOf(["ok", "cooling_down"]),
        metadata=_doc("cooling_down: it gave up too often; workers ask its fallback directly"),
    )
    cooldown_until = ma.fields.DateTime(allow_none=True)
    last_error = ma.fields.String(allow_none=True, metadata=_doc("What it last gave up with"))
    last_error_at = ma.fields.DateTime(allow_none=True)
    recent_failures = ma.fields.Integer(metadata=_doc("Give-ups in the current window"))


class Health(ma.fields.Nested):
    """Read-only: the model's :class:`ModelHealthSchema`, looked up by its id."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(ModelHealthSchema, attribute="id", dump_only=True, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return super()._serialize(cooldowns.health_of(value), attr, obj, **kwargs)


class ModelSchema(ma.Schema):
    """An OpenAI-compatible Chat Completions endpoint the bot can route to."""

    id = ma.fields.Integer(dump_only=True)
    name = Text(required=True, validate=validate.Length(min=1, max=64), metadata=_doc("For users"))
    model = Text(
        required=True,
        validate=validate.Length(min=1, max=128),
        metadata=_doc("The provider's model id"),
    )
    base_url = HttpUrl(
        required=True,
        validate=validate.Length(max=512),
        metadata=_doc("OpenAI-compatible, e.g. https://api.openai.com/v1"),
    )
    api_key = Text(
        load_only=True,
        allow_none=True,
        validate=validate.Length(max=500),
        metadata=_doc("Write-only (stored encrypted); reads back as api_key_set"),
    )
    api_key_set = IsSet("api_key_encrypted")
    api_key_last4 = ma.fields.String(dump_only=True, allow_none=True)
    temperature = Number(allow_none=True, validate=validate.Range(min=0, max=2))
    max_tokens = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=MAX_ID))
    context_window = StrictInteger(allow_none=True, validate=validate.Range(min=256, max=MAX_ID))
    vision = Flag(metadata=_doc("Accepts images: photos are sent to it (default false)"))
    transcription_model = Text(
        allow_none=True,
        validate=validate.Length(max=MAX_TRANSCRIPTION_MODEL),
        metadata=_doc(
            "The endpoint's speech-to-text model (its /audio/transcriptions, e.g. whisper-1); "
            "null (or blank): no voice"
        ),
    )
    enabled = Flag()
    is_default = Flag(metadata=_doc("true makes it the active model and clears the others"))
    input_price_per_1m = Price(validate=validate.Range(min=0, max=MAX_PRICE), metadata=_doc("USD"))
    output_price_per_1m = Price(validate=validate.Range(min=0, max=MAX_PRICE), metadata=_doc("USD"))
    fallback_model_id = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata=_doc("Tried when this model gives up; never the model itself"),
    )
    health = Health()
    created_at = ma.fields.DateTime(dump_only=True)


class ModelPatchSchema(ModelSchema):
    """Changes to a model: any subset of its writable fields (loaded with ``partial=True``)."""


# -- modes ----------------------------------------------------------------------------------


class ModeSchema(ma.Schema):
    """An answer mode: a named system prompt."""

    id = ma.fields.Integer(dump_only=True)
    name = Text(required=True, validate=validate.Length(min=1, max=64))
    system_prompt = Text(validate=validate.Length(max=20000))
    is_default = Flag(metadata=_doc("true makes it the default mode and clears the others"))
    position = StrictInteger(
        validate=validate.Range(min=0, max=MAX_ID), metadata=_doc("Display order")
    )


class ModePatchSchema(ModeSchema):
    """Changes to a mode: any subset of its writable fields (loaded with ``partial=True``)."""


# -- users ----------------------------------------------------------------------------------


class UsageSchema(ma.Schema):
    """A user's use today and this month, as their plan's limits count it.

    Days and months are in the configured timezone; denied requests do not count.
    """

    requests_today = ma.fields.Integer()
    tokens_today = ma.fields.Integer()
    tokens_month = ma.fields.Integer()
    cost_usd_month = ma.fields.Float(metadata=_doc("USD"))


class UserSchema(ma.Schema):
    """A Telegram user, addressed by Telegram id."""

    telegram_id = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_TELEGRAM_ID))
    username = Text(allow_none=True, validate=validate.Length(max=64))
    first_name = Text(allow_none=True, validate=validate.Length(max=128))
    language_code = ma.fields.String(dump_only=True, allow_none=True)
    status = Text(
        validate=validate.OneOf([s.value for s in UserStatus]),
        metadata=_doc("blocked takes access away at once"),
    )
    daily_request_limit = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_ID),
        metadata=_doc("null: the default"),
    )
    note = Text(allow_none=True, validate=validate.Length(max=500))
    created_at = ma.fields.DateTime(dump_only=True)
    last_seen_at = ma.fields.DateTime(dump_only=True, allow_none=True)
    reachable = ma.fields.Boolean(
        dump_only=True,
        metadata=_doc(
            "false once Telegram said the user blocked the bot (nothing is sent to them); "
            "true again when they write"
        ),
    )
    requests_total = ma.fields.Integer(
        dump_only=True, metadata=_doc("Every logged request, denied and failed included")
    )
    plan_id = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata=_doc(
            "Read: the plan governing the user now (the default plan's id when they have none "
            "or theirs expired). Write: assigns a plan, keeping its end unless "
            "plan_expires_at is sent too (the default plan's id: the default plan, no end); "
            "the change is recorded in the plan history"
        ),
    )
    plan_expires_at = Instant(
        allow_none=True,
        metadata=_doc(
            "When the plan ends (ISO 8601 with a UTC offset; null: no expiry); then the user "
            "falls back to the default plan. Sent without plan_id, it changes the current "
            "plan's end"
        ),
    )
    usage = ma.fields.Nested(UsageSchema, dump_only=True)


class PlanChangeSchema(ma.Schema):
    """One change of a user's plan or its expiry (the plan history)."""

    at = ma.fields.DateTime()
    reason = ma.fields.String(validate=validate.OneOf([r.value for r in PlanChangeReason]))
    actor = ma.fields.String(
        metadata=_doc("An admin, an API token's name, telegram (a purchase), system (expiry)")
    )
    from_plan_id = ma.fields.Integer(allow_none=True)
    from_plan_name = ma.fields.String(allow_none=True, metadata=_doc("null: the default plan"))
    from_expires_at = ma.fields.DateTime(allow_none=True)
    to_plan_id = ma.fields.Integer(allow_none=True)
    to_plan_name = ma.fields.String(allow_none=True, metadata=_doc("null: the default plan"))
    to_expires_at = ma.fields.DateTime(allow_none=True, metadata=_doc("null: no expiry"))
    payment_id = ma.fields.Integer(allow_none=True, metadata=_doc("For purchase and refund"))
    note = ma.fields.String(allow_none=True)


class UserDetailSchema(UserSchema):
    """A user with their plan history (the answer of ``GET /users/{telegram_id}``)."""

    plan_history = ma.fields.List(
        ma.fields.Nested(PlanChangeSchema),
        dump_only=True,
        metadata=_doc("Newest first (at most 50)"),
    )


class UserPatchSchema(UserSchema):
    """Changes to a user (the Telegram id is the address, not a field; ``partial=True``)."""

    class Meta:
        """The Telegram id cannot change."""

        exclude = ("telegram_id",)


class UsersQuerySchema(PagedQuerySchema):
    """Filters and paging of the users list."""

    status = ma.fields.String(validate=validate.OneOf([s.value for s in UserStatus]))
    q = QueryText(metadata=_doc("Text in the username or first name"))
    plan_id = ma.fields.Integer(
        validate=validate.Range(min=1, max=MAX_ROW_ID),
        metadata=_doc("Only users this plan governs now (an ended plan counts as the default)"),
    )
    limit = ma.fields.Integer(
        load_default=100,
        validate=validate.Range(min=1, max=MAX_OFFSET),
        metadata=_doc(f"At most {MAX_PAGE} are answered"),
    )


# -- plans and payments ---------------------------------------------------------------------


class PlanSchema(ma.Schema):
    """A plan: limits (null = unlimited), the models allowed, a price in Telegram Stars."""

    id = ma.fields.Integer(dump_only=True)
    name = Text(required=True, validate=validate.Length(min=1, max=64), metadata=_doc("For users"))
    description = Text(validate=validate.Length(max=255), metadata=_doc("Shown in /buy"))
    requests_per_day = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_ID),
        metadata=_doc("null: unlimited; a user's own daily_request_limit overrides it"),
    )
    tokens_per_day = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_TOKENS),
        metadata=_doc("null: unlimited"),
    )
    tokens_per_month = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_TOKENS),
        metadata=_doc("null: unlimited"),
    )
    cost_usd_per_month = Price(
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_PRICE),
        metadata=_doc("USD; null: unlimited"),
    )
    model_ids = ma.fields.List(
        StrictInteger(validate=validate.Range(min=1, max=MAX_ID)),
        validate=validate.Length(max=1000),
        metadata=_doc("The models its users may choose; empty: every enabled model"),
    )
    is_default = Flag(
        metadata=_doc(
            "The plan of every user without one: exactly one. true moves the flag here; "
            "false on the default plan is refused (409): make another plan the default"
        )
    )
    price_stars = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=MIN_STARS, max=MAX_STARS),
        metadata=_doc("Price in Telegram Stars; null: not for sale"),
    )
    period_days = StrictInteger(
        validate=validate.Range(min=1, max=MAX_PERIOD_DAYS),
        metadata=_doc("What one purchase adds (default 30)"),
    )
    fallback_model_id = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata=_doc("Answers instead of a refusal once the dollar limit is reached"),
    )
    created_at = ma.fields.DateTime(dump_only=True)


class PlanPatchSchema(PlanSchema):
    """Changes to a plan: any subset of its writable fields (loaded with ``partial=True``)."""


class PaymentSchema(ma.Schema):
    """A plan bought with Telegram Stars (plan name and period as at the purchase)."""

    id = ma.fields.Integer()
    telegram_id = ma.fields.Integer()
    plan_id = ma.fields.Integer(allow_none=True, metadata=_doc("null once the plan is deleted"))
    plan_name = ma.fields.String()
    stars = ma.fields.Integer()
    period_days = ma.fields.Integer()
    telegram_payment_charge_id = ma.fields.String()
    status = ma.fields.String(validate=validate.OneOf([s.value for s in PaymentStatus]))
    created_at = ma.fields.DateTime()
    refunded_at = ma.fields.DateTime(allow_none=True)
    refunded_by = ma.fields.String(allow_none=True, metadata=_doc("Who refunded it"))


class PaymentsQuerySchema(PagedQuerySchema):
    """Filters and paging of the payments."""

    telegram_id = ma.fields.Integer(validate=validate.Range(min=1, max=MAX_TELEGRAM_ID))
    status = ma.fields.String(validate=validate.OneOf([s.value for s in PaymentStatus]))


# -- groups ---------------------------------------------------------------------------------


class GroupSchema(ma.Schema):
    """A group or supergroup the bot was asked in, with what the message log says of it."""

    id = ma.fields.Integer(dump_only=True)
    chat_id = ma.fields.Integer(dump_only=True, metadata=_doc("Telegram's chat id (negative)"))
    title = ma.fields.String(dump_only=True)
    kind = ma.fields.String(dump_only=True, metadata=_doc("group or supergroup"))
    is_forum = ma.fields.Boolean(dump_only=True, metadata=_doc("Topics are on"))
    status = Text(
        validate=validate.OneOf([s.value for s in GroupStatus]),
        metadata=_doc("blocked: the bot refuses everyone in the group (logged as denied)"),
    )
    first_seen_at = ma.fields.DateTime(dump_only=True)
    last_seen_at = ma.fields.DateTime(dump_only=True, metadata=_doc("To the minute"))
    members = ma.fields.Integer(
        dump_only=True, metadata=_doc("Distinct members who asked the bot there")
    )
    requests = ma.fields.Integer(dump_only=True, metadata=_doc("Requests logged there"))
    last_request_at = ma.fields.DateTime(dump_only=True, allow_none=True)


class GroupPatchSchema(GroupSchema):
    """Changes to a group: only its status (loaded with ``partial=True``)."""


class GroupsQuerySchema(PagedQuerySchema):
    """Filters and paging of the groups."""

    status = ma.fields.String(validate=validate.OneOf([s.value for s in GroupStatus]))


# -- messages -------------------------------------------------------------------------------


class MessageSchema(ma.Schema):
    """One logged request and its answer."""

    id = ma.fields.Integer()
    dialog_id = ma.fields.Integer()
    message_number = ma.fields.Integer(attribute="number", metadata=_doc("1, 2, 3… in the dialog"))
    telegram_id = ma.fields.Integer(attribute="user.telegram_id")
    request_text = ma.fields.String()
    request_at = ma.fields.DateTime()
    response_text = ma.fields.String(allow_none=True)
    response_at = ma.fields.DateTime(allow_none=True)
    model = ma.fields.String(attribute="model_name", allow_none=True)
    mode = ma.fields.String(attribute="mode_name", allow_none=True)
    prompt_tokens = ma.fields.Integer(allow_none=True)
    completion_tokens = ma.fields.Integer(allow_none=True)
    cost_usd = ma.fields.Float(allow_none=True)
    status = ma.fields.String(
        validate=validate.OneOf([s.value for s in RequestStatus]),
        metadata=_doc("pending while unanswered"),
    )
    error = ma.fields.String(allow_none=True, metadata=_doc("For denied: which rule or limit"))
    latency_ms = ma.fields.Integer(allow_none=True)
    chat_id = ma.fields.Integer(
        allow_none=True,
        metadata=_doc("The Telegram chat asked in: the user's own, or a group's (negative)"),
    )
    thread_id = ma.fields.Integer(
        allow_none=True, metadata=_doc("The forum topic of a group's message; null outside one")
    )
    attachment = ma.fields.Dict(
        keys=ma.fields.String(),
        allow_none=True,
        metadata=_doc(
            "What came with the message, never its bytes: kind (photo, voice, audio, "
            "document), size (bytes) and the kind's own fields (width, height, duration, "
            "file_name, mime_type, …); null for text only"
        ),
    )


class MessageDetailSchema(MessageSchema):
    """One logged request, with the text read from its document (not in the list: up to 1 MB)."""

    attachment_text = ma.fields.String(
        allow_none=True, metadata=_doc("A document's text as the model read it (trimmed)")
    )


class MessagesQuerySchema(PagedQuerySchema):
    """Filters and paging of the message log."""

    telegram_id = ma.fields.Integer(validate=validate.Range(min=1, max=MAX_TELEGRAM_ID))
    dialog_id = ma.fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    chat_id = ma.fields.Integer(
        validate=validate.Range(min=-MAX_TELEGRAM_ID, max=MAX_TELEGRAM_ID),
        metadata=_doc("One chat: a group's id (negative) gives what was asked there"),
    )
    since = Moment(metadata=_doc("ISO 8601 date or datetime (inclusive)"))
    until = Moment(metadata=_doc("ISO 8601 date (inclusive) or datetime (exclusive)"))
    status = ma.fields.String(validate=validate.OneOf([s.value for s in RequestStatus]))
    model = QueryText(metadata=_doc("The model's name at the time"))
    q = QueryText(metadata=_doc("Text in the request or the answer"))


# -- statistics -----------------------------------------------------------------------------


class StatsQuerySchema(QuerySchema):
    """The period: dates (both inclusive) or ISO datetimes; default the last 7 days."""

    since = Moment(metadata=_doc("ISO 8601 date or datetime (inclusive)"))
    until = Moment(metadata=_doc("ISO 8601 date (inclusive) or datetime (exclusive)"))


class DaySchema(ma.Schema):
    """One day of the period, in the configured timezone."""

    date = ma.fields.String(metadata=_doc("YYYY-MM-DD"))
    requests = ma.fields.Integer()
    active_users = ma.fields.Integer()
    total_tokens = ma.fields.Integer()
    cost_usd = ma.fields.Float()
    errors = ma.fields.Integer()
    stars_revenue = ma.fields.Integer(metadata=_doc("Telegram Stars taken (refunds excluded)"))
    paying_users = ma.fields.Integer()


class ModelUsageSchema(ma.Schema):
    """Use of one model in the period."""

    model = ma.fields.String(allow_none=True)
    requests = ma.fields.Integer()
    total_tokens = ma.fields.Integer()
    cost_usd = ma.fields.Float()


class TopUserSchema(ma.Schema):
    """One of the most active users of the period."""

    telegram_id = ma.fields.Integer()
    username = ma.fields.String(allow_none=True)
    requests = ma.fields.Integer()
    total_tokens = ma.fields.Integer()


class StatsSchema(ma.Schema):
    """Statistics of a period (``requests`` counts denied and failed ones too)."""

    requests = ma.fields.Integer()
    active_users = ma.fields.Integer()
    prompt_tokens = ma.fields.Integer()
    completion_tokens = ma.fields.Integer()
    total_tokens = ma.fields.Integer()
    cost_usd = ma.fields.Float()
    errors = ma.fields.Integer()
    stars_revenue = ma.fields.Integer(metadata=_doc("Telegram Stars taken (refunds excluded)"))
    paying_users = ma.fields.Integer(metadata=_doc("Users with a payment in the period"))
    daily = ma.fields.List(ma.fields.Nested(DaySchema))
    by_model = ma.fields.List(ma.fields.Nested(ModelUsageSchema))
    top_users = ma.fields.List(ma.fields.Nested(TopUserSchema))
    since = ma.fields.String()
    until = ma.fields.String()
    timezone = ma.fields.String()


# -- bot ------------------------------------------------------------------------------------


class BotStatusSchema(ma.Schema):
    """Desired and actual state of the bot listener."""

    desired = ma.fields.String(validate=validate.OneOf(bot_control.MODES))
    state = ma.fields.String(validate=validate.OneOf(("stopped", "starting", "running", "error")))
    since = ma.fields.String(allow_none=True)
    last_update_at = ma.fields.String(allow_none=True)
    last_error = ma.fields.String(allow_none=True)
    webhook_url = ma.fields.String(allow_none=True)
    queue_depth = ma.fields.Integer()


class BotStartSchema(ma.Schema):
    """Which mode to start (or switch to)."""

    mode = Text(
        required=True,
        validate=validate.OneOf((bot_control.POLLING, bot_control.WEBHOOK)),
        metadata=_doc("polling: «Запустить бота»; webhook: «Запустить бота в webhook»"),
    )


# -- audit log ------------------------------------------------------------------------------


class AuditEntrySchema(ma.Schema):
    """One change an admin made to one object: who, when, what."""

    id = ma.fields.Integer()
    at = ma.fields.DateTime()
    actor = ma.fields.String(
        metadata=_doc(
            "The admin's login name (admin UI), the API token's name (ADMIN_API_TOKEN for the "
            "configured one), cli (flask commands) or system (first-start preparation)"
        )
    )
    action = ma.fields.String(validate=validate.OneOf([a.value for a in AuditAction]))
    kind = ma.fields.String(validate=validate.OneOf(audit.KINDS))
    object_id = ma.fields.String(
        metadata=_doc(
            "The id the API addresses the object by: a setting's key, a user's Telegram id, "
            "else the row id"
        )
    )
    label = ma.fields.String(metadata=_doc("The object's name when it changed"))
    changes = ma.fields.Dict(
        keys=ma.fields.String(),
        metadata=_doc(
            "Field → [old, new]; a secret (api_key, value of a secret setting, token, password) "
            'only as "set", "cleared" or "re-encrypted", never its value'
        ),
    )


class AuditQuerySchema(PagedQuerySchema):
    """Filters and paging of the audit log."""

    kind = ma.fields.String(validate=validate.OneOf(audit.KINDS))
    object_id = QueryText(
        validate=validate.Length(max=64),
        metadata=_doc("One object (see the entries' object_id)"),
    )
    actor = QueryText(
        validate=validate.Length(max=128),
        metadata=_doc("Who made the change (exact)"),
    )
    since = Moment(metadata=_doc("ISO 8601 date or datetime (inclusive)"))
    until = Moment(metadata=_doc("ISO 8601 date (inclusive) or datetime (exclusive)"))


ModelListSchema = collection(ModelSchema, "ModelList")
ModeListSchema = collection(ModeSchema, "ModeList")
UserListSchema = collection(UserSchema, "UserList")
PlanListSchema = collection(PlanSchema, "PlanList")
PaymentListSchema = collection(PaymentSchema, "PaymentList")
GroupListSchema = collection(GroupSchema, "GroupList")
MessageListSchema = collection(MessageSchema, "MessageList")
AuditListSchema = collection(AuditEntrySchema, "AuditList")
