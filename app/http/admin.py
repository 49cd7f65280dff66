"""The admin API (ADMIN_API_KEY): client keys managed without editing a file (`keystore.admin`).
POST and GET /v1/admin/keys; GET, PATCH and DELETE (revoke) /v1/admin/keys/{id};
POST /v1/admin/keys/{id}/rotate; PUT and DELETE /v1/admin/keys/{id}/users/{user} (block or
limit one end user, or give them back the key's defaults); GET /v1/admin/spend (the spend
report, JSON or CSV); GET /v1/admin/streams (the live streams) and DELETE /v1/admin/streams/{id}
(stop one); DELETE /v1/admin/cache (the response cache's answers). Only an admin key opens it."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, request

from ..apis.intake import read_json, validate_request
from ..apis.request import services
from ..apis.schema import serialise
from ..apis.streams import started_at, stop
from ..errors import ApiError
from ..keystore.admin import KeyAdmin
from ..keystore.record import BLOCKED
from ..response_cache import CacheUnavailable
from ..spend import report
from .admin_schemas import (
    AdminCacheClearedSchema,
    AdminCacheQuerySchema,
    AdminKeyChangeSchema,
    AdminKeyCreateSchema,
    AdminKeyListSchema,
    AdminKeySchema,
    AdminKeySecretSchema,
    AdminRotateSchema,
    AdminSpendQuerySchema,
    AdminSpendSchema,
    AdminStreamListSchema,
    AdminStreamsQuerySchema,
    AdminStreamStopSchema,
    AdminUserOverrideSchema,
)

log = logging.getLogger("chatwait.audit")

bp = Blueprint("admin", __name__)
PREFIX = "/v1/admin/"
DEFAULT_LISTED = 100  # live streams listed unless `limit` says otherwise


def _admin() -> tuple[KeyAdmin, str]:
    """The key admin, and who asks (the admin key's name); 404 when the admin API is off."""
    keys = services().client_keys
    if keys.managed is None:
        raise ApiError("not_found", "The admin API is off: set ADMIN_API_KEY to manage keys here.")
    return keys.managed, keys.admin(request.headers.get("Authorization"))


def _fields(schema: Any) -> dict[str, Any]:
    """The request's fields, checked (the models a key may use among ALLOWED_MODELS)."""
    allowed = services().settings.upstream.allowed_models
    made = schema(allowed_models=allowed) if issubclass(schema, AdminKeyChangeSchema) else schema()
    return validate_request(read_json(request), made)


@bp.post("/v1/admin/keys")
def create() -> tuple[dict[str, Any], int]:
    """A new key: its secret, shown this once."""
    admin, who = _admin()
    secret, record = admin.create(_fields(AdminKeyCreateSchema), who)
    return serialise(AdminKeySecretSchema, {**record.public(), "key": secret}), 201


@bp.get("/v1/admin/keys")
def listed() -> dict[str, Any]:
    """Every key (the key file's too, read-only), never a secret."""
    admin, _ = _admin()
    return serialise(AdminKeyListSchema, {"object": "list", "data": admin.listed()})


@bp.get("/v1/admin/keys/<key_id>")
def shown(key_id: str) -> dict[str, Any]:
    admin, _ = _admin()
    return serialise(AdminKeySchema, admin.shown(key_id))


@bp.patch("/v1/admin/keys/<key_id>")
def change(key_id: str) -> dict[str, Any]:
    """New limits, budgets, models or end-user defaults (null clears one)."""
    admin, who = _admin()
    return serialise(AdminKeySchema, admin.change(key_id, _fields(AdminKeyChangeSchema), who).public())


@bp.post("/v1/admin/keys/<key_id>/rotate")
def rotate(key_id: str) -> dict[str, Any]:
    """A new secret, shown this once; the old one still opens the key for `overlap_seconds`."""
    admin, who = _admin()
    fields = _fields(AdminRotateSchema) if request.content_length else {}
    secret, record = admin.rotate(key_id, fields.get("overlap_seconds", 3600.0), who)
    return serialise(AdminKeySecretSchema, {**record.public(), "key": secret})


@bp.delete("/v1/admin/keys/<key_id>")
def revoke(key_id: str) -> dict[str, Any]:
    """No secret opens the key any more."""
    admin, who = _admin()
    return serialise(AdminKeySchema, admin.revoke(key_id, who).public())


@bp.put("/v1/admin/keys/<key_id>/users/<path:user>")
def end_user(key_id: str, user: str) -> dict[str, Any]:
    """Block one end user of the key (`{"blocked": true}`) or hold them to limits of their own."""
    admin, who = _admin()
    _check_user(user)
    fields = _fields(AdminUserOverrideSchema)
    override: dict[str, Any] | str = BLOCKED if fields.pop("blocked", False) else fields
    return serialise(AdminKeySchema, admin.end_user(key_id, user, override, who).public())


@bp.delete("/v1/admin/keys/<key_id>/users/<path:user>")
def end_user_defaults(key_id: str, user: str) -> dict[str, Any]:
    """The end user is held to the key's end-user defaults again."""
    admin, who = _admin()
    _check_user(user)
    return serialise(AdminKeySchema, admin.end_user(key_id, user, None, who).public())


MAX_PATH_USER = 256  # characters of an end user in a path (a longer one makes a URL over the request line's bound)


def _check_user(user: str) -> None:
    if not user.strip() or len(user) > MAX_PATH_USER:
        message = f"1 to {MAX_PATH_USER} characters."
        raise ApiError("validation_error", "1 field(s) are invalid.", fields={"user": [message]})


@bp.get("/v1/admin/spend")
def spend() -> Response | dict[str, Any]:
    """Spend by key, end user, model and day (`group_by`), over `from` to `to` (UTC days; the
    month so far by default), of one `key` or all; `format=csv` for CSV."""
    _admin()
    spending = services().billing.spending
    if spending is None:
        raise ApiError("not_found", "No spend is kept here: it is kept in Redis (STREAM_STORE=redis) or DATA_DIR.")
    asked = validate_request(dict(request.args), AdminSpendQuerySchema())
    first, last = report.span(asked.get("from"), asked.get("to"), time.time())
    by = tuple(asked.get("group_by", report.GROUPS))
    data = report.grouped(report.read(spending, first, last, asked.get("key")), by)
    if asked.get("format") == "csv":
        return Response(report.as_csv(data, by), mimetype="text/csv")
    total = sum(entry["cost_usd"] for entry in data)
    found = {"object": "spend_report", "from": first, "to": last, "group_by": list(by), "data": data}
    return serialise(AdminSpendSchema, found | {"total_usd": total})


@bp.get("/v1/admin/streams")
def live_streams() -> dict[str, Any]:
    """The live streams, newest first (`limit`, 100 by default): of the whole cluster in Redis."""
    _admin()
    found = services()
    limit = validate_request(dict(request.args), AdminStreamsQuerySchema()).get("limit", DEFAULT_LISTED)
    live, streams = found.store.live_streams(limit)
    now = time.time()
    data = [
        {
            "id": stream.stream_id,
            "object": "stream",
            "key": found.client_keys.name_of(stream.client) if stream.client else None,
            "model": stream.model,
            "api": started_at(stream.wire),
            "created_at": int(stream.created),
            "age_seconds": round(max(0.0, now - stream.created), 3),
            "events": stream.events,
            "worker": stream.worker,
        }
        for stream in streams
    ]
    return serialise(AdminStreamListSchema, {"object": "list", "live": live, "data": data})


@bp.delete("/v1/admin/streams/<stream_id>")
def stop_stream(stream_id: str) -> dict[str, Any]:
    """Stop any key's stream: it ends as a client's stop ends it (one `admin_action` line)."""
    _, who = _admin()
    stream = services().store.get(stream_id)
    status, last_event_id = stop(stream)
    said = {"admin": who, "action": "stop_stream", "stream_id": stream.stream_id, "result": status}
    log.info("admin_action", extra=said)
    found = {"stream_id": stream.stream_id, "status": status, "last_event_id": last_event_id}
    return serialise(AdminStreamStopSchema, found)


@bp.delete("/v1/admin/cache")
def clear_cache() -> dict[str, Any]:
    """Forget the response cache's kept answers: one key's (`key`, its name), one (`entry`), or
    all (one `admin_action` line)."""
    _, who = _admin()
    found = services()
    asked = validate_request(dict(request.args), AdminCacheQuerySchema())
    name = asked.get("key")
    if name is not None and found.client_keys.named(name) is None:
        detail = f"No key is named {name[:64]!r}: use a key's name, as GET /v1/admin/keys lists them."
        raise ApiError("key_not_found", detail)
    scope = None if name is None or found.settings.caching.response_cache_shared else name
    try:
        deleted = 0 if found.cache is None else found.cache.clear(scope, asked.get("entry"))
    except CacheUnavailable:
        raise ApiError("store_unavailable", "Redis did not answer: the response cache was not cleared.") from None
    said = {"admin": who, "action": "clear_cache", "key_name": name, "entry": asked.get("entry"), "result": deleted}
    log.info("admin_action", extra=said)
    return serialise(AdminCacheClearedSchema, {"object": "response_cache.cleared", "deleted": deleted})
