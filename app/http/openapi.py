"""The contract as served at /openapi.yaml: the file, with this deployment's limits filled in.

contracts/openapi.yaml states the defaults; a deployment may allow other models or other
bounds, and its served contract says so, so generated clients and fuzzers see the truth. Each
API family fills in its own components (`Family.contract`). With UNKNOWN_FIELDS=refuse, the
objects that take fields ChatWait does not know take none, and what is there only to be left
out (a hosted tool: `x-chatwait-tolerant`) is gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Flask, Response, current_app

from ..apis.family import Family
from ..config import Settings

CONTRACT_PATH = Path(__file__).resolve().parents[2] / "contracts" / "openapi.yaml"
EXTENSION = "chatwait.contract"
TOLERANT = "x-chatwait-tolerant"  # marks what the tolerant contract takes only to leave out

bp = Blueprint("contract", __name__)
# libyaml's parser and emitter (PyYAML's wheels carry it): the same document as the pure-Python
# ones give, for less of a worker's boot.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def render_contract(settings: Settings, families: Iterable[Family]) -> bytes:
    """The contract with the allowed models and the configured bounds of every request body."""
    contract = yaml.load(CONTRACT_PATH.read_text(encoding="utf-8"), Loader=_LOADER)
    schemas = contract["components"]["schemas"]
    for family in families:
        if family.contract is not None:
            family.contract(schemas, settings)
    if settings.requests.unknown_fields == "refuse":
        _strict(schemas)
    return yaml.dump(contract, Dumper=_DUMPER, sort_keys=False, allow_unicode=True).encode("utf-8")


def _strict(node: Any) -> None:
    """The contract's part `node` as the strict contract has it (in place)."""
    if isinstance(node, dict):
        if node.get("additionalProperties") is True:
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        node[:] = [entry for entry in node if not (isinstance(entry, dict) and entry.get(TOLERANT))]
        for entry in node:
            _strict(entry)


@bp.get("/openapi.yaml")
def contract() -> Response:
    """The OpenAPI contract this service implements (rendered at its first request: a worker
    boots without the cost)."""
    app = current_app._get_current_object()
    rendered = app.extensions[EXTENSION]
    if callable(rendered):
        rendered = app.extensions[EXTENSION] = rendered()
    return Response(rendered, mimetype="application/yaml")


def init_app(app: Flask, settings: Settings, families: Iterable[Family]) -> None:
    """Serve this app's contract, rendered once."""
    families = tuple(families)
    app.extensions[EXTENSION] = lambda: render_contract(settings, families)
    app.register_blueprint(bp)
