"""The schemas of the service's own endpoints (GET /health, /ready and /v1/spend), one per
component of contracts/openapi.yaml (a test keeps them in step)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..apis.schema import StrictSchema
from ..config import KINDS
from ..providers.pool.routes import STATES
from .admin_schemas import ADMIN_COMPONENTS


class HealthSchema(StrictSchema):
    """The reply of GET /health."""

    status = fields.String(required=True, validate=validate.OneOf(("healthy",)))
    timestamp = fields.String(required=True)


READY_CHECKS = ("upstream", "model", "store", "worker", "key_limits")


class ReadyCheckSchema(StrictSchema):
    """One check of GET /ready: passed or not, and how it went (in ChatWait's words)."""

    ok = fields.Boolean(required=True)
    detail = fields.String(required=True)


class ReadyChecksSchema(StrictSchema):
    """The checks of GET /ready: the upstream (openai provider) or the model (local one), the
    store, and the worker (it fails while the worker stops)."""

    upstream = fields.Nested(ReadyCheckSchema)
    model = fields.Nested(ReadyCheckSchema)
    store = fields.Nested(ReadyCheckSchema, required=True)
    worker = fields.Nested(ReadyCheckSchema, required=True)
    key_limits = fields.Nested(ReadyCheckSchema)


class ReadyServerSchema(StrictSchema):
    """One model server of the pool in GET /ready, as this worker sees it."""

    name = fields.String(required=True)
    url = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    models = fields.List(fields.String(), required=True)
    weight = fields.Float(required=True)
    state = fields.String(required=True, validate=validate.OneOf(("healthy", "resting", "probing", "failing")))
    rest_seconds = fields.Float(required=True)
    open = fields.Integer(required=True)
    concurrency = fields.Integer(allow_none=True)
    ok = fields.Boolean(required=True)
    detail = fields.String(required=True)
    listed = fields.Integer(required=True, allow_none=True)
    unlisted = fields.List(fields.String(), required=True)


class ReadyRouteSchema(StrictSchema):
    """How one allowed model is answered now (GET /ready's `routes`)."""

    model = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(STATES))
    servers = fields.List(fields.String(), required=True)
    fallback = fields.String(required=True, allow_none=True)
    detail = fields.String(required=True)


class ReadySchema(StrictSchema):
    """The reply of GET /ready: `upstream` with the openai provider; `model_file`,
    `context_tokens` and `instances` with the local one; the status and failing checks alone to a
    caller without OPERATOR_TOKEN, where it is set."""

    status = fields.String(required=True, validate=validate.OneOf(("ready", "not_ready")))
    checks = fields.Nested(ReadyChecksSchema)
    failing = fields.List(fields.String(validate=validate.OneOf(READY_CHECKS)), required=True)
    provider = fields.String(validate=validate.OneOf(("openai", "anthropic", "local")))
    model = fields.String()
    allowed_models = fields.List(fields.String())
    upstream = fields.String()
    servers = fields.List(fields.Nested(ReadyServerSchema))
    routes = fields.List(fields.Nested(ReadyRouteSchema))
    model_file = fields.String()
    context_tokens = fields.Integer()
    instances = fields.Integer()
    streams = fields.Integer()
    live_streams = fields.Integer()
    store = fields.String(validate=validate.OneOf(("memory", "redis")))
    store_detail = fields.String()
    client_keys = fields.Boolean()
    notes = fields.List(fields.String())
    prices = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True))


# Contract component name -> schema class (used by the contract test).
class BudgetSpendSchema(StrictSchema):
    """Where one budget of a key stands (USD): its period (UTC), the budget, what generations that
    ended spent, what those still running reserve, what remains, and when it resets."""

    period = fields.String(required=True)
    budget_usd = fields.Float(required=True)
    spent_usd = fields.Float(required=True)
    reserved_usd = fields.Float(required=True)
    remaining_usd = fields.Float(required=True)
    resets_in_seconds = fields.Float(required=True)


class BudgetsSchema(StrictSchema):
    """A key's budgets in money, each where it has one."""

    budget_day = fields.Nested(BudgetSpendSchema)
    budget_month = fields.Nested(BudgetSpendSchema)


class EndUserSpendSchema(StrictSchema):
    """One end user of the calling key: what they spent today and this month (UTC)."""

    end_user = fields.String(required=True)
    today_usd = fields.Float(required=True)
    month_usd = fields.Float(required=True)
    requests = fields.Integer(required=True)


class SpendSchema(StrictSchema):
    """The reply of GET /v1/spend: the calling key's name (None: the API asks for no key), its
    budgets, and its end users where spend is kept."""

    object = fields.String(required=True, validate=validate.OneOf(("spend",)))
    key = fields.String(required=True, allow_none=True)
    budgets = fields.Nested(BudgetsSchema, required=True)
    end_users = fields.List(fields.Nested(EndUserSpendSchema))


SERVICE_COMPONENTS: dict[str, type[Schema]] = {
    "Health": HealthSchema,
    "Ready": ReadySchema,
    "ReadyChecks": ReadyChecksSchema,
    "ReadyCheck": ReadyCheckSchema,
    "ReadyServer": ReadyServerSchema,
    "ReadyRoute": ReadyRouteSchema,
    "Spend": SpendSchema,
    "EndUserSpend": EndUserSpendSchema,
    "Budgets": BudgetsSchema,
    "BudgetSpend": BudgetSpendSchema,
    **ADMIN_COMPONENTS,
}
