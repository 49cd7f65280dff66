"""Checking a live response against contracts/openapi.yaml (shared by the contract and local-model tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

CONTRACT_PATH = Path(__file__).resolve().parents[1] / "contracts" / "openapi.yaml"
CONTRACT = yaml.safe_load(CONTRACT_PATH.read_text())
SCHEMAS = CONTRACT["components"]["schemas"]
REGISTRY = Registry().with_resource("contract", Resource(contents=CONTRACT, specification=DRAFT202012))


def conform(component: str, instance: Any) -> None:
    """Fail unless `instance` is valid against the contract component."""
    schema = {"$ref": f"contract#/components/schemas/{component}"}
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(instance)
