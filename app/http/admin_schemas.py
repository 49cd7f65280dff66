"""The admin API's schemas (`/v1/admin/keys`): the requests it takes and the key objects it
answers, one per `AdminKey*` component of contracts/openapi.yaml (a test keeps them in step)."""

from __future__ import annotations

import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from ..apis.schema import StrictBoolean, StrictInteger, StrictNumber, StrictSchema
from ..config.keys import MAX_BUDGET, MAX_LIMIT, NAME, PAYS
from ..streaming.live import MAX_LISTED

MAX_OVERLAP_SECONDS = 30 * 86_400
GROUP_NAMES = ("day", "key", "end_user", "model")
MAX_MODELS = 64


def _count(**kwargs: Any) -> StrictInteger:
    return StrictInteger(validate=validate.Range(min=1, max=MAX_LIMIT), **kwargs)


def _usd(**kwargs: Any) -> StrictNumber:
    return StrictNumber(validate=validate.Range(min=0, min_inclusive=False, max=MAX_BUDGET), **kwargs)


class AdminUserLimitsSchema(StrictSchema):
    """What an end user of a key is held to (a key's defaults, or one end user's own)."""

    max_streams = _count()
    rpm = _count()
    tpm = _count()
    budget_day = _usd()
    budget_month = _usd()


class AdminKeyChangeSchema(StrictSchema):
    """The body of PATCH /v1/admin/keys/{id}: the settings to change (null clears a limit)."""

    max_streams = _count(allow_none=True)
    rpm = _count(allow_none=True)
    tpm = _count(allow_none=True)
    max_sockets = _count(allow_none=True)
    budget_day = _usd(allow_none=True)
    budget_month = _usd(allow_none=True)
    pays = fields.String(validate=validate.OneOf(PAYS))
    cache = StrictBoolean(allow_none=True)  # its answers kept by the response cache (None: RESPONSE_CACHE says)
    cache_unsampled = StrictBoolean(allow_none=True)  # None: RESPONSE_CACHE_UNSAMPLED says
    users = fields.Nested(AdminUserLimitsSchema, allow_none=True)
    models = fields.List(fields.String(), allow_none=True, validate=validate.Length(max=MAX_MODELS))

    def __init__(self, *, allowed_models: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allowed_models = allowed_models

    @validates("models")
    def _models(self, value: list[str] | None, **_: Any) -> None:
        allowed = self.allowed_models
        unknown = [model for model in value or () if model not in allowed]
        if unknown:
            raise ValidationError(f"{unknown[0][:80]!r} is not in ALLOWED_MODELS ({', '.join(allowed)}).")


class AdminKeyCreateSchema(AdminKeyChangeSchema):
    """The body of POST /v1/admin/keys: a name, and the settings of AdminKeyChange."""

    name = fields.String(required=True, validate=validate.Regexp(f"^{NAME}$", error="1 to 64 of A-Z a-z 0-9 . _ -"))


class AdminRotateSchema(StrictSchema):
    """The body of POST /v1/admin/keys/{id}/rotate (optional)."""

    overlap_seconds = StrictNumber(validate=validate.Range(min=0, max=MAX_OVERLAP_SECONDS))


class AdminUserOverrideSchema(AdminUserLimitsSchema):
    """The body of PUT /v1/admin/keys/{id}/users/{user}: blocked, or limits of the end user's own."""

    blocked = StrictBoolean()


class AdminKeySchema(StrictSchema):
    """A key as the admin API shows it: never its secret."""

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.OneOf(("key",)))
    name = fields.String(required=True)
    source = fields.String(required=True, validate=validate.OneOf(("api", "file")))
    created_at = fields.Integer(required=True, allow_none=True)
    revoked_at = fields.Integer(required=True, allow_none=True)
    rotating_until = fields.Integer(required=True, allow_none=True)
    limits = fields.Dict(keys=fields.String(), values=fields.Float(), required=True)
    pays = fields.String(required=True, validate=validate.OneOf(PAYS))
    cache = StrictBoolean(required=True, allow_none=True)
    cache_unsampled = StrictBoolean(required=True, allow_none=True)
    users = fields.Dict(keys=fields.String(), values=fields.Float(), required=True, allow_none=True)
    models = fields.List(fields.String(), required=True)
    overrides = fields.Integer(required=True)


class AdminKeySecretSchema(AdminKeySchema):
    """A key just created or rotated: with its secret, shown this once."""

    key = fields.String(required=True)


class AdminKeyListSchema(StrictSchema):
    """The reply of GET /v1/admin/keys."""

    object = fields.String(required=True, validate=validate.OneOf(("list",)))
    data = fields.List(fields.Nested(AdminKeySchema), required=True)


DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


class Day(fields.String):
    """A UTC day, YYYY-MM-DD."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        found = super()._deserialize(value, attr, data, **kwargs)
        try:
            datetime.date.fromisoformat(found)
        except ValueError:
            raise ValidationError("A day as YYYY-MM-DD.") from None
        return found


class GroupBy(fields.String):
    """Comma-separated names of day, key, end_user and model."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        names = [name.strip() for name in super()._deserialize(value, attr, data, **kwargs).split(",")]
        if not names or any(name not in GROUP_NAMES for name in names) or len(set(names)) != len(names):
            raise ValidationError(f"Names among {', '.join(GROUP_NAMES)}, comma-separated, each once.")
        return names


class AdminSpendQuerySchema(StrictSchema):
    """The query of GET /v1/admin/spend."""

    from_ = Day(data_key="from", attribute="from")
    to = Day()
    key = fields.String()
    group_by = GroupBy()
    format = fields.String(validate=validate.OneOf(("json", "csv")))


class AdminSpendEntrySchema(StrictSchema):
    """One group of the spend report (a group not asked for is left out; null: no key, no end user)."""

    day = fields.String()
    key = fields.String(allow_none=True)
    end_user = fields.String(allow_none=True)
    model = fields.String()
    cost_usd = fields.Float(required=True)
    requests = fields.Integer(required=True)
    input_tokens = fields.Integer(required=True)
    output_tokens = fields.Integer(required=True)


class AdminSpendSchema(StrictSchema):
    """The reply of GET /v1/admin/spend (JSON)."""

    object = fields.String(required=True, validate=validate.OneOf(("spend_report",)))
    from_ = fields.String(required=True, data_key="from", attribute="from")
    to = fields.String(required=True)
    group_by = fields.List(fields.String(), required=True)
    total_usd = fields.Float(required=True)
    data = fields.List(fields.Nested(AdminSpendEntrySchema), required=True)


class AdminStreamsQuerySchema(StrictSchema):
    """The query of GET /v1/admin/streams."""

    limit = fields.Integer(validate=validate.Range(min=1, max=MAX_LISTED))


class AdminStreamSchema(StrictSchema):
    """One live stream (`api`: the path it was started at; null key: started without a key, or
    by one no longer known)."""

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.OneOf(("stream",)))
    key = fields.String(required=True, allow_none=True)
    model = fields.String(required=True)
    api = fields.String(required=True)
    created_at = fields.Integer(required=True)
    age_seconds = fields.Float(required=True)
    events = fields.Integer(required=True)
    worker = fields.String(required=True)


class AdminStreamListSchema(StrictSchema):
    """The reply of GET /v1/admin/streams: how many streams are live, the newest of them."""

    object = fields.String(required=True, validate=validate.OneOf(("list",)))
    live = fields.Integer(required=True)
    data = fields.List(fields.Nested(AdminStreamSchema), required=True)


class AdminStreamStopSchema(StrictSchema):
    """The reply of DELETE /v1/admin/streams/{id} (as DELETE /v1/chat/streaming/{id} answers)."""

    stream_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(("cancelled", "already_finished")))
    last_event_id = fields.Integer(required=True)


class AdminCacheQuerySchema(StrictSchema):
    """The query of DELETE /v1/admin/cache: one key's answers (its name), one entry (the
    X-ChatWait-Cache-Entry of a request), or (neither) every one."""

    key = fields.String(validate=validate.Length(min=1, max=64))
    entry = fields.String(validate=validate.Regexp(r"^[0-9a-f]{64}$", error="Use an X-ChatWait-Cache-Entry value."))


class AdminCacheClearedSchema(StrictSchema):
    """The reply of DELETE /v1/admin/cache: how many kept answers went."""

    object = fields.String(required=True, validate=validate.OneOf(("response_cache.cleared",)))
    deleted = fields.Integer(required=True, validate=validate.Range(min=0))


ADMIN_COMPONENTS: dict[str, type[Schema]] = {
    "AdminUserLimits": AdminUserLimitsSchema,
    "AdminKeyChange": AdminKeyChangeSchema,
    "AdminKeyCreate": AdminKeyCreateSchema,
    "AdminRotate": AdminRotateSchema,
    "AdminUserOverride": AdminUserOverrideSchema,
    "AdminKey": AdminKeySchema,
    "AdminKeySecret": AdminKeySecretSchema,
    "AdminKeyList": AdminKeyListSchema,
    "AdminSpend": AdminSpendSchema,
    "AdminSpendEntry": AdminSpendEntrySchema,
    "AdminStream": AdminStreamSchema,
    "AdminStreamList": AdminStreamListSchema,
    "AdminStreamStop": AdminStreamStopSchema,
    "AdminCacheCleared": AdminCacheClearedSchema,
}
